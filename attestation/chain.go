package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
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
// root = cabundle[0] -> cabundle[1] -> ... -> cabundle[n-1] -> leaf, and every
// constraint x509.Verify would enforce (name chaining, CA flags, key usage of
// issuers, path lengths, unhandled critical extensions) is checked here, plus
// the AWS profile (P-384 keys, ecdsa-with-SHA384, leaf digitalSignature and
// not a CA). It does not look at time.
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
	// Name constraints are not part of the AWS profile and are not evaluated
	// here, so a certificate carrying them is refused rather than half-checked.
	if hasNameConstraints(c) {
		return fail(ErrCertificate, "%s carries name constraints", what)
	}
	if leaf {
		if c.BasicConstraintsValid && c.IsCA {
			return fail(ErrCertificate, "%s is a CA certificate", what)
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

func hasNameConstraints(c *x509.Certificate) bool {
	return c.PermittedDNSDomainsCritical || len(c.PermittedDNSDomains) != 0 || len(c.ExcludedDNSDomains) != 0 ||
		len(c.PermittedIPRanges) != 0 || len(c.ExcludedIPRanges) != 0 ||
		len(c.PermittedEmailAddresses) != 0 || len(c.ExcludedEmailAddresses) != 0 ||
		len(c.PermittedURIDomains) != 0 || len(c.ExcludedURIDomains) != 0
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
