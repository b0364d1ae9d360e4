package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/attestedtls"
	"github.com/attestd/attestd/internal/cli"
)

func init() {
	register(cli.Command{Name: "tls-check", Summary: "connect to an attested TLS server and verify it", Run: runTLSCheck})
}

const tlsCheckUsage = `usage: attest tls-check URL|HOST:PORT [verify flags] [--webpki [--ca FILE]] [--bind-session] [--proxy URL] [--json]

Connects to an attested TLS server (docs/attested-tls.md), performs the
handshake and checks it as attestedtls clients do, before sending anything: in
self-signed mode (the default) the certificate must name the host, be
self-signed and carry an attestation document in its id-pe-cmw extension; with
--webpki the certificate must chain to a trusted root (the system's, or --ca)
and the document is fetched from /.well-known/attestation. The document must
verify (root, PCR policy, debug mode, --max-age) and its public_key must be the
certificate's key. --bind-session then asks, on the same connection, for a
document bound to the connection's TLS exporter, which a relay holding a stolen
key cannot produce. Prints the document and what it binds. --proxy tunnels the
connections through an HTTP proxy (CONNECT): TLS and every check stay end to
end. HTTPS_PROXY is not read: name the proxy.

A PCR policy is required (--pcr or --pcrs-from); --any-pcrs is refused: the
enclave image is the server's identity. --nonce and --at-doc-time do not apply.

Exit status: 0 verified, 1 failed or rejected, 2 usage error.

flags:
`

// Check names of tls-check's --json errors beside attestation's own.
const (
	checkConnect        = "connect"         // no TCP or TLS connection
	checkCertificate    = "certificate"     // the certificate itself
	checkEvidence       = "evidence"        // no, or malformed, evidence
	checkSessionBinding = "session-binding" // the exporter binding failed
)

func runTLSCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tls-check")
	webPKI := fs.Bool("webpki", false, "the server has a WebPKI certificate; its document is at /.well-known/attestation")
	ca := fs.String("ca", "", "with --webpki: trust the CA certificates in `FILE.pem` instead of the system's")
	bind := fs.Bool("bind-session", false, "also bind a fresh document to this connection's TLS exporter")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this `DURATION`")
	proxy := fs.String("proxy", "", "reach the server through the HTTP proxy at `URL` (http://[user:pass@]host:port, CONNECT)")
	vf := addVerifyFlags(fs)
	pos, err := parseArgs(fs, tlsCheckUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("want one URL or HOST:PORT")
	}
	addr, err := tlsTarget(pos[0])
	if err != nil {
		return err
	}
	switch {
	case vf.anyPCRs:
		return cli.Usagef("--any-pcrs: attested TLS needs a PCR policy (--pcr or --pcrs-from): the enclave image is the server's identity")
	case vf.nonce != "":
		return cli.Usagef("--nonce does not apply: use --bind-session for a fresh, connection-bound document")
	case vf.atDocTime:
		return cli.Usagef("--at-doc-time does not apply to a live connection")
	case *ca != "" && !*webPKI:
		return cli.Usagef("--ca needs --webpki")
	case *timeout <= 0:
		return cli.Usagef("--timeout must be positive")
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	cfg := attestedtls.ClientConfig{Verify: opts, WebPKI: *webPKI, Timeout: *timeout}
	if *proxy != "" {
		u, err := url.Parse(*proxy)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return cli.Usagef("--proxy %q: want http://[user:pass@]host[:port]", *proxy)
		}
		cfg.Proxy = http.ProxyURL(u)
	}
	if *ca != "" {
		data, err := readInput("--ca", *ca, maxRootFile)
		if err != nil {
			return err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(data) {
			return rejectf(checkInput, "--ca %s: no PEM certificate", *ca)
		}
	}
	c, err := attestedtls.NewClient(cfg)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", addr)
	if err != nil {
		return tlsCheckError(err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	doc, err := c.Document(&cs)
	if err != nil {
		return tlsCheckError(err)
	}
	bound := false
	if *bind {
		if doc, err = c.BindSession(ctx, conn); err != nil {
			return tlsCheckError(err)
		}
		bound = true
	}
	return printTLSCheck(stdout, addr, &cs, doc, *webPKI, bound, vf.json)
}

// tlsTarget turns https://HOST[:PORT][/...] or HOST:PORT into HOST:PORT.
func tlsTarget(s string) (string, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return "", cli.Usagef("%q: want an https:// URL or HOST:PORT", s)
		}
		if u.Port() == "" {
			return net.JoinHostPort(u.Hostname(), "443"), nil
		}
		return u.Host, nil
	}
	if h, p, err := net.SplitHostPort(s); err != nil || h == "" || p == "" {
		return "", cli.Usagef("%q: want an https:// URL or HOST:PORT", s)
	}
	return s, nil
}

// tlsCheckError names the check a connection failed.
func tlsCheckError(err error) error {
	var ae *attestation.Error
	for _, m := range []struct {
		kind  error
		check string
	}{
		{attestedtls.ErrSessionBinding, checkSessionBinding},
		{attestedtls.ErrKeyBinding, checkKeyBinding},
		{attestedtls.ErrNoEvidence, checkEvidence},
		{attestedtls.ErrEvidence, checkEvidence},
		{attestedtls.ErrCriticalExtension, checkCertificate},
		{attestedtls.ErrCertificate, checkCertificate},
	} {
		if errors.Is(err, m.kind) && !errors.As(err, &ae) {
			return rejectf(m.check, "rejected: %w", err)
		}
	}
	if errors.As(err, &ae) {
		return fmt.Errorf("rejected: %w", err)
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return rejectf(checkCertificate, "rejected: %w", err)
	}
	return rejectf(checkConnect, "%w", err)
}

type tlsCheckJSON struct {
	Server         string          `json:"server"`
	TLSVersion     string          `json:"tls_version"`
	Mode           string          `json:"mode"`
	Certificate    tlsCertJSON     `json:"certificate"`
	Binding        string          `json:"binding"`
	SessionBinding bool            `json:"session_binding"`
	Document       json.RawMessage `json:"document"`
}

type tlsCertJSON struct {
	Subject    string   `json:"subject"`
	Names      []string `json:"names"`
	NotBefore  string   `json:"not_before"`
	NotAfter   string   `json:"not_after"`
	SHA256     string   `json:"sha256"`
	SPKI       hexBytes `json:"spki"`
	SPKISHA256 string   `json:"spki_sha256"`
}

func printTLSCheck(w io.Writer, addr string, cs *tls.ConnectionState, doc *attestation.Document, webPKI, bound, asJSON bool) error {
	leaf := cs.PeerCertificates[0]
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	certSum, spkiSum := sha256.Sum256(leaf.Raw), sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	mode := "self-signed (document in the certificate's id-pe-cmw extension)"
	if webPKI {
		mode = "webpki (document from " + attestedtls.WellKnownPath + ")"
	}
	var d bytes.Buffer
	if err := printDocument(&d, doc, asJSON); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, tlsCheckJSON{
			Server: addr, TLSVersion: tls.VersionName(cs.Version), Mode: strings.Fields(mode)[0],
			Certificate: tlsCertJSON{Subject: leaf.Subject.String(), Names: names,
				NotBefore: leaf.NotBefore.UTC().Format(time.RFC3339), NotAfter: leaf.NotAfter.UTC().Format(time.RFC3339),
				SHA256: hex.EncodeToString(certSum[:]), SPKI: leaf.RawSubjectPublicKeyInfo, SPKISHA256: hex.EncodeToString(spkiSum[:])},
			Binding: "public_key", SessionBinding: bound, Document: d.Bytes(),
		})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "attested TLS server verified: %s\n", addr)
	fmt.Fprintf(&b, "tls          %s, %s\n", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	fmt.Fprintf(&b, "mode         %s\n", mode)
	fmt.Fprintf(&b, "certificate  %s, names %s\n             valid %s .. %s, sha256 %x\n", leaf.Subject, strings.Join(names, ", "),
		leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), certSum)
	fmt.Fprintf(&b, "binds        the certificate's key: document public_key = its SubjectPublicKeyInfo (%d bytes, sha256 %x)\n",
		len(leaf.RawSubjectPublicKeyInfo), spkiSum)
	if bound {
		fmt.Fprintf(&b, "session      bound: the nonce below is SHA-256(\"attestd-tls-exporter-v1\" || this connection's TLS exporter || a fresh nonce)\n")
	} else {
		fmt.Fprintf(&b, "session      not bound (--bind-session binds a fresh document to this connection)\n")
	}
	b.Write(d.Bytes())
	_, err := w.Write(b.Bytes())
	return err
}
