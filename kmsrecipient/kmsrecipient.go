// Package kmsrecipient is what an in-enclave application uses to receive AWS KMS answers through
// attestd: it asks the agent's local API for a Recipient (a fresh attestation document binding a
// one-time RSA-2048 key), which the application puts in a KMS request (Decrypt, GenerateDataKey,
// GenerateDataKeyPair, GenerateRandom, DeriveSharedSecret), and it opens the
// CiphertextForRecipient KMS answers with. The private key never leaves the agent, and it opens one
// envelope only.
//
// With aws-sdk-go-v2:
//
//	r, err := c.Recipient(ctx)
//	out, err := kmsClient.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob,
//		Recipient: &types.RecipientInfo{
//			AttestationDocument:    r.AttestationDocument,
//			KeyEncryptionAlgorithm: types.KeyEncryptionMechanism(r.KeyEncryptionAlgorithm),
//		}})
//	// With a Recipient, KMS returns no plaintext: refuse an answer that has one.
//	plaintext, err := r.Open(ctx, out.CiphertextForRecipient)
//
// The package depends on the project's protocol client only (not on the agent, not on the SDK).
// See docs/kms.md.
package kmsrecipient

import (
	"context"
	"errors"
	"sync"

	"github.com/attestd/attestd/vsockrpc"
)

// KeyEncryptionAlgorithm is the value of KMS's RecipientInfo KeyEncryptionAlgorithm for a
// Recipient: the only one KMS accepts.
const KeyEncryptionAlgorithm = vsockrpc.KMSKeyEncryptionAlgorithm

// ErrOpenFailed is the error of every failure to open a CiphertextForRecipient (use errors.Is):
// the agent says no more than that, whatever the cause.
var ErrOpenFailed = vsockrpc.ErrOpenFailed

// ErrUsed is returned by Recipient.Open after its first call: a Recipient opens one envelope.
var ErrUsed = errors.New("kmsrecipient: this Recipient was already used")

// Client asks attestd's local API for Recipients. It is safe for concurrent use.
type Client struct {
	c *vsockrpc.Client
}

// Dial connects to attestd's local API at addr (for example "unix:///run/attestd.sock"). ctx bounds
// the connection attempt only.
func Dial(ctx context.Context, addr string) (*Client, error) {
	c, err := vsockrpc.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// New returns a Client on an existing local-API client; Close closes it.
func New(c *vsockrpc.Client) *Client { return &Client{c: c} }

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Recipient is one KMS Recipient: a document and the handle of the one-time key it binds.
type Recipient struct {
	// AttestationDocument is the COSE_Sign1 attestation document for KMS's RecipientInfo.
	AttestationDocument []byte
	// KeyEncryptionAlgorithm is KeyEncryptionAlgorithm, for KMS's RecipientInfo.
	KeyEncryptionAlgorithm string
	// PublicKey is the one-time RSA-2048 key's SubjectPublicKeyInfo DER, as the document binds it.
	PublicKey []byte

	c      *vsockrpc.Client
	mu     sync.Mutex
	handle []byte // nil once used
}

// Recipient asks the agent for a fresh Recipient. Use it for one KMS request, and Open its answer
// within the agent's handle lifetime (5 minutes by default); an unused one simply expires.
func (c *Client) Recipient(ctx context.Context) (*Recipient, error) {
	r, err := c.c.KMSRecipient(ctx)
	if err != nil {
		return nil, err
	}
	return &Recipient{
		AttestationDocument:    r.Document,
		KeyEncryptionAlgorithm: KeyEncryptionAlgorithm,
		PublicKey:              r.PublicKey,
		c:                      c.c,
		handle:                 r.Handle,
	}, nil
}

// Open opens KMS's CiphertextForRecipient with the Recipient's key and returns the plaintext
// (the Plaintext, PrivateKeyPlaintext or SharedSecret KMS would otherwise have returned). The
// first call uses the key up, whatever its outcome; later calls return ErrUsed. Every failure to
// open is ErrOpenFailed.
func (r *Recipient) Open(ctx context.Context, ciphertextForRecipient []byte) ([]byte, error) {
	r.mu.Lock()
	h := r.handle
	r.handle = nil
	r.mu.Unlock()
	if h == nil {
		return nil, ErrUsed
	}
	return r.c.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: h, Ciphertext: ciphertextForRecipient})
}

// OpenWithAgentKey opens a CiphertextForRecipient made for the agent's long-lived "rsa" key, for
// documents fetched with attest and key "rsa". Prefer Recipient: its key opens one envelope, this
// one opens any number, so whoever can feed envelopes to the application can probe it.
func (c *Client) OpenWithAgentKey(ctx context.Context, ciphertextForRecipient []byte) ([]byte, error) {
	return c.c.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Key: "rsa", Ciphertext: ciphertextForRecipient})
}
