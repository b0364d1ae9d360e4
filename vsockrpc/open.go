package vsockrpc

import (
	"context"
	"errors"

	"github.com/attestd/attestd/internal/strictcbor"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
)

// MethodOpen opens a ciphertext sealed to one of the agent's keys (local API only).
const MethodOpen = "open"

// Frame limits of the local API: they admit the largest ciphertext open takes (a seal.MaxEnvelope
// envelope) and the largest result it gives (seal.MaxPlaintext of plaintext and seal.MaxAAD of
// aad), each with a kilobyte for the rest of the message. The parent API keeps
// DefaultMaxRequestSize and DefaultMaxResponseSize.
const (
	DefaultLocalMaxRequestSize  = seal.MaxEnvelope + 1<<10                // 68,806 bytes
	DefaultLocalMaxResponseSize = seal.MaxPlaintext + seal.MaxAAD + 1<<10 // 67,584 bytes
)

// Opener answers open: it decrypts what a relying party sealed to the agent's keys. It is on the
// local API only: a parent that could call it could read every secret sealed to the enclave.
type Opener interface {
	// Open opens req.Ciphertext with the key req.Key: for keys.HPKE an attestd-seal-v1 envelope
	// (package seal), for keys.RSA a raw RSAES-OAEP ciphertext with hash req.OAEPHash. Every
	// failure to open is ErrOpenFailed, whatever the cause.
	Open(ctx context.Context, req OpenRequest) (*OpenResult, error)
}

// OpenRequest is open's params, checked against the protocol: Key is keys.HPKE or keys.RSA;
// Ciphertext is not empty (its content is the opener's to judge); OAEPHash is seal.OAEPSHA256
// (the default) or seal.OAEPSHA1 for keys.RSA, and empty for keys.HPKE.
type OpenRequest struct {
	Key        string
	Ciphertext []byte
	OAEPHash   string
}

// OpenResult is open's result.
type OpenResult struct {
	// Plaintext is what was sealed, at most seal.MaxPlaintext bytes (it may be empty).
	Plaintext []byte
	// AAD is the context the sender authenticated in an HPKE envelope, at most seal.MaxAAD bytes;
	// nil when it was empty and for RSA.
	AAD []byte
}

// openParams is open's params on the wire.
type openParams struct {
	Key        string
	Ciphertext []byte
	OAEPHash   string // left out when empty
}

func (p openParams) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(2, p.OAEPHash != ""))
	b = strictcbor.AppendText(strictcbor.AppendText(b, "key"), p.Key)
	if p.OAEPHash != "" {
		b = strictcbor.AppendText(strictcbor.AppendText(b, "oaep_hash"), p.OAEPHash)
	}
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "ciphertext"), p.Ciphertext)
}

func (r *OpenResult) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(1, len(r.AAD) > 0))
	if len(r.AAD) > 0 {
		b = strictcbor.AppendBytes(strictcbor.AppendText(b, "aad"), r.AAD)
	}
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "plaintext"), r.Plaintext)
}

func (r *OpenResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		bytesField("plaintext", &r.Plaintext, seal.MaxPlaintext),
		field{"aad", false, func(raw []byte) (err error) {
			if r.AAD, err = decodeBytes(raw, seal.MaxAAD); err == nil && r.AAD == nil {
				err = errors.New("empty (an empty aad is left out)")
			}
			return err
		}})
}

// decodeOpen decodes and checks open's params. Only the shape of the request is checked here; a
// ciphertext of any size goes to the opener, so that every verdict on it is ErrOpenFailed.
func decodeOpen(raw []byte) (any, *Error) {
	var p openParams
	hashSet := false
	e := decodeParams(raw, nil,
		field{"key", true, func(r []byte) (err error) {
			if p.Key, err = decodeText(r, 1, MaxKeyNameSize); err == nil && p.Key != keys.HPKE && p.Key != keys.RSA {
				err = errors.New(`want "hpke" or "rsa"`)
			}
			return err
		}},
		field{"ciphertext", true, func(r []byte) (err error) {
			if p.Ciphertext, err = decodeBytes(r, DefaultLocalMaxRequestSize); err == nil && p.Ciphertext == nil {
				err = errors.New("empty")
			}
			return err
		}},
		field{"oaep_hash", false, func(r []byte) (err error) {
			hashSet = true
			if p.OAEPHash, err = decodeText(r, 1, 16); err == nil && p.OAEPHash != seal.OAEPSHA256 && p.OAEPHash != seal.OAEPSHA1 {
				err = errors.New(`want "sha256" or "sha1"`)
			}
			return err
		}})
	if e != nil {
		return p, e
	}
	switch {
	case p.Key == keys.HPKE && hashSet:
		return p, Errorf(CodeBadRequest, "oaep_hash: only for the rsa key")
	case p.Key == keys.RSA && !hashSet:
		p.OAEPHash = seal.OAEPSHA256
	}
	return p, nil
}

// addOpen registers open on the local API.
func (a *API) addOpen(svc Opener) {
	a.methods[MethodOpen] = method{
		decode: decodeOpen,
		call: func(ctx context.Context, p any) (encoder, error) {
			op := p.(openParams)
			r, err := svc.Open(ctx, OpenRequest(op))
			var pe *Error
			switch {
			case errors.As(err, &pe) && pe.Code == CodeOpenFailed:
				return nil, ErrOpenFailed // one message, whatever the service wrote
			case err != nil:
				return nil, err
			case r == nil || len(r.Plaintext) > seal.MaxPlaintext || len(r.AAD) > seal.MaxAAD:
				return nil, errors.New("vsockrpc: Open returned an invalid result")
			}
			return r, nil
		},
	}
}

// open is harmless to repeat: a Client may resend it on a new connection after losing one.
func init() { retrySafe[MethodOpen] = true }

// Open opens a ciphertext sealed to the agent's key req.Key (local API only): an attestd-seal-v1
// envelope for "hpke", a raw RSA-OAEP ciphertext for "rsa" with req.OAEPHash ("sha256" when
// empty, or "sha1"). Every failure to open is an *Error with CodeOpenFailed (errors.Is(err,
// ErrOpenFailed)).
func (c *Client) Open(ctx context.Context, req OpenRequest) (*OpenResult, error) {
	var r OpenResult
	if err := c.call(ctx, MethodOpen, openParams(req), &r); err != nil {
		return nil, err
	}
	return &r, nil
}
