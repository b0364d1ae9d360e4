package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"strconv"
	"sync"
	"time"
)

// Certificate summarises one certificate of a verified chain.
type Certificate struct {
	Subject   string    // RFC 2253 form
	Issuer    string    // RFC 2253 form
	NotBefore time.Time // UTC
	NotAfter  time.Time // UTC
	SHA256    [32]byte  // of the DER encoding
}

// chain is the time-independent outcome of verifying a document's
// certificates: what the chain cache stores. The validity windows in certs
// are re-checked at every verification.
type chain struct {
	leafKey *ecdsa.PublicKey
	certs   []Certificate // leaf first, root last
}

// verifyChain checks the certificate chain of p against root. It is an
// explicit walk, not x509.Verify's path building: the only acceptable path is
// root = cabundle[0] -> cabundle[1] -> ... -> cabundle[n-1] -> leaf. It does
// not look at time; checkValidity does, and checkRoot vets the root once.
//
// Together they reject every chain x509.Verify rejects (Roots: the root
// alone, Intermediates: the bundle, CurrentTime: the verification time, any
// KeyUsages), which TestChainDifferential checks on generated chains. Rule by
// rule (RFC 5280 §6.1):
//   - name chaining: each issuer equals its parent's subject byte for byte
//     (§6.1.3(a)(4), as Go does);
//   - signatures: CheckSignatureFrom on each link, which also requires the
//     parent to be a CA whose key usage, if present, allows keyCertSign
//     (§6.1.3(a)(1), §6.1.4(k), (n));
//   - validity: every certificate, the root included (checkValidity,
//     §6.1.3(a)(2));
//   - basicConstraints: intermediates CA:TRUE (§6.1.4(k)); pathLenConstraint
//     (§6.1.4(l), (m)) counts every CA below, self-issued ones included, as Go
//     does (RFC 5280 exempts them);
//   - unknown critical extensions refused (§6.1.4(o), §6.1.5(f));
//   - policies (§6.1.3(d)-(f), §6.1.4(a)-(j), §6.1.5(g)): policyMappings,
//     policyConstraints and inhibitAnyPolicy are refused on every certificate
//     below the root (crypto/x509 marks them handled, so they never count as
//     unhandled critical extensions). Without them, and with Go's defaults
//     (any policy, no explicit policy required), policy processing cannot
//     fail, so certificatePolicies alone are accepted, as x509.Verify does;
//   - name constraints (§6.1.3(b), (c), §6.1.4(g)) and extended key usage
//     (Go's nesting, not in RFC 5280) are refused on every certificate, the
//     root included, rather than evaluated.
//
// Stricter than x509.Verify, from AWS's profile (attestation_process.md
// §3.2.3, nitro-specs.md §3.4): the path is fixed and the root pinned;
// X.509 v3, ECDSA P-384 keys and ecdsa-with-SHA384 below the root; key usage
// present with keyCertSign on the root and the intermediates; the leaf not a
// CA, without pathLenConstraint, with digitalSignature; and the refusals
// above. Neither checks revocation (AWS: CRL checking disabled).
func verifyChain(root *x509.Certificate, p *parsed, link func(child, parent *x509.Certificate) error) (*chain, error) {
	// Never trust the bundle's own root: it must be the pinned one, byte for byte.
	if !bytes.Equal(p.cabundle[0], root.Raw) {
		return nil, fail(ErrChain, "cabundle[0] is not the pinned root certificate")
	}
	// Path order: certs[0] is the root, certs[n] the leaf.
	n := p.nCA
	var buf [maxCABundle + 1]*x509.Certificate
	certs := buf[:n+1]
	certs[0] = root
	for i := 1; i <= n; i++ {
		der, what := p.cert, linkName(i, n)
		if i < n {
			der = p.cabundle[i]
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fail(ErrCertificate, "%s does not parse: %v", what, err)
		}
		if err := checkProfile(c, i == n, what); err != nil {
			return nil, err
		}
		certs[i] = c
	}
	for i := 1; i <= n; i++ {
		if child, parent := certs[i], certs[i-1]; !bytes.Equal(child.RawIssuer, parent.RawSubject) {
			return nil, fail(ErrChain, "%s issuer %q is not the subject of its parent %q", linkName(i, n), child.Issuer, parent.Subject)
		}
	}
	// The link signatures are independent and dominate a cold verification:
	// check them concurrently, then report the first failure in chain order.
	// CheckSignatureFrom also requires the parent to be a CA whose key usage
	// (if present) allows keyCertSign.
	var errs [maxCABundle + 1]error
	var wg sync.WaitGroup
	for i := 2; i <= n; i++ {
		wg.Go(func() { errs[i] = link(certs[i], certs[i-1]) })
	}
	errs[1] = link(certs[1], certs[0])
	wg.Wait()
	for i := 1; i <= n; i++ {
		if errs[i] != nil {
			return nil, fail(ErrChain, "%s is not signed by its parent: %v", linkName(i, n), errs[i])
		}
	}
	// Path length: a CA at certs[i] has n-1-i intermediates below it.
	for i := range n {
		c := certs[i]
		if c.BasicConstraintsValid && c.MaxPathLen >= 0 && n-1-i > c.MaxPathLen {
			return nil, fail(ErrChain, "%q allows a path length of %d, the chain has %d CA certificates below it", c.Subject, c.MaxPathLen, n-1-i)
		}
	}
	ch := &chain{
		leafKey: certs[n].PublicKey.(*ecdsa.PublicKey), // checked by checkProfile
		certs:   make([]Certificate, n+1),
	}
	for i := range certs {
		c := certs[n-i]
		ch.certs[i] = Certificate{
			Subject:   c.Subject.String(),
			Issuer:    c.Issuer.String(),
			NotBefore: c.NotBefore.UTC(),
			NotAfter:  c.NotAfter.UTC(),
			SHA256:    sha256.Sum256(c.Raw),
		}
	}
	return ch, nil
}

// checkProfile enforces the AWS certificate profile on an intermediate or the
// leaf.
func checkProfile(c *x509.Certificate, leaf bool, what string) error {
	if c.Version != 3 {
		return fail(ErrCertificate, "%s is X.509 version %d, want 3", what, c.Version)
	}
	if !isP384(c) {
		return fail(ErrCertificate, "%s key is not ECDSA P-384", what)
	}
	if c.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		return fail(ErrCertificate, "%s is signed with %v, want ECDSA-SHA384", what, c.SignatureAlgorithm)
	}
	if len(c.UnhandledCriticalExtensions) != 0 {
		return fail(ErrCertificate, "%s has an unhandled critical extension %v", what, c.UnhandledCriticalExtensions[0])
	}
	if name, ok := refusedExtension(c, refusedBelowRoot); ok {
		return fail(ErrCertificate, "%s carries %s, which the AWS profile does not use and this verifier does not evaluate", what, name)
	}
	if leaf {
		if c.BasicConstraintsValid && c.IsCA {
			return fail(ErrCertificate, "%s is a CA certificate", what)
		}
		if c.BasicConstraintsValid && c.MaxPathLen >= 0 {
			return fail(ErrCertificate, "%s basic constraints carry a pathLenConstraint", what)
		}
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return fail(ErrCertificate, "%s key usage lacks digitalSignature", what)
		}
		return nil
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return fail(ErrCertificate, "%s is not a CA certificate", what)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fail(ErrCertificate, "%s key usage lacks keyCertSign", what)
	}
	return nil
}

// A refused extension is one that x509.Verify evaluates (crypto/x509 parses
// it and marks it handled) and that no AWS certificate carries: rather than
// re-implement its semantics, the verifier refuses a certificate carrying it,
// critical or not.
type refused struct {
	oid  asn1.ObjectIdentifier
	name string
}

var (
	refusedNameConstraints = refused{asn1.ObjectIdentifier{2, 5, 29, 30}, "name constraints"}
	refusedExtKeyUsage     = refused{asn1.ObjectIdentifier{2, 5, 29, 37}, "an extended key usage"}

	// refusedBelowRoot applies to intermediates and the leaf.
	refusedBelowRoot = []refused{
		refusedNameConstraints,
		refusedExtKeyUsage,
		{asn1.ObjectIdentifier{2, 5, 29, 33}, "policy mappings"},
		{asn1.ObjectIdentifier{2, 5, 29, 36}, "policy constraints"},
		{asn1.ObjectIdentifier{2, 5, 29, 54}, "inhibitAnyPolicy"},
	}
	// refusedOnRoot: x509.Verify applies a root's name constraints and
	// extended key usage to the chain, but leaves the trust anchor out of
	// policy processing.
	refusedOnRoot = []refused{refusedNameConstraints, refusedExtKeyUsage}
)

// refusedExtension returns the name of the first extension of c in list.
func refusedExtension(c *x509.Certificate, list []refused) (string, bool) {
	for _, e := range c.Extensions {
		for _, r := range list {
			if e.Id.Equal(r.oid) {
				return r.name, true
			}
		}
	}
	return "", false
}

func isP384(c *x509.Certificate) bool {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P384()
}

// linkName names certs[i] of a chain whose leaf is certs[n].
func linkName(i, n int) string {
	if i == n {
		return "leaf certificate"
	}
	return "cabundle[" + strconv.Itoa(i) + "]"
}

// checkValidity checks every certificate's window at t.
func (ch *chain) checkValidity(t time.Time) error {
	for i := range ch.certs {
		c := &ch.certs[i]
		if t.Before(c.NotBefore) {
			return fail(ErrValidity, "certificate %q is not valid before %s (verification time %s)",
				c.Subject, c.NotBefore.Format(time.RFC3339), t.UTC().Format(time.RFC3339))
		}
		if t.After(c.NotAfter) {
			return fail(ErrValidity, "certificate %q expired at %s (verification time %s)",
				c.Subject, c.NotAfter.Format(time.RFC3339), t.UTC().Format(time.RFC3339))
		}
	}
	return nil
}
