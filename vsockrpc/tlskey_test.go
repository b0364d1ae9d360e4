package vsockrpc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"slices"
	"testing"
)

func spkiOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tlsKeys returns one accepted SPKI of each allowed type.
func tlsKeys(t testing.TB) map[string][]byte {
	t.Helper()
	keys := map[string][]byte{}
	for name, curve := range map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[name] = spkiOf(t, &k.PublicKey)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys["Ed25519"] = spkiOf(t, pub)
	return keys
}

// TestAttestTLSKey: the local API passes exactly the checked SPKI and the nonce to the service,
// and the client gets the document back.
func TestAttestTLSKey(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	for name, spki := range tlsKeys(t) {
		for _, nonce := range [][]byte{nil, []byte("n"), make([]byte, MaxNonceSize)} {
			doc, err := c.AttestTLSKey(context.Background(), spki, nonce)
			want := append(append(append([]byte("tls|"), spki...), '|'), nonce...)
			if err != nil || !bytes.Equal(doc, want) {
				t.Fatalf("%s nonce %d bytes: %v", name, len(nonce), err)
			}
		}
	}
}

// TestAttestTLSKeyRejects: public_key must be a canonical SPKI of an allowed type and size, the
// nonce within bounds; the service is never called otherwise.
func TestAttestTLSKeyRejects(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := tlsKeys(t)["P-256"]
	long := append(slices.Clone(good), 0) // trailing byte
	for _, tc := range []struct {
		name   string
		params map[string]any
		code   string
		msg    string
	}{
		{"no key", map[string]any{"nonce": []byte("n")}, CodeBadRequest, `missing param "public_key"`},
		{"empty key", map[string]any{"public_key": []byte{}}, CodeBadRequest, "public_key: empty"},
		{"too long", map[string]any{"public_key": make([]byte, MaxTLSKeySize+1)}, CodeBadRequest, "1025 bytes, limit 1024"},
		{"not DER", map[string]any{"public_key": []byte("attacker key")}, CodeBadRequest, "not a SubjectPublicKeyInfo"},
		{"trailing", map[string]any{"public_key": long}, CodeBadRequest, "public_key"},
		{"P-521", map[string]any{"public_key": spkiOf(t, &p521.PublicKey)}, CodeBadRequest, "P-521"},
		{"RSA", map[string]any{"public_key": spkiOf(t, &rsaKey.PublicKey)}, CodeBadRequest, "want ECDSA P-256, P-384 or Ed25519"},
		{"text key", map[string]any{"public_key": "k"}, CodeBadRequest, "public_key"},
		{"nonce too large", map[string]any{"public_key": good, "nonce": make([]byte, MaxNonceSize+1)}, CodeNonceTooLarge, "513 bytes, limit 512"},
		{"user_data", map[string]any{"public_key": good, "user_data": []byte("u")}, CodeBadRequest, `unknown param "user_data"`},
	} {
		wantCode(t, callRaw(c, MethodAttestTLSKey, tc.params), tc.code, tc.msg)
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestParentHasNoAttestTLSKey: the parent API does not know attest_tls_key, so the parent can never
// choose a document's public_key.
func TestParentHasNoAttestTLSKey(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, ParentAPI(f), Limits{})
	c := dialT(t, addr)
	_, err := c.AttestTLSKey(context.Background(), tlsKeys(t)["P-384"], []byte("n"))
	wantCode(t, err, CodeUnknownMethod, "no method")
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestTLSKeyEncodeMatchesFxamacker: params and result are written as fxamacker writes them.
func TestTLSKeyEncodeMatchesFxamacker(t *testing.T) {
	for _, v := range []encoder{
		tlsKeyParams{PublicKey: []byte{1}},
		tlsKeyParams{PublicKey: make([]byte, 1024), Nonce: []byte{2}},
		&TLSKeyResult{Document: make([]byte, 5000)},
	} {
		enc := v.appendCBOR(nil)
		want, err := encMode.Marshal(v)
		if err != nil || !bytes.Equal(enc, want) {
			t.Errorf("%T: encoded %x, fxamacker %x (%v)", v, enc, want, err)
		}
	}
}
