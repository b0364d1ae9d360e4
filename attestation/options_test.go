package attestation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"testing"
	"time"
)

func TestEmbeddedRoot(t *testing.T) {
	sum := sha256.Sum256(AWSRoot().Raw)
	if hex.EncodeToString(sum[:]) != AWSRootSHA256 {
		t.Fatalf("embedded root SHA-256 %x", sum)
	}
	pemFile, err := os.ReadFile("../testdata/nitro/aws_nitro_root_g1.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pemFile, awsRootPEM) {
		t.Fatal("embedded PEM differs from testdata/nitro/aws_nitro_root_g1.pem")
	}
	c, err := ParseRootPEM(pemFile)
	if err != nil || !c.Equal(AWSRoot()) {
		t.Fatalf("ParseRootPEM: %v", err)
	}
	if AWSRoot().Subject.String() != "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US" {
		t.Fatalf("root subject %s", AWSRoot().Subject)
	}
}

func TestParseRootPEMRejects(t *testing.T) {
	good, err := os.ReadFile("../testdata/nitro/aws_nitro_root_g1.pem")
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newMockPKI(t).leaf.cert.Raw})
	for name, in := range map[string][]byte{
		"empty":          nil,
		"not PEM":        []byte("hello"),
		"two roots":      append(append(bytes.Clone(good), '\n'), good...),
		"trailing junk":  append(bytes.Clone(good), "\njunk"...),
		"wrong type":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: AWSRoot().Raw}),
		"not a CA":       leafPEM,
		"garbage in PEM": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := ParseRootPEM(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A root that x509.Verify would take but the verifier refuses: no key
	// usage (AWS requires keyCertSign), name constraints, extended key usage.
	k := key(t, "root")
	for name, edit := range map[string]func(c *x509.Certificate){
		"root without key usage":     func(c *x509.Certificate) { c.KeyUsage = 0 },
		"root with name constraints": func(c *x509.Certificate) { c.PermittedDNSDomains = []string{"aws"} },
		"root with directoryName constraints only": func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{directoryNameConstraints(t)}
		},
		"root with extended key usage": func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} },
	} {
		tmpl := caTemplate("aws.nitro-enclaves", -1, mockNow.AddDate(-5, 0, 0), mockNow.AddDate(25, 0, 0))
		edit(tmpl)
		root := issue(t, tmpl, &k.PublicKey, nil, k)
		if _, err := ParseRootPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := NewVerifier(Options{Root: root, AnyPCRs: true}); !errors.Is(err, ErrOptions) {
			t.Errorf("%s: NewVerifier: %v", name, err)
		}
	}
	if _, err := ParseRootPEM(append(bytes.Clone(good), "\n\n"...)); err != nil {
		t.Errorf("trailing newlines rejected: %v", err)
	}
}

// TestOptionsFailClosed: no PCR policy is never the default, and malformed
// options are refused before the document is looked at.
func TestOptionsFailClosed(t *testing.T) {
	doc := baseSpec(t).build(t)
	root := newMockPKI(t).root.cert
	pcr := mockPCR(0)
	cases := []struct {
		name string
		opts Options
		want error
	}{
		{"zero value", Options{}, ErrNoPCRPolicy},
		{"empty PCR map", Options{Root: root, PCRs: map[int][][]byte{}}, ErrNoPCRPolicy},
		{"PCRs and AnyPCRs", Options{Root: root, AnyPCRs: true, PCRs: map[int][][]byte{}}, ErrOptions},
		{"PCR index 32", Options{Root: root, PCRs: map[int][][]byte{32: {pcr}}}, ErrOptions},
		{"PCR index -1", Options{Root: root, PCRs: map[int][][]byte{-1: {pcr}}}, ErrOptions},
		{"PCR without values", Options{Root: root, PCRs: map[int][][]byte{0: {}}}, ErrOptions},
		{"PCR value 32 bytes", Options{Root: root, PCRs: map[int][][]byte{0: {pcr[:32]}}}, ErrOptions},
		{"negative MaxAge", Options{Root: root, AnyPCRs: true, MaxAge: -time.Second}, ErrOptions},
		{"negative FutureSkew", Options{Root: root, AnyPCRs: true, FutureSkew: -time.Second}, ErrOptions},
		{"Time and AtDocumentTime", Options{Root: root, AnyPCRs: true, Time: mockNow, AtDocumentTime: true}, ErrOptions},
		{"leaf as root", Options{Root: newMockPKI(t).leaf.cert, AnyPCRs: true}, ErrOptions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Verify(doc, c.opts)
			wantRejected(t, d, err, c.want, "")
			v, err := NewVerifier(c.opts)
			if v != nil {
				t.Fatal("NewVerifier returned a Verifier with an error")
			}
			wantRejected(t, nil, err, c.want, "")
		})
	}
	v := mockVerifier(t, nil)
	d, err := v.VerifyNonce(doc, nil)
	wantRejected(t, d, err, ErrOptions, "needs a nonce")
}

// TestDefaultTimeIsNow: with Time zero the mock document (2025) is judged at
// the real clock, where its leaf has long expired.
func TestDefaultTimeIsNow(t *testing.T) {
	d, err := Verify(baseSpec(t).build(t), Options{Root: newMockPKI(t).root.cert, AnyPCRs: true})
	wantRejected(t, d, err, ErrValidity, "expired")
}

// TestDefaultRootIsAWS: without Options.Root a mock-PKI document fails the
// root pin.
func TestDefaultRootIsAWS(t *testing.T) {
	d, err := Verify(baseSpec(t).build(t), Options{Time: mockNow, AnyPCRs: true})
	wantRejected(t, d, err, ErrChain, "pinned root")
}

func TestErrorText(t *testing.T) {
	err := fail(ErrSignature, "r or s is outside [1, n-1]")
	if err.Error() != "signature check failed: r or s is outside [1, n-1]" || err.Check != "signature" {
		t.Fatalf("error text %q check %q", err.Error(), err.Check)
	}
}
