package attestedtls

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
)

// httpGet sends GET path on conn and reads the response.
func httpGet(t testing.TB, conn net.Conn, path string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestEndToEnd: an HTTPS server with an attested self-signed certificate, a
// client that checks it in the handshake, talks HTTP, and binds the session.
func TestEndToEnd(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	c := st.newClient(t, nil)
	resp, err := c.HTTPClient().Get("https://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello from the enclave\n" {
		t.Fatalf("%s %q", resp.Status, body)
	}

	conn, err := c.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	leaf := conn.ConnectionState().PeerCertificates[0]
	_, ts := srv.Document()
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, srv.PublicKey()) || leaf.NotAfter.After(ts.Add(MaxCertLifetime)) {
		t.Fatalf("certificate: key %x, not after %v, document %v", leaf.RawSubjectPublicKeyInfo, leaf.NotAfter, ts)
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(OIDCMW) && ext.Critical {
			t.Fatal("id-pe-cmw is critical")
		}
	}
	d, err := c.BindSession(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.PublicKey, srv.PublicKey()) || len(d.Nonce) != 32 {
		t.Fatalf("session document: public_key %x nonce %x", d.PublicKey, d.Nonce)
	}
	if r := httpGet(t, conn, "/hello"); r.StatusCode != 200 { // the connection still carries HTTP
		t.Fatalf("after binding: %s", r.Status)
	}
	// The hostname is checked: the certificate names 127.0.0.1 and localhost only.
	cfg, _ := c.TLSConfig("example.com:443")
	if _, err := tls.Dial("tcp", addr, cfg); err == nil || !strings.Contains(err.Error(), "example.com") {
		t.Fatalf("hostname: %v", err)
	}
}

// TestResumedSessionIsChecked: a resumed TLS session runs VerifyConnection
// too: a client whose policy the server does not meet is refused even when it
// resumes a session that a satisfied client established.
func TestResumedSessionIsChecked(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	good := st.newClient(t, nil)
	bad := st.newClient(t, func(c *ClientConfig) { c.Verify.PCRs = map[int][][]byte{0: {bytes.Repeat([]byte{1}, 48)}} })
	bad.sessions = good.sessions
	var resumed []bool
	get := func(c *Client) error {
		cfg, err := c.TLSConfig(addr)
		if err != nil {
			t.Fatal(err)
		}
		inner := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			resumed = append(resumed, cs.DidResume)
			return inner(cs)
		}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		httpGet(t, conn, "/hello") // a response: the TLS 1.3 session ticket has arrived
		return nil
	}
	for range 2 {
		if err := get(good); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, get(bad), ErrDocument, attestation.ErrPCRPolicy)
	if len(resumed) != 3 || resumed[0] || !resumed[1] || !resumed[2] {
		t.Fatalf("VerifyConnection saw resumed = %v, want [false true true]", resumed)
	}
}

// certWith makes a self-signed certificate for key naming 127.0.0.1,
// valid from ts-1m to ts+5m, with ext (if not nil) as id-pe-cmw.
func certWith(t testing.TB, key crypto.Signer, ext []byte, critical bool, ts time.Time) *tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: ts.Add(-time.Minute), NotAfter: ts.Add(MaxCertLifetime),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ext != nil {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDCMW, Critical: critical, Value: ext}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, spki
}

// TestRefusals: each way a server can fail is refused with its own error,
// and the client sends no application byte to it.
func TestRefusals(t *testing.T) {
	st := startAgent(t, false)
	debugSt := startAgent(t, true)
	ctx := context.Background()
	key, spki := newKey(t)
	doc, err := st.client.AttestTLSKey(ctx, spki, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := attestation.Inspect(doc)
	cmw, _ := EncodeCMW(doc)
	_, otherSPKI := newKey(t)
	otherDoc, _ := st.client.AttestTLSKey(ctx, otherSPKI, nil)
	otherCMW, _ := EncodeCMW(otherDoc)
	debugDoc, _ := debugSt.client.AttestTLSKey(ctx, spki, nil)
	debugCMW, _ := EncodeCMW(debugDoc)
	badRecord, _ := asn1.Marshal([]byte{0x82, 0x61, 'x', 0x41, 0})
	now := time.Now()

	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		mod    func(*ClientConfig)
		errors []error
	}{
		{"good", certWith(t, key, cmw, false, u.Timestamp), nil, nil},
		{"wrong PCRs", certWith(t, key, cmw, false, u.Timestamp),
			func(c *ClientConfig) { c.Verify.PCRs = map[int][][]byte{0: {bytes.Repeat([]byte{7}, 48)}} },
			[]error{ErrDocument, attestation.ErrPCRPolicy}},
		{"debug document", certWith(t, key, debugCMW, false, u.Timestamp),
			func(c *ClientConfig) {
				c.Verify.Root = debugSt.root
				c.Verify.PCRs = debugSt.pcrs
			}, []error{ErrDocument, attestation.ErrDebug}},
		{"expired document", certWith(t, key, cmw, false, u.Timestamp),
			func(c *ClientConfig) { c.Verify.MaxAge = time.Minute; c.Verify.Time = now.Add(90 * time.Second) },
			[]error{ErrDocument, attestation.ErrFreshness}},
		{"expired certificate", certWith(t, key, cmw, false, u.Timestamp),
			func(c *ClientConfig) { c.Verify.MaxAge = time.Hour; c.Verify.Time = now.Add(6 * time.Minute) },
			[]error{ErrCertificate}},
		{"certificate outliving its document", certWith(t, key, cmw, false, u.Timestamp.Add(time.Minute)), nil, []error{ErrCertificate}},
		{"no extension", certWith(t, key, nil, false, u.Timestamp), nil, []error{ErrNoEvidence}},
		{"critical extension", certWith(t, key, cmw, true, u.Timestamp), nil, []error{ErrCriticalExtension}},
		{"malformed record", certWith(t, key, badRecord, false, u.Timestamp), nil, []error{ErrEvidence}},
		{"another key's document", certWith(t, key, otherCMW, false, u.Timestamp), nil, []error{ErrKeyBinding}},
		{"untrusted root", certWith(t, key, cmw, false, u.Timestamp),
			func(c *ClientConfig) { c.Verify.Root = debugSt.root }, []error{ErrDocument, attestation.ErrChain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := serveCert(t, tc.cert)
			c := st.newClient(t, tc.mod)
			if tc.errors == nil {
				conn, err := c.Dial(context.Background(), "tcp", rs.addr)
				if err != nil {
					t.Fatal(err)
				}
				conn.Close()
				return
			}
			_, err := c.HTTPClient().Post("https://"+rs.addr+"/secret", "text/plain", strings.NewReader("the request body"))
			wantErr(t, err, tc.errors...)
			if herr := <-rs.done; herr == nil {
				t.Fatal("the server's handshake succeeded")
			}
			if n := rs.appBytes.Load(); n != 0 {
				t.Fatalf("the server received %d application bytes", n)
			}
		})
	}
}

// TestClientConfigRefused: no PCR policy, "any" PCRs and per-connection
// fields are refused when the client is made.
func TestClientConfigRefused(t *testing.T) {
	for _, o := range []attestation.Options{
		{},
		{PCRs: map[int][][]byte{}},
		{AnyPCRs: true},
		{PCRs: map[int][][]byte{0: {make([]byte, 48)}}, Nonce: []byte("n")},
		{PCRs: map[int][][]byte{0: {make([]byte, 48)}}, AtDocumentTime: true},
	} {
		if _, err := NewClient(ClientConfig{Verify: o}); err == nil {
			t.Fatalf("%+v accepted", o)
		}
	}
}
