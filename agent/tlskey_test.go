package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/vsockrpc"
)

// TestAttestTLSKeyEndToEnd: through the local socket, attest_tls_key returns a document from the
// software NSM whose public_key is exactly the application's SPKI, with its nonce and no
// user_data; the parent socket does not have the method.
func TestAttestTLSKeyEndToEnd(t *testing.T) {
	s := startStack(t, func(c *Config) { c.UserData = []byte("stored user data") })
	local, parent := dial(t, s.local), dial(t, s.parent)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []any{&k.PublicKey, pub} {
		spki, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		for _, nonce := range [][]byte{nil, []byte("a fresh nonce")} {
			doc, err := local.AttestTLSKey(ctx, spki, nonce)
			if err != nil {
				t.Fatal(err)
			}
			opts := *s.root
			opts.PublicKey = spki
			opts.Nonce = nonce
			d, err := attestation.Verify(doc, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(d.PublicKey, spki) || d.UserData != nil || (nonce == nil) != (d.Nonce == nil) {
				t.Fatalf("public_key %x user_data %q nonce %q", d.PublicKey, d.UserData, d.Nonce)
			}
		}
		_, err = parent.AttestTLSKey(ctx, spki, []byte("n"))
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != vsockrpc.CodeUnknownMethod {
			t.Fatalf("parent API: got %v, want unknown_method", err)
		}
	}
}

// TestAttestTLSKeyChecks: the agent checks the key and the nonce itself too.
func TestAttestTLSKeyChecks(t *testing.T) {
	s := startStack(t, func(c *Config) { c.NonceMin = 8 })
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	for _, tc := range []struct {
		req  vsockrpc.TLSKeyRequest
		code string
	}{
		{vsockrpc.TLSKeyRequest{PublicKey: []byte("x")}, vsockrpc.CodeBadRequest},
		{vsockrpc.TLSKeyRequest{PublicKey: spki, Nonce: []byte("short")}, vsockrpc.CodeBadRequest},
		{vsockrpc.TLSKeyRequest{PublicKey: spki, Nonce: make([]byte, 513)}, vsockrpc.CodeNonceTooLarge},
	} {
		_, err := s.agent.AttestTLSKey(context.Background(), tc.req)
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != tc.code {
			t.Fatalf("%x: got %v, want %s", tc.req.Nonce, err, tc.code)
		}
	}
}
