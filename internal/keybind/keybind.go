// Package keybind defines how an agent key is carried in an attestation
// document's public_key (docs/protocol.md §6). It is the one implementation
// behind keys.CheckBinding, kept below both package keys (which holds the
// private halves and opens ciphertexts) and package seal (which checks the
// binding before it seals), so that neither imports the other's half.
package keybind

import (
	"bytes"
	"crypto/hpke"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

const (
	// HPKETag starts an HPKE digest binding.
	HPKETag = "attestd-hpke-v1"
	// HPKESize is the size of an HPKE digest binding: tag, KEM id, SHA-384.
	HPKESize = len(HPKETag) + 2 + sha512.Size384
	// RSABits is the only RSA modulus size a binding accepts.
	RSABits = 2048
)

// HPKE KEM identifiers (RFC 9180, draft-ietf-hpke-pq) a binding may name.
const (
	KEMIDX25519         uint16 = 0x0020
	KEMIDMLKEM768X25519 uint16 = 0x647a
)

// ErrMismatch reports a document public_key that does not bind the given key.
var ErrMismatch = errors.New("keys: document public_key does not bind the key")

// HPKE returns the digest binding HPKETag || KEM id || SHA-384(public).
func HPKE(kemID uint16, public []byte) []byte {
	b := make([]byte, 0, HPKESize)
	b = append(b, HPKETag...)
	b = binary.BigEndian.AppendUint16(b, kemID)
	sum := sha512.Sum384(public)
	return append(b, sum[:]...)
}

// KEMOf returns the KEM an HPKE binding names, or an error wrapping
// ErrMismatch if doc is not a binding of a supported KEM. It does not check
// the digest.
func KEMOf(doc []byte) (hpke.KEM, error) {
	if len(doc) != HPKESize || !bytes.HasPrefix(doc, []byte(HPKETag)) {
		return nil, fmt.Errorf("%w: public_key is not an %s binding (%d bytes)", ErrMismatch, HPKETag, len(doc))
	}
	id := binary.BigEndian.Uint16(doc[len(HPKETag):])
	if id != KEMIDX25519 && id != KEMIDMLKEM768X25519 {
		return nil, fmt.Errorf("%w: unsupported HPKE KEM 0x%04x", ErrMismatch, id)
	}
	kem, err := hpke.NewKEM(id)
	if err != nil {
		return nil, fmt.Errorf("keys: HPKE KEM 0x%04x: %w", id, err)
	}
	return kem, nil
}

// CheckHPKE confirms that doc is HPKETag || KEM id || SHA-384(full), with a
// supported KEM and full a valid public key of that KEM, and returns that key.
func CheckHPKE(doc, full []byte) (hpke.PublicKey, error) {
	kem, err := KEMOf(doc)
	if err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(full)
	if err != nil {
		return nil, fmt.Errorf("%w: the returned key is not a KEM 0x%04x public key: %v", ErrMismatch, kem.ID(), err)
	}
	if want := HPKE(kem.ID(), full); !bytes.Equal(doc, want) {
		return nil, fmt.Errorf("%w: SHA-384 of the returned HPKE key is %s, the document binds %s", ErrMismatch,
			hex.EncodeToString(want[len(want)-sha512.Size384:]), hex.EncodeToString(doc[len(doc)-sha512.Size384:]))
	}
	return pk, nil
}

// CheckRSA confirms that doc equals full, an RSA-2048 SubjectPublicKeyInfo DER
// with e = 65537, and returns that key.
func CheckRSA(doc, full []byte) (*rsa.PublicKey, error) {
	if !bytes.Equal(doc, full) {
		return nil, fmt.Errorf("%w: the returned RSA key differs from the document's public_key", ErrMismatch)
	}
	pub, err := x509.ParsePKIXPublicKey(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: public_key is not a SubjectPublicKeyInfo: %v", ErrMismatch, err)
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: public_key is a %T, not RSA", ErrMismatch, pub)
	}
	if rk.N.BitLen() != RSABits || rk.E != 65537 {
		return nil, fmt.Errorf("%w: RSA key is %d bits with e=%d, want %d bits, e=65537", ErrMismatch, rk.N.BitLen(), rk.E, RSABits)
	}
	return rk, nil
}
