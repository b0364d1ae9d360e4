package eif

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	_ "crypto/sha256" // registers crypto.SHA256 for ES256
	_ "crypto/sha512" // registers crypto.SHA384 and crypto.SHA512
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/attestd/attestd/internal/strictcbor"
	"github.com/attestd/attestd/pcr"
)

// Signature is the signature section of a signed EIF: nitro-cli's
// serde_cbor(vec![PcrSignature{signing_certificate: PEM, signature: COSE_Sign1}]), where the
// COSE_Sign1 payload is serde_cbor(PcrInfo{register_index: 0, register_value: PCR0}).
// Parse returns one only after checking the COSE signature with the certificate's key and
// that the signed payload names the image's own PCR0.
type Signature struct {
	// CertificatePEM is the signing certificate exactly as stored in the section.
	CertificatePEM []byte
	// Certificate is its parsed form; PCR8 measures Certificate.Raw.
	Certificate *x509.Certificate
	// COSESign1 is the untagged COSE_Sign1 structure as stored.
	COSESign1 []byte
	// Algorithm is the COSE algorithm: "ES256", "ES384" or "ES512".
	Algorithm string

	cose *coseSign1
	alg  *coseAlg
}

// ValidAt reports whether the signing certificate is within its validity period at t.
// nitro-cli refuses to run an image whose signing certificate has expired.
func (s *Signature) ValidAt(t time.Time) bool {
	return !t.Before(s.Certificate.NotBefore) && !t.After(s.Certificate.NotAfter)
}

// coseAlg is a COSE ECDSA algorithm, bound to its curve as the signing library does
// (aws-nitro-enclaves-cose picks the algorithm from the key's curve).
type coseAlg struct {
	name      string
	protected []byte // serde_cbor({1: alg})
	curve     elliptic.Curve
	hash      crypto.Hash
	size      int // bytes of r and of s
}

var coseAlgs = []*coseAlg{
	{"ES256", []byte{0xa1, 0x01, 0x26}, elliptic.P256(), crypto.SHA256, 32},
	{"ES384", []byte{0xa1, 0x01, 0x38, 0x22}, elliptic.P384(), crypto.SHA384, 48},
	{"ES512", []byte{0xa1, 0x01, 0x38, 0x23}, elliptic.P521(), crypto.SHA512, 66},
}

func algForCurve(c elliptic.Curve) (*coseAlg, error) {
	for _, a := range coseAlgs {
		if a.curve == c {
			return a, nil
		}
	}
	return nil, fmt.Errorf("unsupported curve %s (P-256, P-384 or P-521)", c.Params().Name)
}

// coseSign1 holds the four fields of an untagged COSE_Sign1 with an empty unprotected map.
type coseSign1 struct {
	protected, payload, signature []byte
}

func parseCOSESign1(b []byte) (*coseSign1, error) {
	r := newCBORReader(b)
	n, err := r.expect(strictcbor.Array, "COSE_Sign1")
	if err != nil {
		return nil, err
	}
	if n != 4 {
		return nil, fmt.Errorf("COSE_Sign1 has %d items, want 4", n)
	}
	var c coseSign1
	if c.protected, err = r.bytes("COSE protected header"); err != nil {
		return nil, err
	}
	if n, err := r.expect(strictcbor.Map, "COSE unprotected header"); err != nil {
		return nil, err
	} else if n != 0 {
		return nil, fmt.Errorf("COSE unprotected header has %d entries, nitro-cli writes none", n)
	}
	if c.payload, err = r.bytes("COSE payload"); err != nil {
		return nil, err
	}
	if c.signature, err = r.bytes("COSE signature"); err != nil {
		return nil, err
	}
	return &c, r.end("COSE_Sign1")
}

func (c *coseSign1) encode() []byte {
	b := strictcbor.AppendHead(nil, strictcbor.Array, 4)
	b = strictcbor.AppendBytes(b, c.protected)
	b = strictcbor.AppendHead(b, strictcbor.Map, 0)
	b = strictcbor.AppendBytes(b, c.payload)
	return strictcbor.AppendBytes(b, c.signature)
}

// digest returns the hash of the RFC 8152 Sig_structure
// ["Signature1", protected, external_aad = h”, payload].
func (c *coseSign1) digest(alg *coseAlg) []byte {
	b := strictcbor.AppendHead(nil, strictcbor.Array, 4)
	b = strictcbor.AppendText(b, "Signature1")
	b = strictcbor.AppendBytes(b, c.protected)
	b = strictcbor.AppendBytes(b, nil)
	b = strictcbor.AppendBytes(b, c.payload)
	h := alg.hash.New()
	h.Write(b)
	return h.Sum(nil)
}

// pcrInfo returns serde_cbor(PcrInfo{register_index, register_value}).
func pcrInfo(index uint8, value []byte) []byte {
	b := strictcbor.AppendHead(nil, strictcbor.Map, 2)
	b = strictcbor.AppendText(b, "register_index")
	b = strictcbor.AppendUint(b, uint64(index))
	b = strictcbor.AppendText(b, "register_value")
	return appendByteArray(b, value)
}

// signatureSection returns serde_cbor(vec![PcrSignature{certPEM, cose}]).
func signatureSection(certPEM, cose []byte) []byte {
	b := strictcbor.AppendHead(nil, strictcbor.Array, 1)
	b = strictcbor.AppendHead(b, strictcbor.Map, 2)
	b = strictcbor.AppendText(b, "signing_certificate")
	b = appendByteArray(b, certPEM)
	b = strictcbor.AppendText(b, "signature")
	return appendByteArray(b, cose)
}

// parseSignatureSection decodes the section and its certificate and COSE structure; verify
// checks the signature.
func parseSignatureSection(b []byte) (*Signature, error) {
	r := newCBORReader(b)
	n, err := r.expect(strictcbor.Array, "signature list")
	if err != nil {
		return nil, err
	}
	if n != 1 {
		return nil, fmt.Errorf("%d PCR signatures, nitro-cli writes exactly one (PCR0)", n)
	}
	if n, err := r.expect(strictcbor.Map, "PcrSignature"); err != nil {
		return nil, err
	} else if n != 2 {
		return nil, fmt.Errorf("PcrSignature has %d fields, want 2", n)
	}
	if err := r.key("signing_certificate"); err != nil {
		return nil, err
	}
	certPEM, err := r.byteArray("signing_certificate")
	if err != nil {
		return nil, err
	}
	if err := r.key("signature"); err != nil {
		return nil, err
	}
	coseBytes, err := r.byteArray("signature")
	if err != nil {
		return nil, err
	}
	if err := r.end("signature section"); err != nil {
		return nil, err
	}

	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("signing certificate key is %T, want ECDSA", cert.PublicKey)
	}
	alg, err := algForCurve(pub.Curve)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	cose, err := parseCOSESign1(coseBytes)
	if err != nil {
		return nil, err
	}
	return &Signature{
		CertificatePEM: certPEM,
		Certificate:    cert,
		COSESign1:      coseBytes,
		Algorithm:      alg.name,
		cose:           cose,
		alg:            alg,
	}, nil
}

// parseCertificatePEM requires exactly one PEM CERTIFICATE block (nitro-cli reads the
// certificate with X509::from_pem).
func parseCertificatePEM(certPEM []byte) (*x509.Certificate, error) {
	if block, _ := pem.Decode(certPEM); block == nil {
		return nil, errors.New("signing certificate is not PEM")
	}
	der, err := pcr.CertificateDER(certPEM)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// verify checks the COSE signature with the certificate's key, the algorithm against the
// key's curve, and that the payload is PcrInfo{0, pcr0} byte for byte.
func (s *Signature) verify(pcr0 []byte) error {
	c, alg := s.cose, s.alg
	if !bytes.Equal(c.protected, alg.protected) {
		return fmt.Errorf("COSE protected header % x, want % x (%s for the certificate's %s key)",
			c.protected, alg.protected, alg.name, alg.curve.Params().Name)
	}
	if len(c.signature) != 2*alg.size {
		return fmt.Errorf("COSE signature is %d bytes, want %d for %s", len(c.signature), 2*alg.size, alg.name)
	}
	r := new(big.Int).SetBytes(c.signature[:alg.size])
	sv := new(big.Int).SetBytes(c.signature[alg.size:])
	if !ecdsa.Verify(s.Certificate.PublicKey.(*ecdsa.PublicKey), c.digest(alg), r, sv) {
		return errors.New("COSE signature does not verify with the signing certificate's key")
	}
	if want := pcrInfo(0, pcr0); !bytes.Equal(c.payload, want) {
		return fmt.Errorf("signed payload % x is not PcrInfo{0, PCR0 %x}", c.payload, pcr0)
	}
	return nil
}

// Signer signs images built with Build: an ECDSA key (P-256, P-384 or P-521) and its
// certificate, as given to nitro-cli build-enclave --private-key / --signing-certificate.
type Signer struct {
	key     *ecdsa.PrivateKey
	certPEM []byte
	alg     *coseAlg
}

// NewSigner loads a PEM private key (SEC 1 "EC PRIVATE KEY" or PKCS #8 "PRIVATE KEY") and a
// PEM certificate for the same public key. The certificate bytes are stored in the image
// exactly as given, as nitro-cli does.
func NewSigner(keyPEM, certPEM []byte) (*Signer, error) {
	block, rest := pem.Decode(keyPEM)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("eif: signing key: want exactly one PEM block")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("eif: signing key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("eif: signing key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("eif: signing key is %T, want ECDSA", k)
		}
		key = ek
	default:
		return nil, fmt.Errorf("eif: signing key: PEM block %q, want EC PRIVATE KEY or PRIVATE KEY", block.Type)
	}
	alg, err := algForCurve(key.Curve)
	if err != nil {
		return nil, fmt.Errorf("eif: signing key: %w", err)
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("eif: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("eif: the signing certificate is not for the signing key")
	}
	return &Signer{key: key, certPEM: bytes.Clone(certPEM), alg: alg}, nil
}

// sign returns the signature section for an image whose PCR0 is pcr0.
func (s *Signer) sign(pcr0 []byte) ([]byte, error) {
	c := &coseSign1{protected: s.alg.protected, payload: pcrInfo(0, pcr0)}
	r, sv, err := ecdsa.Sign(rand.Reader, s.key, c.digest(s.alg))
	if err != nil {
		return nil, fmt.Errorf("eif: signing: %w", err)
	}
	c.signature = make([]byte, 2*s.alg.size)
	r.FillBytes(c.signature[:s.alg.size])
	sv.FillBytes(c.signature[s.alg.size:])
	return signatureSection(s.certPEM, c.encode()), nil
}
