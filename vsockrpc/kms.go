package vsockrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/attestd/attestd/internal/strictcbor"
)

// kms_recipient and kms_open (local API only): the AWS KMS Recipient flow (docs/protocol.md,
// "kms_recipient" and "kms_open"; docs/kms.md).

// Method names.
const (
	MethodKMSRecipient = "kms_recipient"
	MethodKMSOpen      = "kms_open"
)

// Bounds and constants of the KMS methods.
const (
	// KMSHandleSize is the size of a kms_recipient handle.
	KMSHandleSize = 16
	// MaxKMSCiphertextSize bounds kms_open's ciphertext: AWS documents CiphertextForRecipient as
	// 1..6144 bytes (kmsenvelope.MaxSize).
	MaxKMSCiphertextSize = 6144
	// KMSKeyEncryptionAlgorithm is what an application puts in KMS's RecipientInfo
	// KeyEncryptionAlgorithm with a kms_recipient document: the only value KMS accepts.
	KMSKeyEncryptionAlgorithm = "RSAES_OAEP_SHA_256"
)

// KMSRecipient is the part of LocalService that serves the KMS Recipient flow.
type KMSRecipient interface {
	// NewKMSRecipient returns a fresh document whose public_key is a fresh RSA-2048 key made for
	// this one request, and the handle that opens one envelope with it.
	NewKMSRecipient(ctx context.Context) (*KMSRecipientResult, error)
	// OpenKMS opens a KMS CiphertextForRecipient with the key req names. Every failure to open,
	// an unknown, used or expired handle included, is ErrOpenFailed.
	OpenKMS(ctx context.Context, req KMSOpenRequest) ([]byte, error)
}

// KMSRecipientResult is kms_recipient's result.
type KMSRecipientResult struct {
	// Document is the COSE_Sign1 attestation document; its public_key is PublicKey, whole.
	Document []byte `cbor:"document"`
	// PublicKey is the one-time RSA-2048 key's SubjectPublicKeyInfo DER.
	PublicKey []byte `cbor:"public_key"`
	// Handle names the key in kms_open (KMSHandleSize bytes). The first kms_open with it, whatever
	// its outcome, destroys the key; unused, it expires.
	Handle []byte `cbor:"handle"`
}

// KMSOpenRequest is kms_open's request: exactly one of Handle and Key.
type KMSOpenRequest struct {
	// Handle is a kms_recipient handle (KMSHandleSize bytes), or nil.
	Handle []byte
	// Key names a long-lived agent key instead ("rsa"), or is "".
	Key string
	// Ciphertext is KMS's CiphertextForRecipient, 1..MaxKMSCiphertextSize bytes.
	Ciphertext []byte
}

type (
	kmsOpenParams struct {
		Handle     []byte `cbor:"handle,omitempty"`
		Key        string `cbor:"key,omitempty"`
		Ciphertext []byte `cbor:"ciphertext"`
	}
	kmsOpenResult struct {
		Plaintext []byte `cbor:"plaintext"`
	}
)

// check checks a kms_open request against the protocol bounds.
func (p kmsOpenParams) check() error {
	switch {
	case (p.Handle == nil) == (p.Key == ""):
		return errors.New("want exactly one of handle and key")
	case p.Handle != nil && len(p.Handle) != KMSHandleSize:
		return fmt.Errorf("handle: %d bytes, want %d", len(p.Handle), KMSHandleSize)
	case len(p.Key) > MaxKeyNameSize:
		return fmt.Errorf("key: %d bytes, limit %d", len(p.Key), MaxKeyNameSize)
	case len(p.Ciphertext) == 0:
		return errors.New("ciphertext: empty")
	case len(p.Ciphertext) > MaxKMSCiphertextSize:
		return fmt.Errorf("ciphertext: %v", errTooLong{len(p.Ciphertext), MaxKMSCiphertextSize})
	}
	return nil
}

// addKMS registers kms_recipient and kms_open in a local API.
func (a *API) addKMS(svc KMSRecipient) {
	a.methods[MethodKMSRecipient] = method{
		decode: func(raw []byte) (any, *Error) { return noParams{}, decodeParams(raw, []string{"public_key"}) },
		call: func(ctx context.Context, _ any) (encoder, error) {
			r, err := svc.NewKMSRecipient(ctx)
			if err != nil {
				return nil, err
			}
			if r == nil || len(r.Document) == 0 || len(r.PublicKey) == 0 || len(r.Handle) != KMSHandleSize {
				return nil, errors.New("vsockrpc: NewKMSRecipient returned an incomplete result")
			}
			return r, nil
		},
	}
	a.methods[MethodKMSOpen] = method{
		decode: func(raw []byte) (any, *Error) {
			var p kmsOpenParams
			e := decodeParams(raw, nil,
				field{"handle", false, func(r []byte) (err error) {
					p.Handle, err = decodeBytes(r, KMSHandleSize)
					if err == nil && p.Handle == nil {
						p.Handle = []byte{} // sent empty: caught by check, not taken for absent
					}
					return err
				}},
				field{"key", false, func(r []byte) (err error) {
					p.Key, err = decodeText(r, 1, MaxKeyNameSize)
					return err
				}},
				field{"ciphertext", true, func(r []byte) (err error) {
					p.Ciphertext, err = decodeBytes(r, MaxKMSCiphertextSize)
					return err
				}})
			if e == nil {
				if err := p.check(); err != nil {
					e = Errorf(CodeBadRequest, "%v", err)
				}
			}
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			op := p.(kmsOpenParams)
			pt, err := svc.OpenKMS(ctx, KMSOpenRequest(op))
			if err != nil {
				return nil, err
			}
			return kmsOpenResult{Plaintext: pt}, nil
		},
	}
}

// KMSRecipient asks for a fresh KMS Recipient: a document binding a one-time RSA-2048 key, and the
// handle that opens one envelope with it (local API only). Put Document in KMS's RecipientInfo
// with KeyEncryptionAlgorithm KMSKeyEncryptionAlgorithm, then pass CiphertextForRecipient and the
// handle to OpenKMS.
func (c *Client) KMSRecipient(ctx context.Context) (*KMSRecipientResult, error) {
	var r KMSRecipientResult
	if err := c.call(ctx, MethodKMSRecipient, noParams{}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// OpenKMS opens a KMS CiphertextForRecipient with a kms_recipient handle, or with the agent's
// long-lived "rsa" key (local API only). Every failure to open is an *Error with code
// CodeOpenFailed (errors.Is(err, ErrOpenFailed)).
func (c *Client) OpenKMS(ctx context.Context, req KMSOpenRequest) ([]byte, error) {
	p := kmsOpenParams(req)
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("vsockrpc: kms_open: %v", err)
	}
	var r kmsOpenResult
	if err := c.call(ctx, MethodKMSOpen, p, &r); err != nil {
		return nil, err
	}
	return r.Plaintext, nil
}

func (p kmsOpenParams) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(1, p.Key != "", p.Handle != nil))
	if p.Key != "" {
		b = strictcbor.AppendText(strictcbor.AppendText(b, "key"), p.Key)
	}
	if p.Handle != nil {
		b = strictcbor.AppendBytes(strictcbor.AppendText(b, "handle"), p.Handle)
	}
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "ciphertext"), p.Ciphertext)
}

func (r *KMSRecipientResult) appendCBOR(b []byte) []byte {
	b = strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 3), "handle"), r.Handle)
	b = strictcbor.AppendBytes(strictcbor.AppendText(b, "document"), r.Document)
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "public_key"), r.PublicKey)
}

func (r kmsOpenResult) appendCBOR(b []byte) []byte {
	return strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 1), "plaintext"), r.Plaintext)
}

func (r *KMSRecipientResult) decodeResult(raw []byte) error {
	err := decodeFields(raw, maxResponsePairs, maxResponseDepth,
		bytesField("document", &r.Document, DefaultMaxResponseSize),
		bytesField("public_key", &r.PublicKey, DefaultMaxResponseSize),
		bytesField("handle", &r.Handle, KMSHandleSize))
	if err == nil && (len(r.Document) == 0 || len(r.PublicKey) == 0 || len(r.Handle) != KMSHandleSize) {
		err = errors.New("incomplete kms_recipient result")
	}
	return err
}

func (r *kmsOpenResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		bytesField("plaintext", &r.Plaintext, MaxKMSCiphertextSize))
}
