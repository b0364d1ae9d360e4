package kmsenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
)

// ErrOpen is Open's one error, whatever went wrong: a caller who can submit envelopes must not
// learn which check failed (structure, key identifier, RSA-OAEP, content key, padding).
var ErrOpen = errors.New("kmsenvelope: the envelope could not be opened")

// KeyID returns the rid KMS writes for pub: SHA-256 of its SubjectPublicKeyInfo DER, the bytes a
// Recipient's attestation document carries in public_key.
func KeyID(pub *rsa.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(spki)
	return sum[:], nil
}

// Open parses ber strictly (Parse), checks that its rid names priv's public key, and decrypts it:
// RSAES-OAEP-SHA-256 for the content key, which must be 32 bytes, then AES-256-CBC with PKCS#7
// padding. Every failure is ErrOpen. After the structural checks the work does not depend on
// which later check fails: a bad RSA-OAEP block or a content key of the wrong size is replaced by
// a random key and the content is still decrypted and unpadded, so that timing tells no more than
// the error does.
func Open(priv *rsa.PrivateKey, ber []byte) ([]byte, error) {
	if priv == nil {
		return nil, ErrOpen
	}
	e, err := Parse(ber)
	if err != nil {
		return nil, ErrOpen
	}
	id, err := KeyID(&priv.PublicKey)
	if err != nil || subtle.ConstantTimeCompare(id, e.KeyID) != 1 || len(e.EncryptedKey) != priv.Size() {
		return nil, ErrOpen
	}
	ok := 1
	cek, err := rsa.DecryptOAEP(sha256.New(), nil, priv, e.EncryptedKey, nil)
	if err != nil || len(cek) != ContentKeySize {
		ok = 0
		cek = make([]byte, ContentKeySize)
		rand.Read(cek) // never fails (crypto/rand panics instead)
	}
	block, err := aes.NewCipher(cek)
	clear(cek)
	if err != nil {
		return nil, ErrOpen // unreachable: cek is 32 bytes
	}
	// Parse guarantees a positive multiple of the block size: CryptBlocks would panic otherwise.
	out := make([]byte, len(e.EncryptedContent))
	cipher.NewCBCDecrypter(block, e.IV).CryptBlocks(out, e.EncryptedContent)
	n, padOK := unpad(out)
	if ok&padOK != 1 {
		clear(out)
		return nil, ErrOpen
	}
	return out[:n:n], nil
}

// unpad checks PKCS#7 padding (1..16 bytes, all equal to the count) on b, a positive multiple of
// 16 bytes, without branching on the padding's bytes. It returns the unpadded length and 1 if the
// padding is good, 0 otherwise.
func unpad(b []byte) (int, int) {
	last := b[len(b)-1]
	p := int(last)
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, blockSize)
	for i := range blockSize {
		inPad := subtle.ConstantTimeLessOrEq(i+1, p)
		same := subtle.ConstantTimeByteEq(b[len(b)-1-i], last)
		good &= 1 ^ (inPad & (1 ^ same))
	}
	return subtle.ConstantTimeSelect(good, len(b)-p, 0), good
}
