// Command kms-example is an enclave application that uses AWS KMS through attestd, with the unmodified AWS
// SDK for Go: GenerateDataKey, Decrypt and GenerateRandom, each with a Recipient (a fresh attestation
// document from attestd's kms_recipient) so that KMS answers with a CiphertextForRecipient that only attestd,
// inside this enclave, can open (kms_open). See docs/kms.md.
//
// In an enclave, KMS is reached through vsock-proxy on the parent (--vsock-proxy 3:8000), with TLS to
// kms.REGION.amazonaws.com terminated here, in the enclave; credentials come in through the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). --endpoint points the SDK elsewhere (the
// KMS-shaped test server of the tests).
//
// It prints what it did, never a secret: SHA-256 fingerprints and lengths. Exit codes: 0 done, 1 failed,
// 2 usage.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/mdlayher/vsock"

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
	"github.com/attestd/attestd/kmsrecipient"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

type options struct {
	attestd    string
	region     string
	keyID      string
	endpoint   string
	vsockProxy string
	timeout    time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("kms-example", flag.ContinueOnError)
	fs.StringVar(&o.attestd, "attestd", "unix:///run/attestd.sock", "attestd's local API")
	fs.StringVar(&o.region, "region", "", "AWS region of the key (required)")
	fs.StringVar(&o.keyID, "key-id", "", "KMS key: key ARN (checked against KMS's answer), key id or alias/NAME (required)")
	fs.StringVar(&o.endpoint, "endpoint", "", "KMS endpoint URL instead of https://kms.REGION.amazonaws.com (tests)")
	fs.StringVar(&o.vsockProxy, "vsock-proxy", "", "CID:PORT of the parent's vsock-proxy to kms.REGION.amazonaws.com:443, e.g. 3:8000 (in an enclave)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "overall time limit")
	cliflag.RefuseEmpty(fs)
	usage := func(format string, a ...any) int {
		return cli.ReportUsage(stderr, "kms-example", fmt.Errorf(format, a...))
	}
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, "usage: kms-example --region REGION --key-id KEY [--attestd ADDR] [--vsock-proxy CID:PORT | --endpoint URL]\n\nflags:\n")
			return 0
		}
		return usage("%v", err)
	}
	switch {
	case fs.NArg() != 0:
		return usage("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case o.region == "" || o.keyID == "":
		return usage("--region and --key-id are required")
	case o.endpoint != "" && o.vsockProxy != "":
		return usage("--endpoint and --vsock-proxy are exclusive")
	}
	ak, sk := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		return usage("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the parent passes credentials in)")
	}
	httpClient, err := transport(o.vsockProxy, nil)
	if err != nil {
		return usage("%v", err)
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	recipients, err := kmsrecipient.Dial(ctx, o.attestd)
	if err != nil {
		fmt.Fprintln(stderr, "kms-example: attestd:", err)
		return 1
	}
	defer recipients.Close()
	kmsOpts := kms.Options{
		Region:      o.region,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, getenv("AWS_SESSION_TOKEN")),
		HTTPClient:  httpClient,
	}
	if o.endpoint != "" {
		kmsOpts.BaseEndpoint = aws.String(o.endpoint)
	}
	e := &Enclave{KMS: kms.New(kmsOpts), Recipients: recipients}
	if err := demo(ctx, e, o.keyID, stdout); err != nil {
		fmt.Fprintln(stderr, "kms-example:", err)
		return 1
	}
	return 0
}

// demo makes a data key, has KMS decrypt its blob again, makes a key pair and draws random bytes, all
// through Recipients.
func demo(ctx context.Context, e *Enclave, keyID string, stdout io.Writer) error {
	ec := map[string]string{"app": "kms-example"}
	dataKey, blob, err := e.GenerateDataKey(ctx, keyID, ec)
	if err != nil {
		return fmt.Errorf("GenerateDataKey: %w", err)
	}
	fmt.Fprintf(stdout, "GenerateDataKey: %d-byte data key, sha256 %s; CiphertextBlob %d bytes\n", len(dataKey), fingerprint(dataKey), len(blob))
	again, err := e.Decrypt(ctx, keyID, blob, ec)
	if err != nil {
		return fmt.Errorf("Decrypt: %w", err)
	}
	if string(again) != string(dataKey) {
		return errors.New("Decrypt: the data key came back different")
	}
	fmt.Fprintf(stdout, "Decrypt: the same data key, sha256 %s\n", fingerprint(again))
	signer, _, err := e.GenerateDataKeyPair(ctx, keyID, types.DataKeyPairSpecEccNistP384, ec)
	if err != nil {
		return fmt.Errorf("GenerateDataKeyPair: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return fmt.Errorf("GenerateDataKeyPair: %w", err)
	}
	fmt.Fprintf(stdout, "GenerateDataKeyPair: an ECC_NIST_P384 private key in the enclave; public key sha256 %s\n", fingerprint(spki))
	random, err := e.GenerateRandom(ctx, 32)
	if err != nil {
		return fmt.Errorf("GenerateRandom: %w", err)
	}
	fmt.Fprintf(stdout, "GenerateRandom: %d bytes, sha256 %s\n", len(random), fingerprint(random))
	return nil
}

func fingerprint(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// dialVsock connects to the parent's vsock-proxy; tests replace it, as this machine has no vsock peer.
var dialVsock = func(cid, port uint32) (net.Conn, error) { return vsock.Dial(cid, port, nil) }

// transport is the SDK's HTTP client: through the parent's vsock-proxy when proxy is CID:PORT (TLS is still
// end to end with kms.REGION.amazonaws.com: the proxy relays TCP and sees only ciphertext), else direct.
// roots are the CAs that TLS trusts; nil means the system's (the program always passes nil).
func transport(proxy string, roots *x509.CertPool) (*http.Client, error) {
	if proxy == "" {
		return http.DefaultClient, nil
	}
	cidText, portText, ok := strings.Cut(proxy, ":")
	cid, err1 := strconv.ParseUint(cidText, 10, 32)
	port, err2 := strconv.ParseUint(portText, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--vsock-proxy %q is not CID:PORT", proxy)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	// Every connection, whatever host the URL names, goes to the proxy, which forwards to the one host
	// its allowlist names; the TLS handshake (SNI and certificate check) is with the URL's host.
	t.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialVsock(uint32(cid), uint32(port))
	}
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t}, nil
}
