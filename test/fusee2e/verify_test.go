//go:build linux

package fusee2e

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
	"os"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// An independent check of the mock's attestation documents, written only from
// the COSE / AWS specification (nitro-specs §3) with crypto/x509 and
// crypto/ecdsa, so that it shares no code with the mock or the verifier.

type coseSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int]any
	Payload     []byte
	Signature   []byte
}

type docPayload struct {
	ModuleID    string            `cbor:"module_id"`
	Digest      string            `cbor:"digest"`
	Timestamp   uint64            `cbor:"timestamp"`
	PCRs        map[uint16][]byte `cbor:"pcrs"`
	Certificate []byte            `cbor:"certificate"`
	CABundle    [][]byte          `cbor:"cabundle"`
	PublicKey   []byte            `cbor:"public_key"`
	UserData    []byte            `cbor:"user_data"`
	Nonce       []byte            `cbor:"nonce"`
}

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

// es384Protected is the protected header {1: -35} (alg ES384).
var es384Protected = []byte{0xa1, 0x01, 0x38, 0x22}

// verifyDocument checks doc's chain up to the root in rootPEMFile at the
// document's own timestamp and its ES384 signature, and returns the payload.
func verifyDocument(doc []byte, rootPEMFile string) (*docPayload, error) {
	var msg coseSign1
	if err := strict.Unmarshal(doc, &msg); err != nil {
		return nil, fmt.Errorf("COSE_Sign1: %w", err)
	}
	if !bytes.Equal(msg.Protected, es384Protected) {
		return nil, fmt.Errorf("protected header %x, want a1013822", msg.Protected)
	}
	if len(msg.Unprotected) != 0 {
		return nil, errors.New("unprotected header not empty")
	}
	var p docPayload
	if err := strict.Unmarshal(msg.Payload, &p); err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	if p.Digest != "SHA384" {
		return nil, fmt.Errorf("digest %q", p.Digest)
	}

	rootPEM, err := os.ReadFile(rootPEMFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(rootPEM)
	if block == nil {
		return nil, errors.New("root.pem: no PEM block")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if len(p.CABundle) != 4 || !bytes.Equal(p.CABundle[0], root.Raw) {
		return nil, fmt.Errorf("cabundle has %d certificates or does not start with the root", len(p.CABundle))
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
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
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   time.UnixMilli(int64(p.Timestamp)),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}

	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, errors.New("leaf key is not ECDSA P-384")
	}
	if len(msg.Signature) != 96 {
		return nil, fmt.Errorf("signature is %d bytes, want 96 (r||s)", len(msg.Signature))
	}
	sigStructure, err := cbor.Marshal([]any{"Signature1", msg.Protected, []byte{}, msg.Payload})
	if err != nil {
		return nil, err
	}
	digest := sha512.Sum384(sigStructure)
	r := new(big.Int).SetBytes(msg.Signature[:48])
	s := new(big.Int).SetBytes(msg.Signature[48:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, errors.New("ES384 signature does not verify")
	}
	return &p, nil
}
