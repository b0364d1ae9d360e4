package kmsfake

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/attestd/attestd/kmsenvelope"
)

// TestGenerateDataKeyPair: with a Recipient the answer carries the public key (SPKI DER), the private key
// sealed under the KMS key, and the PKCS#8 private key only in CiphertextForRecipient (never in
// PrivateKeyPlaintext); the opened private key is the public key's, of the spec asked for. The action is
// kms:GenerateDataKeyPair (a policy allowing only GenerateDataKey denies it), the PrivateKeyCiphertextBlob
// decrypts (without a Recipient, where the key policy allows it) to the same private key, and an unknown
// spec is a ValidationException.
func TestGenerateDataKeyPair(t *testing.T) {
	e := newEnclave(t)
	cond := map[string]string{condImageSha384: e.pcr[0]}
	f := newFixture(t, e.root, policyFor("StringEqualsIgnoreCase", cond, "kms:GenerateDataKeyPair"), policyFor("", nil, "kms:GenerateRandom"))
	ec := map[string]string{"app": "keypair"}
	for _, tc := range []struct {
		spec  string
		check func(pub crypto.PublicKey) bool
	}{
		{"ECC_NIST_P256", func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() }},
		{"ECC_NIST_P384", func(p crypto.PublicKey) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P384() }},
		{"RSA_2048", func(p crypto.PublicKey) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 }},
	} {
		status, out := f.call(t, "GenerateDataKeyPair", map[string]any{"KeyId": testKeyID, "KeyPairSpec": tc.spec,
			"EncryptionContext": ec, "Recipient": e.recipient(t)})
		if status != http.StatusOK || out["PrivateKeyPlaintext"] != nil {
			t.Fatalf("%s: %d %v", tc.spec, status, out)
		}
		var spec, keyID string
		_ = json.Unmarshal(out["KeyPairSpec"], &spec)
		_ = json.Unmarshal(out["KeyId"], &keyID)
		if spec != tc.spec || keyID != f.srv.KeyARN(testKeyID) {
			t.Fatalf("%s: KeyPairSpec %q, KeyId %q", tc.spec, spec, keyID)
		}
		pkcs8, err := kmsenvelope.Open(e.key, blob(t, out, "CiphertextForRecipient"))
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(pkcs8)
		if err != nil {
			t.Fatalf("%s: the opened private key: %v", tc.spec, err)
		}
		pub, err := x509.ParsePKIXPublicKey(blob(t, out, "PublicKey"))
		if err != nil || !tc.check(pub) || !priv.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
			t.Fatalf("%s: PublicKey %T %v does not match the private key %T", tc.spec, pub, err, priv)
		}
		issued := f.srv.Issued()
		if last := issued[len(issued)-1]; last.Operation != "GenerateDataKeyPair" || !last.Recipient || !bytes.Equal(last.Plaintext, pkcs8) {
			t.Fatalf("%s: issued %+v", tc.spec, last)
		}
		if plain, err := openBlob(f.srv.keys[testKeyID].material, blob(t, out, "PrivateKeyCiphertextBlob"), ec); err != nil || !bytes.Equal(plain, pkcs8) {
			t.Fatalf("%s: PrivateKeyCiphertextBlob: %v", tc.spec, err)
		}
	}

	status, out := f.call(t, "GenerateDataKeyPair", map[string]any{"KeyId": testKeyID, "KeyPairSpec": "ECC_SECG_P256K1", "Recipient": e.recipient(t)})
	wantError(t, status, out, http.StatusBadRequest, "ValidationException")
	status, out = f.call(t, "GenerateDataKeyPair", map[string]any{"KeyId": testKeyID, "KeyPairSpec": "ECC_NIST_P256"})
	wantError(t, status, out, http.StatusBadRequest, "AccessDeniedException") // no Recipient: the condition fails

	g := newFixture(t, e.root, policyFor("StringEqualsIgnoreCase", cond, "kms:GenerateDataKey"), policyFor("", nil, "kms:GenerateRandom"))
	status, out = g.call(t, "GenerateDataKeyPair", map[string]any{"KeyId": testKeyID, "KeyPairSpec": "ECC_NIST_P256", "Recipient": e.recipient(t)})
	wantError(t, status, out, http.StatusBadRequest, "AccessDeniedException") // GenerateDataKey is not GenerateDataKeyPair

	h := newFixture(t, e.root, policyFor("", nil, "kms:GenerateDataKeyPair"), policyFor("", nil, "kms:GenerateRandom"))
	status, out = h.call(t, "GenerateDataKeyPair", map[string]any{"KeyId": testKeyID, "KeyPairSpec": "ECC_NIST_P384"})
	if status != http.StatusOK || out["CiphertextForRecipient"] != nil {
		t.Fatalf("without a Recipient: %d %v", status, out)
	}
	if _, err := x509.ParsePKCS8PrivateKey(blob(t, out, "PrivateKeyPlaintext")); err != nil {
		t.Fatalf("PrivateKeyPlaintext: %v", err)
	}
}
