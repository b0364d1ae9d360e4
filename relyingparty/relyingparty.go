// Package relyingparty is the relying party's side of attestd in one place:
// verify an attestation document, then check that it binds the full public key
// the agent returned beside it, and only then use that key.
//
// A relying party fetches a document with a fresh random nonce (Fetch), or
// re-checks a document and key it saved earlier (Check); either way it gets a
// Key only when the document verified under the caller's attestation.Options
// (certificate chain to the root, signature, freshness, PCR policy, debug
// mode, nonce) and the key binding held (keys.CheckBinding). There is no other
// way to make a Key, so holding one means both checks passed.
//
//	c, err := vsockrpc.Dial(ctx, "vsock://16:5005")
//	...
//	k, err := relyingparty.Fetch(ctx, c, keys.HPKE, attestation.Options{
//		PCRs: map[int][][]byte{0: {pcr0}}, // a PCR policy is required
//	})
//	if err != nil {
//		return err // transport failure, or the document or binding was rejected
//	}
//	envelope, err := k.Seal(secret, relyingparty.SealOptions{AAD: []byte("db password")})
//
// Offline, from a document and key saved by `attest fetch --out DOC --out-key KEY`:
//
//	k, err := relyingparty.Check(keys.RSA, doc, key, opts) // max-age applies: a stale document is refused
//
// The package imports the verifier, the key-binding rules, the envelope (seal)
// and the wire client,
// never the agent.
package relyingparty

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

// NonceSize is the size of the fresh random nonce Fetch sends when
// Options.Nonce is nil.
const NonceSize = 32

var (
	// ErrKeyName reports a key name other than keys.HPKE and keys.RSA.
	ErrKeyName = errors.New("relyingparty: unknown key name")
	// ErrAgent wraps a failure to get a document from the agent (transport or
	// agent error), as opposed to a document that was rejected.
	ErrAgent = errors.New("agent")
)

// Key is an attested key: a verified document and the full public key it binds.
// Only Fetch and Check make one.
type Key struct {
	name string
	doc  *attestation.Document
	raw  []byte
	full []byte
}

// Name is keys.HPKE or keys.RSA.
func (k *Key) Name() string { return k.name }

// Document is the verified document.
func (k *Key) Document() *attestation.Document { return k.doc }

// RawDocument returns a copy of the document as received (COSE_Sign1 bytes):
// what `attest fetch --out` saves.
func (k *Key) RawDocument() []byte { return append([]byte(nil), k.raw...) }

// PublicKey returns a copy of the full public key the document binds: the
// serialised HPKE public key, or the RSA SubjectPublicKeyInfo DER. What
// `attest fetch --out-key` saves.
func (k *Key) PublicKey() []byte { return append([]byte(nil), k.full...) }

// Fetch asks the agent behind c for a document binding its key name, then
// verifies it like Check. The nonce sent is opts.Nonce when non-nil (1 to
// vsockrpc.MaxNonceSize bytes), otherwise NonceSize fresh random bytes; the
// document must carry exactly that nonce. A failure to reach the agent or an
// agent error wraps ErrAgent; a rejected document returns the attestation
// package's *attestation.Error; a binding mismatch wraps
// keys.ErrBindingMismatch.
func Fetch(ctx context.Context, c *vsockrpc.Client, name string, opts attestation.Options) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	nonce := opts.Nonce
	switch {
	case nonce == nil:
		nonce = make([]byte, NonceSize)
		rand.Read(nonce) // never fails (Go 1.24+)
	case len(nonce) == 0 || len(nonce) > vsockrpc.MaxNonceSize:
		return nil, fmt.Errorf("relyingparty: nonce is %d bytes, want 1..%d", len(nonce), vsockrpc.MaxNonceSize)
	}
	opts.Nonce = nonce
	// Options are compiled before the round trip so that a bad policy costs
	// no document.
	v, err := attestation.NewVerifier(opts)
	if err != nil {
		return nil, err
	}
	res, err := c.Attest(ctx, nonce, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	return check(v, name, res.Document, res.PublicKey)
}

// Check verifies document (COSE_Sign1 bytes) under opts and then that its
// public_key binds fullKey as the key name (keys.HPKE or keys.RSA). It is the
// offline path, for a document and key saved earlier, and the check behind
// Fetch. Freshness applies as configured: with the default MaxAge a document
// older than attestation.DefaultMaxAge is refused. Options.AtDocumentTime and
// a past Options.Time are audit modes that prove a document was valid then;
// a relying party about to seal a secret leaves them unset.
func Check(name string, document, fullKey []byte, opts attestation.Options) (*Key, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	v, err := attestation.NewVerifier(opts)
	if err != nil {
		return nil, err
	}
	return check(v, name, document, fullKey)
}

// CheckResult is Check on an attest result, for the key it names.
func CheckResult(res *vsockrpc.AttestResult, opts attestation.Options) (*Key, error) {
	return Check(res.Key, res.Document, res.PublicKey, opts)
}

func check(v *attestation.Verifier, name string, document, fullKey []byte) (*Key, error) {
	doc, err := v.Verify(document)
	if err != nil {
		return nil, err
	}
	if err := keys.CheckBinding(name, doc.PublicKey, fullKey); err != nil {
		return nil, err
	}
	return &Key{name: name, doc: doc, raw: append([]byte(nil), document...),
		full: append([]byte(nil), fullKey...)}, nil
}

// SealOptions say how Key.Seal seals.
type SealOptions struct {
	// AAD, for the hpke key only, is context the envelope authenticates and
	// the enclave gets back with the plaintext (at most seal.MaxAAD bytes).
	AAD []byte
	// OAEPHash, for the rsa key only, is seal.OAEPSHA256 or seal.OAEPSHA1
	// (what pycryptodome's PKCS1_OAEP uses by default); empty means
	// seal.OAEPSHA256. The enclave must be told the same hash to open.
	OAEPHash string
}

// Seal encrypts plaintext to the attested key: for the hpke key an
// attestd-seal-v1 envelope (seal.SealHPKE, at most seal.MaxPlaintext bytes),
// for the rsa key a raw 256-byte RSAES-OAEP ciphertext (seal.SealRSA, at most
// 190 bytes with SHA-256, 214 with SHA-1). Only the enclave whose document
// was verified can open it, through its local API (docs/sealing.md).
func (k *Key) Seal(plaintext []byte, o SealOptions) ([]byte, error) {
	switch k.name {
	case keys.HPKE:
		if o.OAEPHash != "" {
			return nil, errors.New("relyingparty: an OAEP hash applies to the rsa key only")
		}
		return seal.SealHPKE(k.doc.PublicKey, k.full, o.AAD, plaintext)
	default:
		if o.AAD != nil {
			return nil, errors.New("relyingparty: aad applies to the hpke key only (RSA-OAEP carries none)")
		}
		h := o.OAEPHash
		if h == "" {
			h = seal.OAEPSHA256
		}
		return seal.SealRSA(k.full, h, plaintext)
	}
}

func checkName(name string) error {
	if name != keys.HPKE && name != keys.RSA {
		return fmt.Errorf("%w %q (want %s or %s)", ErrKeyName, name, keys.HPKE, keys.RSA)
	}
	return nil
}
