package kmsfake

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/attestd/attestd/kmsenvelope"
)

const agreementKeyID = "0f0f0f0f-1111-2222-3333-444455556666"

// TestDeriveSharedSecret: with a Recipient the ECDH secret of the KMS key and the caller's public key
// comes only in CiphertextForRecipient (never SharedSecret), and it is the secret the other party
// computes from the KMS key's public key; the action is kms:DeriveSharedSecret; a symmetric key, a
// public key on another curve, or another algorithm is refused, and an agreement key serves no
// symmetric operation.
func TestDeriveSharedSecret(t *testing.T) {
	e := newEnclave(t)
	cond := map[string]string{condImageSha384: e.pcr[0]}
	srv, err := New(Config{
		Region: testRegion, Account: testAccount, Credentials: testCred, Principal: testPrincipal, Root: e.root,
		Keys: []Key{
			{ID: agreementKeyID, Alias: "alias/agree", Spec: "ECC_NIST_P384", Policy: policyFor("StringEqualsIgnoreCase", cond, "kms:DeriveSharedSecret")},
			{ID: testKeyID, Policy: policyFor("", nil, "kms:*")},
		},
		RandomPolicy: policyFor("", nil, "kms:GenerateRandom"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	f := &fixture{srv: srv, ts: ts}

	peer, err := ecdh.P384().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	peerSPKI, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	kmsPub, err := x509.ParsePKIXPublicKey(srv.AgreementPublicKey(agreementKeyID))
	if err != nil {
		t.Fatal(err)
	}
	kmsECDH, err := kmsPub.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.ECDH(kmsECDH) // what the other party computes
	if err != nil {
		t.Fatal(err)
	}

	status, out := f.call(t, "DeriveSharedSecret", map[string]any{"KeyId": "alias/agree", "KeyAgreementAlgorithm": "ECDH",
		"PublicKey": peerSPKI, "Recipient": e.recipient(t)})
	if status != http.StatusOK || out["SharedSecret"] != nil {
		t.Fatalf("DeriveSharedSecret: %d %v", status, out)
	}
	var keyID, alg, origin string
	_ = json.Unmarshal(out["KeyId"], &keyID)
	_ = json.Unmarshal(out["KeyAgreementAlgorithm"], &alg)
	_ = json.Unmarshal(out["KeyOrigin"], &origin)
	if keyID != srv.KeyARN(agreementKeyID) || alg != "ECDH" || origin != "AWS_KMS" {
		t.Fatalf("KeyId %q, KeyAgreementAlgorithm %q, KeyOrigin %q", keyID, alg, origin)
	}
	secret, err := kmsenvelope.Open(e.key, blob(t, out, "CiphertextForRecipient"))
	if err != nil || !bytes.Equal(secret, want) || len(secret) != 48 {
		t.Fatalf("opened %x, %v; the other party computes %x", secret, err, want)
	}

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256SPKI, _ := x509.MarshalPKIXPublicKey(&p256.PublicKey)
	for _, c := range []struct {
		body     map[string]any
		wantType string
	}{
		{map[string]any{"KeyId": agreementKeyID, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peerSPKI}, "AccessDeniedException"}, // no Recipient
		{map[string]any{"KeyId": agreementKeyID, "KeyAgreementAlgorithm": "ECDH", "PublicKey": p256SPKI, "Recipient": e.recipient(t)}, "ValidationException"},
		{map[string]any{"KeyId": agreementKeyID, "KeyAgreementAlgorithm": "ECDHE", "PublicKey": peerSPKI, "Recipient": e.recipient(t)}, "ValidationException"},
		{map[string]any{"KeyId": agreementKeyID, "KeyAgreementAlgorithm": "ECDH", "PublicKey": []byte("junk"), "Recipient": e.recipient(t)}, "ValidationException"},
		{map[string]any{"KeyId": testKeyID, "KeyAgreementAlgorithm": "ECDH", "PublicKey": peerSPKI, "Recipient": e.recipient(t)}, "InvalidKeyUsageException"},
	} {
		status, out := f.call(t, "DeriveSharedSecret", c.body)
		wantError(t, status, out, http.StatusBadRequest, c.wantType)
	}
	status, out = f.call(t, "GenerateDataKey", map[string]any{"KeyId": agreementKeyID, "KeySpec": "AES_256"})
	wantError(t, status, out, http.StatusBadRequest, "InvalidKeyUsageException")
	if srv.AgreementPublicKey(testKeyID) != nil {
		t.Error("a symmetric key has an agreement public key")
	}
	if _, err := New(Config{Region: testRegion, Account: testAccount, Credentials: testCred, Principal: testPrincipal, Root: e.root,
		Keys: []Key{{ID: "k", Spec: "ECC_SECG_P256K1", Policy: policyFor("", nil, "kms:*")}}, RandomPolicy: policyFor("", nil, "kms:GenerateRandom")}); err == nil || !strings.Contains(err.Error(), "ECC_SECG_P256K1") {
		t.Errorf("an unknown Spec: %v", err)
	}
}
