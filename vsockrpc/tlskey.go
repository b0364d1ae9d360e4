package vsockrpc

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/attestd/attestd/internal/strictcbor"
)

// attest_tls_key (local API only): a document binding an in-enclave application's TLS key
// (docs/protocol.md, "attest_tls_key"; docs/attested-tls.md).

// MethodAttestTLSKey is the local-API method that attests an application's TLS key.
const MethodAttestTLSKey = "attest_tls_key"

// MaxTLSKeySize bounds attest_tls_key's public_key: what public verifiers accept in a document's
// public_key.
const MaxTLSKeySize = 1024

// TLSKeyAttester is the part of LocalService that attests an in-enclave application's TLS key.
type TLSKeyAttester interface {
	// AttestTLSKey returns a document whose public_key is exactly req.PublicKey, an SPKI already
	// checked by CheckTLSKey, with req.Nonce (nil: none).
	AttestTLSKey(ctx context.Context, req TLSKeyRequest) (*TLSKeyResult, error)
}

// TLSKeyRequest is attest_tls_key's request.
type TLSKeyRequest struct {
	// PublicKey is the TLS key as a DER SubjectPublicKeyInfo, as it appears in the certificate:
	// ECDSA P-256 or P-384, or Ed25519; at most MaxTLSKeySize bytes.
	PublicKey []byte
	// Nonce is 1..MaxNonceSize bytes, or nil when the caller sent none.
	Nonce []byte
}

// TLSKeyResult is attest_tls_key's result.
type TLSKeyResult struct {
	// Document is the COSE_Sign1 attestation document; its public_key is the request's.
	Document []byte `cbor:"document"`
}

// CheckTLSKey checks that spki is a DER SubjectPublicKeyInfo of an ECDSA P-256 or P-384 or an
// Ed25519 key, of at most MaxTLSKeySize bytes, in its one canonical encoding (so that the bytes a
// document binds are the bytes a certificate carries).
func CheckTLSKey(spki []byte) error {
	if len(spki) == 0 {
		return errors.New("empty")
	}
	if len(spki) > MaxTLSKeySize {
		return errTooLong{len(spki), MaxTLSKeySize}
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return fmt.Errorf("not a SubjectPublicKeyInfo: %v", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s: want P-256 or P-384", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("a %T: want ECDSA P-256, P-384 or Ed25519", pub)
	}
	if der, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(der, spki) {
		return errors.New("not in canonical DER")
	}
	return nil
}

type tlsKeyParams struct {
	PublicKey []byte `cbor:"public_key"`
	Nonce     []byte `cbor:"nonce,omitempty"`
}

// addTLSKey registers attest_tls_key in a local API.
func (a *API) addTLSKey(svc TLSKeyAttester) {
	a.methods[MethodAttestTLSKey] = method{
		decode: func(raw []byte) (any, *Error) {
			var p tlsKeyParams
			e := decodeParams(raw, nil,
				field{"public_key", true, func(r []byte) (err error) {
					if p.PublicKey, err = decodeBytes(r, MaxTLSKeySize); err != nil {
						return err
					}
					return CheckTLSKey(p.PublicKey)
				}},
				field{"nonce", false, func(r []byte) (err error) {
					if p.Nonce, err = decodeBytes(r, MaxNonceSize); err != nil {
						var tl errTooLong
						if errors.As(err, &tl) {
							return Errorf(CodeNonceTooLarge, "nonce: %v", err)
						}
					}
					return err
				}})
			return p, e
		},
		call: func(ctx context.Context, p any) (encoder, error) {
			tp := p.(tlsKeyParams)
			r, err := svc.AttestTLSKey(ctx, TLSKeyRequest(tp))
			if err != nil {
				return nil, err
			}
			if r == nil || len(r.Document) == 0 {
				return nil, errors.New("vsockrpc: AttestTLSKey returned no document")
			}
			return r, nil
		},
	}
}

func (p tlsKeyParams) appendCBOR(b []byte) []byte {
	b = appendMap(b, pairs(1, len(p.Nonce) > 0))
	if len(p.Nonce) > 0 {
		b = strictcbor.AppendBytes(strictcbor.AppendText(b, "nonce"), p.Nonce)
	}
	return strictcbor.AppendBytes(strictcbor.AppendText(b, "public_key"), p.PublicKey)
}

func (r *TLSKeyResult) appendCBOR(b []byte) []byte {
	return strictcbor.AppendBytes(strictcbor.AppendText(appendMap(b, 1), "document"), r.Document)
}

func (r *TLSKeyResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		bytesField("document", &r.Document, DefaultMaxResponseSize))
}

// AttestTLSKey asks for a document binding the TLS key spki (a DER SubjectPublicKeyInfo, see
// CheckTLSKey) and nonce (nil: none) (local API only).
func (c *Client) AttestTLSKey(ctx context.Context, spki, nonce []byte) ([]byte, error) {
	if err := CheckTLSKey(spki); err != nil {
		return nil, fmt.Errorf("vsockrpc: attest_tls_key: public_key: %w", err)
	}
	var r TLSKeyResult
	if err := c.call(ctx, MethodAttestTLSKey, tlsKeyParams{PublicKey: spki, Nonce: nonce}, &r); err != nil {
		return nil, err
	}
	if len(r.Document) == 0 {
		return nil, errors.New("vsockrpc: attest_tls_key: no document")
	}
	return r.Document, nil
}
