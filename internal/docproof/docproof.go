// Package docproof is the tests' independent check of an attestation
// document: written from the COSE and AWS specifications alone with
// crypto/x509, crypto/ecdsa and a hand-built Sig_structure, it shares no code
// with the software NSM or the attestation verifier, so each can be tested
// against it. It is deliberately narrow: the AWS shape (root + 3 CAs + leaf,
// ES384 r||s) and nothing else.
package docproof

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Payload is the attestation document's payload.
type Payload struct {
	ModuleID    string          `cbor:"module_id"`
	Digest      string          `cbor:"digest"`
	Timestamp   uint64          `cbor:"timestamp"`
	PCRs        map[uint][]byte `cbor:"pcrs"`
	Certificate []byte          `cbor:"certificate"`
	CABundle    [][]byte        `cbor:"cabundle"`
	PublicKey   []byte          `cbor:"public_key"`
	UserData    []byte          `cbor:"user_data"`
	Nonce       []byte          `cbor:"nonce"`
}

// Envelope is the COSE_Sign1 array.
type Envelope struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected cbor.RawMessage
	Payload     []byte
	Signature   []byte
}

// strict rejects duplicate map keys and unknown payload fields.
var strict = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// Decode splits doc into its envelope and payload without checking anything
// but the CBOR.
func Decode(doc []byte) (*Envelope, *Payload, error) {
	var env Envelope
	if err := strict.Unmarshal(doc, &env); err != nil {
		return nil, nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	var p Payload
	if err := strict.Unmarshal(env.Payload, &p); err != nil {
		return nil, nil, fmt.Errorf("payload: %w", err)
	}
	return &env, &p, nil
}

// Verify checks doc against rootPEM at time at: envelope {1:-35} / {} / 96-byte
// signature, digest SHA384, chain leaf -> cabundle[3..1] -> root (cabundle[0]
// byte-equal to the root), ES384 over ["Signature1", protected, empty bstr, payload].
func Verify(doc, rootPEM []byte, at time.Time) (*Payload, error) {
	env, p, err := Decode(doc)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(env.Protected, []byte{0xa1, 0x01, 0x38, 0x22}) || !bytes.Equal(env.Unprotected, []byte{0xa0}) ||
		len(env.Signature) != 96 {
		return nil, fmt.Errorf("envelope %x %x sig %d bytes", env.Protected, env.Unprotected, len(env.Signature))
	}
	if p.Digest != "SHA384" {
		return nil, fmt.Errorf("digest %q", p.Digest)
	}
	block, _ := pem.Decode(rootPEM)
	if block == nil {
		return nil, errors.New("no root PEM")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if len(p.CABundle) != 4 || !bytes.Equal(p.CABundle[0], root.Raw) {
		return nil, errors.New("cabundle is not 4 certificates starting with the root")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, der := range p.CABundle[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inter.AddCert(c)
	}
	leaf, err := x509.ParseCertificate(p.Certificate)
	if err != nil {
		return nil, err
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	if len(chains) != 1 || len(chains[0]) != 5 {
		return nil, fmt.Errorf("chains %d, length %d", len(chains), len(chains[0]))
	}
	for i, c := range chains[0][1:] {
		if !bytes.Equal(c.Raw, p.CABundle[3-i]) {
			return nil, fmt.Errorf("chain[%d] is not cabundle[%d]", i+1, 3-i)
		}
	}
	// Sig_structure = ["Signature1", h'a1013822', h'', payload], encoded by hand.
	sig := []byte{0x84, 0x6a}
	sig = append(sig, "Signature1"...)
	sig = append(sig, 0x44, 0xa1, 0x01, 0x38, 0x22, 0x40)
	switch n := len(env.Payload); {
	case n < 256:
		sig = append(sig, 0x58, byte(n))
	case n < 65536:
		sig = append(sig, 0x59, byte(n>>8), byte(n))
	default:
		return nil, errors.New("payload too large")
	}
	digest := sha512.Sum384(append(sig, env.Payload...))
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, errors.New("leaf key is not P-384")
	}
	r := new(big.Int).SetBytes(env.Signature[:48])
	s := new(big.Int).SetBytes(env.Signature[48:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, errors.New("ES384 signature does not verify")
	}
	return p, nil
}
