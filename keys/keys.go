// Package keys holds the agent's ephemeral key pairs and defines how each is
// bound into an attestation document's public_key field.
//
// A Set has two named keys, generated in memory at start-up (after the kernel
// pool is NSM-seeded; Go 1.26 key generation always reads getrandom):
//
//   - "hpke": an HPKE (RFC 9180) key, by default the post-quantum hybrid
//     ML-KEM-768 + X25519 (X-Wing, KEM 0x647a), optionally DHKEM(X25519)
//     (KEM 0x0020). Its public key can exceed the 1,024 bytes public verifiers
//     accept in public_key (X-Wing's is 1,216), so the document carries a
//     digest binding and the full key travels beside the document:
//
//     public_key = "attestd-hpke-v1" || KEM id (2 bytes, big endian) || SHA-384(full public key)
//
//     65 bytes. The tag makes the encoding versioned and domain-separated, the
//     KEM id stops the key from being read under another KEM.
//
//   - "rsa": an RSA-2048 key (e = 65537), what AWS KMS accepts as a Recipient.
//     public_key is its SubjectPublicKeyInfo DER, whole, because KMS reads the
//     key from the document.
//
// CheckBinding is the client side: given the document's public_key and the full
// key returned beside it, it confirms they belong together.
//
// Private keys never leave the process: they are held in unexported fields,
// there is no accessor or serialisation for them, and Key and Set format
// themselves (fmt, log/slog) with public information only. Decryption is a
// method on Key: OpenHPKE (the attestd-seal-v1 envelope of package seal) and
// OpenRSA (RSAES-OAEP), each failing with the one seal.ErrOpenFailed.
package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/attestd/attestd/internal/keybind"
	"github.com/attestd/attestd/seal"
)

// Key names.
const (
	HPKE = "hpke"
	RSA  = "rsa"
)

// HPKE KEM names accepted by Config.
const (
	KEMMLKEM768X25519 = "mlkem768x25519"
	KEMX25519         = "x25519"
)

// HPKE KEM identifiers (RFC 9180, draft-ietf-hpke-pq).
const (
	KEMIDX25519         = keybind.KEMIDX25519
	KEMIDMLKEM768X25519 = keybind.KEMIDMLKEM768X25519
)

const (
	// RSABits is the RSA modulus size, what KMS Recipient accepts.
	RSABits = keybind.RSABits
	// MaxDocumentPublicKey is the largest public_key every public verifier accepts.
	MaxDocumentPublicKey = 1024
	// HPKEBindingTag starts an HPKE digest binding.
	HPKEBindingTag = keybind.HPKETag
	// HPKEBindingSize is the size of an HPKE digest binding.
	HPKEBindingSize = keybind.HPKESize
)

// Binding kinds: how a key's public part is carried in public_key.
const (
	BindingDigest = "digest" // HPKEBindingTag || KEM id || SHA-384(key)
	BindingWhole  = "whole"  // the public key itself (SPKI DER for RSA)
)

var (
	// ErrUnknownKey reports a key name that is not in the Set.
	ErrUnknownKey = errors.New("keys: unknown key name")
	// ErrBindingMismatch reports a document public_key that does not bind the given key.
	ErrBindingMismatch = keybind.ErrMismatch
)

// Config chooses the algorithms of a Set.
type Config struct {
	// HPKEKEM is KEMMLKEM768X25519 (the default when empty) or KEMX25519.
	HPKEKEM string
}

// Key is one named key pair of the agent.
type Key struct {
	name      string
	algorithm string
	binding   string
	public    []byte // the full public key
	document  []byte // what goes into public_key

	// Private halves: unexported, never formatted or serialised.
	hpkeKey hpke.PrivateKey
	rsaKey  *rsa.PrivateKey
}

// Name returns the key's name (HPKE or RSA).
func (k *Key) Name() string { return k.name }

// Algorithm describes the key, e.g. "HPKE KEM 0x647a (MLKEM768-X25519)".
func (k *Key) Algorithm() string { return k.algorithm }

// Binding returns how the key is bound into public_key: BindingDigest or BindingWhole.
func (k *Key) Binding() string { return k.binding }

// PublicKey returns a copy of the full public key: the HPKE serialised public
// key (RFC 9180 SerializePublicKey) or the RSA SubjectPublicKeyInfo DER.
func (k *Key) PublicKey() []byte { return bytes.Clone(k.public) }

// DocumentPublicKey returns a copy of what goes into the document's
// public_key; at most MaxDocumentPublicKey bytes.
func (k *Key) DocumentPublicKey() []byte { return bytes.Clone(k.document) }

// String describes the key by its public part only.
func (k Key) String() string {
	return fmt.Sprintf("%s key (%s, public %x…)", k.name, k.algorithm, k.public[:min(8, len(k.public))])
}

// Format prints String for every verb, so no fmt verb can reach the private
// fields through reflection. String, Format and LogValue have value receivers
// so that a dereferenced Key is covered too.
func (k Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue logs the key by its public part only.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.name), slog.String("algorithm", k.algorithm),
		slog.String("binding", k.binding), slog.Int("public_key_bytes", len(k.public)))
}

// Set is the agent's named keys. It is immutable after Generate and safe for
// concurrent use.
type Set struct {
	keys []*Key // in name order
}

// Generate creates the HPKE key, then the RSA key, from the system RNG.
func Generate(cfg Config) (*Set, error) {
	kem, algorithm, err := hpkeKEM(cfg.HPKEKEM)
	if err != nil {
		return nil, err
	}
	hk, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("keys: generate HPKE key: %w", err)
	}
	hpub := hk.PublicKey().Bytes()
	rk, err := rsa.GenerateKey(rand.Reader, RSABits) // the reader is ignored since Go 1.26: getrandom
	if err != nil {
		return nil, fmt.Errorf("keys: generate RSA key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("keys: encode RSA public key: %w", err)
	}
	s := &Set{keys: []*Key{
		{name: HPKE, algorithm: algorithm, binding: BindingDigest, public: hpub,
			document: hpkeBinding(kem.ID(), hpub), hpkeKey: hk},
		{name: RSA, algorithm: fmt.Sprintf("RSA-%d (SPKI DER)", RSABits), binding: BindingWhole,
			public: spki, document: spki, rsaKey: rk},
	}}
	for _, k := range s.keys {
		if len(k.document) > MaxDocumentPublicKey {
			return nil, fmt.Errorf("keys: %s public_key is %d bytes, over %d", k.name, len(k.document), MaxDocumentPublicKey)
		}
	}
	return s, nil
}

func hpkeKEM(name string) (hpke.KEM, string, error) {
	switch name {
	case "", KEMMLKEM768X25519:
		return hpke.MLKEM768X25519(), "HPKE KEM 0x647a (MLKEM768-X25519)", nil
	case KEMX25519:
		return hpke.DHKEM(ecdh.X25519()), "HPKE KEM 0x0020 (DHKEM(X25519, HKDF-SHA256))", nil
	default:
		return nil, "", fmt.Errorf("keys: unknown HPKE KEM %q (want %s or %s)", name, KEMMLKEM768X25519, KEMX25519)
	}
}

// Get returns the key with the given name, or an error wrapping ErrUnknownKey.
func (s *Set) Get(name string) (*Key, error) {
	for _, k := range s.keys {
		if k.name == name {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, name)
}

// Keys returns the keys in name order.
func (s *Set) Keys() []*Key { return append([]*Key(nil), s.keys...) }

// String lists the keys by their public parts.
func (s Set) String() string { return fmt.Sprint(s.keys) }

// Format prints String for every verb.
func (s Set) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// hpkeBinding is HPKEBindingTag || KEM id || SHA-384(public key).
func hpkeBinding(kemID uint16, public []byte) []byte { return keybind.HPKE(kemID, public) }

// CheckBinding confirms that documentPublicKey, the public_key of a verified
// attestation document, binds fullKey, the key the agent returned beside the
// document under the given name:
//
//   - HPKE: documentPublicKey must be HPKEBindingTag || KEM id || SHA-384(fullKey),
//     with a KEM this package knows and fullKey a valid public key of that KEM;
//   - RSA: documentPublicKey must equal fullKey, an RSA-2048 SubjectPublicKeyInfo
//     DER with e = 65537.
//
// A mismatch wraps ErrBindingMismatch.
func CheckBinding(name string, documentPublicKey, fullKey []byte) error {
	var err error
	switch name {
	case HPKE:
		_, err = keybind.CheckHPKE(documentPublicKey, fullKey)
	case RSA:
		_, err = keybind.CheckRSA(documentPublicKey, fullKey)
	default:
		err = fmt.Errorf("%w %q", ErrUnknownKey, name)
	}
	return err
}

// OpenHPKE opens an attestd-seal-v1 envelope (package seal) sealed to this
// HPKE key and returns the plaintext and the aad the sender authenticated.
// Every failure, including calling it on a key that is not the HPKE key, is
// seal.ErrOpenFailed.
func (k *Key) OpenHPKE(envelope []byte) (plaintext, aad []byte, err error) {
	if k.hpkeKey == nil {
		return nil, nil, seal.ErrOpenFailed
	}
	return seal.OpenHPKE(k.hpkeKey, k.document, envelope)
}

// OpenRSA decrypts a raw RSAES-OAEP ciphertext sealed to this RSA key, with
// hash seal.OAEPSHA256 or seal.OAEPSHA1 for OAEP and MGF1 and an empty label
// (never PKCS#1 v1.5). Every failure, including calling it on a key that is
// not the RSA key, is seal.ErrOpenFailed.
func (k *Key) OpenRSA(hash string, ciphertext []byte) ([]byte, error) {
	if k.rsaKey == nil {
		return nil, seal.ErrOpenFailed
	}
	return seal.OpenRSA(k.rsaKey, hash, ciphertext)
}
