package kmsenvelope

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOpenSSLEnvelopes: envelopes made by OpenSSL, an independent CMS producer, by the route of
// docs/kms.md (a throwaway certificate carrying the recipient key and a subjectKeyIdentifier forced
// to SHA-256 of its SPKI, -keyid, RSAES-OAEP SHA-256): with -stream (indefinite lengths, chunked
// content) and without (definite lengths) they open, although OpenSSL omits the NULL hash
// parameters KMS writes. OpenSSL's default recipient identifier, issuerAndSerialNumber (version 0:
// the LocalStack shape), is refused.
func TestOpenSSLEnvelopes(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found: scripts/ensure-tools.sh installs it")
	}
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ski := sha256.Sum256(spki)
	for name, data := range map[string][]byte{
		"spki.pem": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}),
		"ext.cnf":  []byte("[x]\nsubjectKeyIdentifier=" + hex.EncodeToString(ski[:]) + "\n"),
		"pt.bin":   []byte("a plaintext from OpenSSL, over one block"),
	} {
		if err := os.WriteFile(path(name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("ca.pem"))
	run("x509", "-new", "-key", path("ca.pem"), "-force_pubkey", path("spki.pem"), "-subj", "/CN=r", "-days", "1",
		"-extfile", path("ext.cnf"), "-extensions", "x", "-out", path("recip.pem"))
	encrypt := func(out string, extra ...string) []byte {
		t.Helper()
		args := append([]string{"cms", "-encrypt", "-binary", "-aes-256-cbc", "-recip", path("recip.pem"),
			"-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256",
			"-outform", "DER", "-in", path("pt.bin"), "-out", path(out)}, extra...)
		run(args...)
		b, err := os.ReadFile(path(out))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, form := range [][]string{{"-keyid", "-stream"}, {"-keyid"}} {
		env := encrypt("cfr.ber", form...)
		e, err := Parse(env)
		if err != nil {
			t.Fatalf("%v: %v", form, err)
		}
		if e.HashParamsNull { // OpenSSL 3.0 omits them; the absent form is also tested without it
			t.Logf("%v: this OpenSSL writes NULL hash parameters", form)
		}
		pt, err := Open(key, env)
		if err != nil || string(pt) != "a plaintext from OpenSSL, over one block" {
			t.Fatalf("%v: Open: %q, %v", form, pt, err)
		}
	}
	env := encrypt("ias.ber") // no -keyid: issuerAndSerialNumber, version 0
	_, err = Parse(env)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "EnvelopedData.version" {
		t.Fatalf("issuerAndSerialNumber envelope: %v, want a *FieldError on EnvelopedData.version", err)
	}
	if _, err := Open(key, env); err != ErrOpen {
		t.Fatalf("Open of the issuerAndSerialNumber envelope: %v", err)
	}
}
