package attestation

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	_ "embed" // the pinned AWS root
	"encoding/hex"
	"encoding/pem"
	"fmt"
)

// AWSRootSHA256 is the SHA-256 of the DER encoding of the AWS Nitro Enclaves
// Root-G1 certificate (not of the PEM text, not of the ZIP AWS publishes).
const AWSRootSHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

//go:embed aws_nitro_root_g1.pem
var awsRootPEM []byte

// awsRoot is the parsed embedded root, checked against AWSRootSHA256 at init:
// a wrong or damaged embedded file is a build defect, so it panics rather than
// leaving the verifier without a trust anchor.
var awsRoot = mustParseAWSRoot()

func mustParseAWSRoot() *x509.Certificate {
	cert, err := ParseRootPEM(awsRootPEM)
	if err != nil {
		panic("attestation: embedded AWS root: " + err.Error())
	}
	sum := sha256.Sum256(cert.Raw)
	if hex.EncodeToString(sum[:]) != AWSRootSHA256 {
		panic("attestation: embedded AWS root does not match the pinned SHA-256 " + AWSRootSHA256)
	}
	return cert
}

// AWSRoot returns the embedded AWS Nitro Enclaves Root-G1 certificate, the
// root used when Options.Root is nil. The caller must not modify it.
func AWSRoot() *x509.Certificate { return awsRoot }

// ParseRootPEM parses a PEM file holding exactly one CERTIFICATE block (and
// nothing else but whitespace) and checks that it can serve as a root: an
// ECDSA P-384 CA certificate.
func ParseRootPEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM CERTIFICATE block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("unexpected data after the certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := checkRoot(cert); err != nil {
		return nil, err
	}
	return cert, nil
}

// checkRoot enforces the root profile: a P-384 ECDSA CA whose key usage
// allows keyCertSign (AWS §3.2.3; x509.Verify would also take a root without
// key usage), without unhandled critical extensions, name constraints or
// extended key usage (see verifyChain).
func checkRoot(c *x509.Certificate) error {
	if !isP384(c) {
		return fmt.Errorf("root key is not ECDSA P-384")
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("root is not a CA certificate")
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("root key usage lacks keyCertSign")
	}
	if len(c.UnhandledCriticalExtensions) != 0 {
		return fmt.Errorf("root has an unhandled critical extension %v", c.UnhandledCriticalExtensions[0])
	}
	if name, ok := refusedExtension(c, refusedOnRoot); ok {
		return fmt.Errorf("root carries %s, which this verifier does not evaluate", name)
	}
	return nil
}
