// Package seal is the attestd-seal-v1 envelope (HPKE, RFC 9180 base mode) and
// RSA-OAEP sealing to an agent's attested keys (docs/sealing.md).
//
// A relying party verifies a document, then seals with SealHPKE (to the hpke
// key) or SealRSA (to the rsa key). Inside the enclave, package keys opens with
// OpenHPKE and OpenRSA, which take the private keys; every failure to open is
// ErrOpenFailed, whatever the cause, so that an opener is no oracle.
//
// The envelope:
//
//	"attestd-seal-v1" (15) || kdf_id (2) || aead_id (2) || B (65) || aad_len (2, <= 1024) || aad || enc || ct
//	info = "attestd-seal-v1" || B    KEM = the one B names    HPKE aad = aad
//
// B is the document's public_key for the hpke key (keys.HPKEBindingTag || KEM
// id || SHA-384(public key)); all integers are big-endian.
package seal

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/attestd/attestd/internal/keybind"
)

const (
	// Tag starts every envelope and the HPKE info.
	Tag = "attestd-seal-v1"
	// MaxPlaintext is the largest plaintext an envelope carries.
	MaxPlaintext = 64 << 10
	// MaxAAD is the largest aad an envelope carries.
	MaxAAD = 1024
	// RSACiphertextSize is the size of an RSA-2048 OAEP ciphertext.
	RSACiphertextSize = keybind.RSABits / 8
)

// HPKE suite identifiers (RFC 9180 §7) the envelope uses.
const (
	KDFHKDFSHA256        uint16 = 0x0001
	AEADAES256GCM        uint16 = 0x0002
	AEADChaCha20Poly1305 uint16 = 0x0003
)

// Envelope layout.
const (
	kdfOffset     = len(Tag)
	aeadOffset    = kdfOffset + 2
	bindingOffset = aeadOffset + 2
	aadLenOffset  = bindingOffset + keybind.HPKESize
	headerSize    = aadLenOffset + 2 // everything before aad: 86 bytes
	infoSize      = len(Tag) + keybind.HPKESize
	tagSize       = 16 // the tag of both AEADs
	encSizeX25519 = 32
	encSizeXWing  = 1120
)

// MaxEnvelope is the largest envelope an opener accepts: a MaxPlaintext
// plaintext with a MaxAAD aad to an X-Wing key (67,782 bytes).
const MaxEnvelope = headerSize + MaxAAD + encSizeXWing + MaxPlaintext + tagSize

// OAEP hash names for SealRSA and OpenRSA; MGF1 uses the same hash.
const (
	OAEPSHA256 = "sha256"
	OAEPSHA1   = "sha1" // pycryptodome's PKCS1_OAEP default
)

// ErrOpenFailed is the one error of every failure to open, with one message:
// an opener that says why (size, tag, binding, padding) is an oracle.
var ErrOpenFailed = errors.New("seal: the ciphertext could not be opened")

// encSize is the size of the KEM's encapsulation, for the KEMs a binding may name.
func encSize(kemID uint16) int {
	switch kemID {
	case keybind.KEMIDX25519:
		return encSizeX25519
	case keybind.KEMIDMLKEM768X25519:
		return encSizeXWing
	}
	return -1
}

// SealHPKE seals plaintext (at most MaxPlaintext bytes) with aad (at most
// MaxAAD bytes, authenticated and returned on open) to the agent's HPKE key.
// binding is the verified document's public_key and publicKey the full HPKE
// public key returned beside the document: SealHPKE checks that binding binds
// publicKey (keys.CheckBinding's rule; a mismatch wraps
// keys.ErrBindingMismatch) before it seals, with HKDF-SHA256 and AES-256-GCM.
func SealHPKE(binding, publicKey, aad, plaintext []byte) ([]byte, error) {
	pk, err := keybind.CheckHPKE(binding, publicKey)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return sealHPKE(pk, binding, KDFHKDFSHA256, AEADAES256GCM, aad, plaintext)
}

// sealHPKE builds an envelope with any suite Go knows, so that tests can make
// well-formed envelopes the opener must refuse.
func sealHPKE(pk hpke.PublicKey, binding []byte, kdfID, aeadID uint16, aad, plaintext []byte) ([]byte, error) {
	if len(aad) > MaxAAD {
		return nil, fmt.Errorf("seal: aad is %d bytes, over %d", len(aad), MaxAAD)
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("seal: plaintext is %d bytes, over %d", len(plaintext), MaxPlaintext)
	}
	kdf, err := hpke.NewKDF(kdfID)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := hpke.NewAEAD(aeadID)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, kdf, aead, info(binding))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ct, err := sender.Seal(aad, plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, 0, headerSize+len(aad)+len(enc)+len(ct))
	out = append(out, Tag...)
	out = binary.BigEndian.AppendUint16(out, kdfID)
	out = binary.BigEndian.AppendUint16(out, aeadID)
	out = append(out, binding...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(aad)))
	out = append(out, aad...)
	out = append(out, enc...)
	return append(out, ct...), nil
}

func info(binding []byte) []byte {
	return append(append(make([]byte, 0, infoSize), Tag...), binding...)
}

// envelope is a parsed envelope; its slices alias the input.
type envelope struct {
	kdf, aead uint16
	binding   []byte
	aad       []byte
	enc       []byte
	ct        []byte
}

// parse checks every field of an envelope and says which one is wrong. Open
// turns each of these errors into ErrOpenFailed.
func parse(b []byte) (*envelope, error) {
	if len(b) < headerSize {
		return nil, fmt.Errorf("envelope: %d bytes, shorter than its %d-byte header", len(b), headerSize)
	}
	if len(b) > MaxEnvelope {
		return nil, fmt.Errorf("envelope: %d bytes, over %d", len(b), MaxEnvelope)
	}
	if string(b[:len(Tag)]) != Tag {
		return nil, errors.New("envelope: tag is not " + Tag)
	}
	e := &envelope{
		kdf:     binary.BigEndian.Uint16(b[kdfOffset:]),
		aead:    binary.BigEndian.Uint16(b[aeadOffset:]),
		binding: b[bindingOffset:aadLenOffset],
	}
	if e.kdf != KDFHKDFSHA256 {
		return nil, fmt.Errorf("envelope: kdf_id 0x%04x is not 0x%04x", e.kdf, KDFHKDFSHA256)
	}
	if e.aead != AEADAES256GCM && e.aead != AEADChaCha20Poly1305 {
		return nil, fmt.Errorf("envelope: aead_id 0x%04x is not 0x%04x or 0x%04x", e.aead, AEADAES256GCM, AEADChaCha20Poly1305)
	}
	kem, err := keybind.KEMOf(e.binding)
	if err != nil {
		return nil, fmt.Errorf("envelope: B: %v", err)
	}
	aadLen := int(binary.BigEndian.Uint16(b[aadLenOffset:]))
	if aadLen > MaxAAD {
		return nil, fmt.Errorf("envelope: aad_len %d is over %d", aadLen, MaxAAD)
	}
	rest := b[headerSize:]
	if len(rest) < aadLen {
		return nil, fmt.Errorf("envelope: aad_len %d, %d bytes left", aadLen, len(rest))
	}
	e.aad, rest = rest[:aadLen], rest[aadLen:]
	n := encSize(kem.ID())
	if len(rest) < n+tagSize {
		return nil, fmt.Errorf("envelope: %d bytes for enc (%d) and ct (at least %d)", len(rest), n, tagSize)
	}
	e.enc, e.ct = rest[:n], rest[n:]
	if len(e.ct) > MaxPlaintext+tagSize {
		return nil, fmt.Errorf("envelope: ct is %d bytes, over %d", len(e.ct), MaxPlaintext+tagSize)
	}
	return e, nil
}

// OpenHPKE opens an envelope sealed to the HPKE key priv, whose document
// binding is binding, and returns the plaintext and the aad the sender
// authenticated. The envelope must name this binding and a suite the opener
// accepts: KDF HKDF-SHA256 with AEAD AES-256-GCM or ChaCha20-Poly1305. Every
// failure is ErrOpenFailed.
func OpenHPKE(priv hpke.PrivateKey, binding, sealed []byte) (plaintext, aad []byte, err error) {
	e, err := parse(sealed)
	if err != nil || string(e.binding) != string(binding) || priv.KEM().ID() != kemIDOf(binding) {
		return nil, nil, ErrOpenFailed
	}
	r, err := newRecipient(priv, e.kdf, e.aead, info(e.binding), e.enc)
	if err != nil {
		return nil, nil, ErrOpenFailed
	}
	pt, err := r.Open(e.aad, e.ct)
	if err != nil {
		return nil, nil, ErrOpenFailed
	}
	return pt, append([]byte(nil), e.aad...), nil
}

func kemIDOf(binding []byte) uint16 {
	if len(binding) != keybind.HPKESize {
		return 0
	}
	return binary.BigEndian.Uint16(binding[len(keybind.HPKETag):])
}

// newRecipient is the envelope's HPKE path: it admits only the suites the
// opener accepts and an enc of the KEM's size. The RFC 9180 and X-Wing test
// vectors run through it.
func newRecipient(priv hpke.PrivateKey, kdfID, aeadID uint16, info, enc []byte) (*hpke.Recipient, error) {
	if kdfID != KDFHKDFSHA256 || (aeadID != AEADAES256GCM && aeadID != AEADChaCha20Poly1305) {
		return nil, fmt.Errorf("seal: unsupported suite KDF 0x%04x AEAD 0x%04x", kdfID, aeadID)
	}
	if n := encSize(priv.KEM().ID()); len(enc) != n {
		return nil, fmt.Errorf("seal: enc is %d bytes, KEM 0x%04x wants %d", len(enc), priv.KEM().ID(), n)
	}
	aead := hpke.AES256GCM()
	if aeadID == AEADChaCha20Poly1305 {
		aead = hpke.ChaCha20Poly1305()
	}
	return hpke.NewRecipient(enc, priv, hpke.HKDFSHA256(), aead, info)
}

// oaepHash returns the OAEP (and MGF1) hash for a name; nothing else and never
// PKCS#1 v1.5.
func oaepHash(name string) (hash.Hash, error) {
	switch name {
	case OAEPSHA256:
		return sha256.New(), nil
	case OAEPSHA1:
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("seal: OAEP hash %q is not %s or %s", name, OAEPSHA256, OAEPSHA1)
}

// SealRSA encrypts plaintext to an RSA-2048 SubjectPublicKeyInfo DER (e =
// 65537) with RSAES-OAEP, an empty label and MGF1 with the OAEP hash, hash
// being OAEPSHA256 or OAEPSHA1. The result is the raw 256-byte ciphertext.
// The plaintext is at most 190 bytes (SHA-256) or 214 (SHA-1).
func SealRSA(spki []byte, hash string, plaintext []byte) ([]byte, error) {
	h, err := oaepHash(hash)
	if err != nil {
		return nil, err
	}
	pub, err := keybind.CheckRSA(spki, spki)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	ct, err := rsa.EncryptOAEP(h, rand.Reader, pub, plaintext, nil)
	if err != nil {
		return nil, fmt.Errorf("seal: RSA-OAEP-%s: %w", hash, err)
	}
	return ct, nil
}

// OpenRSA decrypts a raw RSA-2048 OAEP ciphertext (RSACiphertextSize bytes,
// empty label, MGF1 with the OAEP hash) with priv; hash is OAEPSHA256 or
// OAEPSHA1 as the sender chose. Every failure is ErrOpenFailed.
func OpenRSA(priv *rsa.PrivateKey, hash string, ciphertext []byte) ([]byte, error) {
	h, err := oaepHash(hash)
	if err != nil || priv == nil || priv.Size() != RSACiphertextSize || len(ciphertext) != RSACiphertextSize {
		return nil, ErrOpenFailed
	}
	pt, err := rsa.DecryptOAEP(h, nil, priv, ciphertext, nil)
	if err != nil {
		return nil, ErrOpenFailed
	}
	return pt, nil
}
