package attestation

import (
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The differential test of the chain walk: chains built with crypto/x509,
// with varied extensions, critical flags, policies, name constraints, path
// lengths, key usages, validity windows, curves and signature algorithms, are
// verified by x509.Verify (the same root alone as Roots, the bundle as
// Intermediates, the same time) and by the walk (checkRoot, verifyChain,
// checkValidity). Whatever x509.Verify rejects, the walk must reject.

var (
	oidPolicyA          = x509.OID{}
	oidPolicyB          = x509.OID{}
	oidAnyPolicy        = x509.OID{}
	asn1PolicyA         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 2, 1}
	asn1PolicyB         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 2, 2}
	asn1AnyPolicy       = asn1.ObjectIdentifier{2, 5, 29, 32, 0}
	oidExtPolicyMap     = asn1.ObjectIdentifier{2, 5, 29, 33}
	oidExtPolicyCons    = asn1.ObjectIdentifier{2, 5, 29, 36}
	oidExtInhibitAny    = asn1.ObjectIdentifier{2, 5, 29, 54}
	oidExtNameCons      = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidExtUnknownBenign = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 3}
)

func init() {
	for dst, src := range map[*x509.OID]asn1.ObjectIdentifier{&oidPolicyA: asn1PolicyA, &oidPolicyB: asn1PolicyB, &oidAnyPolicy: asn1AnyPolicy} {
		o, err := x509.OIDFromASN1OID(src)
		if err != nil {
			panic(err)
		}
		*dst = o
	}
}

// policyConstraintsExt encodes PolicyConstraints { requireExplicitPolicy [0],
// inhibitPolicyMapping [1] }; a negative value leaves the field out.
func policyConstraintsExt(require, inhibit int, critical bool) pkix.Extension {
	var body []byte
	if require >= 0 {
		body = append(body, 0x80, 1, byte(require))
	}
	if inhibit >= 0 {
		body = append(body, 0x81, 1, byte(inhibit))
	}
	return pkix.Extension{Id: oidExtPolicyCons, Critical: critical, Value: append([]byte{0x30, byte(len(body))}, body...)}
}

func policyMappingsExt(t testing.TB, from, to asn1.ObjectIdentifier, critical bool) pkix.Extension {
	v, err := asn1.Marshal([]struct{ From, To asn1.ObjectIdentifier }{{from, to}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidExtPolicyMap, Critical: critical, Value: v}
}

func inhibitAnyPolicyExt(skip int, critical bool) pkix.Extension {
	return pkix.Extension{Id: oidExtInhibitAny, Critical: critical, Value: []byte{0x02, 1, byte(skip)}}
}

// chainGen draws the parameters of one chain from a random source.
type chainGen struct {
	r *rand.Rand
}

func (g chainGen) pct(p int) bool { return g.r.IntN(100) < p }

func (g chainGen) pick(n int) int { return g.r.IntN(n) }

// extensions draws the policy, name constraint, EKU and unknown extensions of
// one certificate (leaf: whether it is the leaf, which gets names to
// constrain).
func (g chainGen) extensions(t testing.TB, tmpl *x509.Certificate, leaf bool) {
	if g.pct(25) {
		all := []x509.OID{oidPolicyA, oidPolicyB, oidAnyPolicy}
		for _, o := range all {
			if g.pct(50) {
				tmpl.Policies = append(tmpl.Policies, o)
			}
		}
	}
	if g.pct(12) {
		req, inh := -1, -1
		switch g.pick(3) {
		case 0:
			req = g.pick(3)
		case 1:
			inh = g.pick(3)
		default:
			req, inh = g.pick(3), g.pick(3)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, policyConstraintsExt(req, inh, g.pct(50)))
	}
	if g.pct(8) {
		from, to := []asn1.ObjectIdentifier{asn1PolicyA, asn1AnyPolicy}[g.pick(2)], []asn1.ObjectIdentifier{asn1PolicyB, asn1AnyPolicy}[g.pick(2)]
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, policyMappingsExt(t, from, to, g.pct(50)))
	}
	if g.pct(8) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, inhibitAnyPolicyExt(g.pick(2), g.pct(50)))
	}
	if g.pct(12) {
		if g.pct(50) {
			tmpl.PermittedDNSDomains = []string{"example.com"}
		} else {
			tmpl.ExcludedDNSDomains = []string{"bad.example"}
		}
		tmpl.PermittedDNSDomainsCritical = g.pct(50)
	}
	if g.pct(10) {
		ekus := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageAny}
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, ekus[g.pick(len(ekus))])
	}
	if leaf && g.pct(40) {
		tmpl.DNSNames = []string{[]string{"a.example.com", "x.bad.example", "other.org"}[g.pick(3)]}
	}
	if g.pct(4) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidUnknownCritical, Critical: true, Value: []byte{0x05, 0x00}})
	}
	if g.pct(4) {
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtUnknownBenign, Value: []byte{0x05, 0x00}})
	}
}

// basics draws basic constraints, key usage, validity and algorithms.
func (g chainGen) basics(tmpl *x509.Certificate, leaf bool) {
	ca := !leaf
	tmpl.BasicConstraintsValid = g.pct(92) || leaf && g.pct(60)
	tmpl.IsCA = tmpl.BasicConstraintsValid && (ca && g.pct(94) || leaf && g.pct(6))
	tmpl.MaxPathLen = -1
	if tmpl.BasicConstraintsValid && (ca && g.pct(60) || leaf && g.pct(8)) {
		tmpl.MaxPathLen = g.pick(4)
		tmpl.MaxPathLenZero = tmpl.MaxPathLen == 0
		if !tmpl.IsCA {
			// CreateCertificate refuses a pathLenConstraint without cA:
			// encode basicConstraints { pathLenConstraint } by hand.
			bc := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 3, 0x02, 1, byte(tmpl.MaxPathLen)}}
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, bc)
			tmpl.MaxPathLen, tmpl.MaxPathLenZero = -1, false
		}
	}
	switch {
	case g.pct(15):
		tmpl.KeyUsage = x509.KeyUsage(g.pick(1 << 9))
	case ca:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	default:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	}
	tmpl.NotBefore, tmpl.NotAfter = mockNow.Add(-time.Hour), mockNow.Add(time.Hour)
	switch g.pick(30) {
	case 0:
		tmpl.NotAfter = mockNow.Add(-time.Minute)
	case 1:
		tmpl.NotBefore = mockNow.Add(time.Minute)
	}
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA384
	if g.pct(3) {
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	}
}

// genChain is one generated chain: its root and the document's view of it.
type genChain struct {
	root *x509.Certificate
	p    parsed
}

// chain builds a root (the mock root, or a generated one) and 0..4
// intermediates and a leaf below it.
func (g chainGen) chain(t testing.TB) genChain {
	t.Helper()
	rootCA := newMockPKI(t).root
	if g.pct(20) {
		tmpl := caTemplate("generated root", -1, mockNow.AddDate(-1, 0, 0), mockNow.AddDate(1, 0, 0))
		g.basics(tmpl, false)
		tmpl.SignatureAlgorithm = x509.ECDSAWithSHA384
		g.extensions(t, tmpl, false)
		k := key(t, "diff-root")
		rootCA = mockCA{issue(t, tmpl, &k.PublicKey, nil, k), k}
	}
	out := genChain{root: rootCA.cert}
	out.p.cabundle[0] = rootCA.cert.Raw
	n := g.pick(5)
	parents := []mockCA{rootCA}
	for i := 0; i <= n; i++ {
		leaf := i == n
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1000 + serial.Add(1)),
			Subject:      awsName(fmt.Sprintf("level %d", i)),
		}
		g.basics(tmpl, leaf)
		g.extensions(t, tmpl, leaf)
		name, curve := fmt.Sprintf("diff-%d", i), elliptic.P384()
		if g.pct(3) {
			curve = elliptic.P256()
		}
		k := keyOn(t, name, curve)
		parent := parents[len(parents)-1]
		if len(parents) > 1 && g.pct(3) {
			parent = parents[len(parents)-2] // skips a level: wrong issuer and signer
		}
		c := issue(t, tmpl, &k.PublicKey, &parent, nil)
		if leaf {
			out.p.cert = c.Raw
		} else {
			out.p.cabundle[i+1] = c.Raw
		}
		parents = append(parents, mockCA{c, k})
	}
	out.p.nCA = n + 1
	return out
}

// walk runs the verifier's checks on c at mockNow: the root profile, the
// chain walk and the validity windows.
func (c *genChain) walk() error {
	if err := checkRoot(c.root); err != nil {
		return fail(ErrOptions, "%v", err)
	}
	ch, err := verifyChain(c.root, &c.p, realSignatures.link)
	if err != nil {
		return err
	}
	return ch.checkValidity(mockNow)
}

// goVerify runs x509.Verify on c at mockNow with the given extended key
// usages.
func (c *genChain) goVerify(t testing.TB, usages []x509.ExtKeyUsage) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.root)
	for i := 1; i < c.p.nCA; i++ {
		ic, err := x509.ParseCertificate(c.p.cabundle[i])
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	leaf, err := x509.ParseCertificate(c.p.cert)
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: mockNow, KeyUsages: usages})
	return err
}

// checkChainAgainstGo fails t when x509.Verify rejects c (with any key usage,
// or with its default, serverAuth) and the walk accepts it. It reports
// whether each side accepted.
func checkChainAgainstGo(t testing.TB, c *genChain) (goOK, walkOK bool) {
	t.Helper()
	goErr := c.goVerify(t, []x509.ExtKeyUsage{x509.ExtKeyUsageAny})
	if goErr == nil {
		goErr = c.goVerify(t, nil)
	}
	walkErr := c.walk()
	if goErr != nil && walkErr == nil {
		t.Errorf("x509.Verify rejects (%v), the walk accepts:\n%s", goErr, describeChain(c))
	}
	return goErr == nil, walkErr == nil
}

// describeChain lists what the generator chose, to read a failure.
func describeChain(c *genChain) string {
	var b strings.Builder
	ders := append([][]byte{}, c.p.cabundle[:c.p.nCA]...)
	ders = append(ders, c.p.cert)
	for i, der := range ders {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			fmt.Fprintf(&b, "  [%d] unparsable: %v\n", i, err)
			continue
		}
		fmt.Fprintf(&b, "  [%d] %s bc=%v ca=%v pathlen=%d ku=%b eku=%v policies=%v dns=%v permitted=%v excluded=%v exts:",
			i, x.Subject.CommonName, x.BasicConstraintsValid, x.IsCA, x.MaxPathLen, x.KeyUsage, x.ExtKeyUsage, x.Policies,
			x.DNSNames, x.PermittedDNSDomains, x.ExcludedDNSDomains)
		for _, e := range x.Extensions {
			fmt.Fprintf(&b, " %v(crit=%v)", e.Id, e.Critical)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestChainDifferential: on a few hundred generated chains, everything
// x509.Verify rejects, the walk rejects; and both sides accept and reject
// often enough for the comparison to mean something.
func TestChainDifferential(t *testing.T) {
	n := 400
	if testing.Short() || raceEnabled {
		n = 80
	}
	g := chainGen{rand.New(rand.NewPCG(10, 3))}
	var goOK, walkOK, both int
	for range n {
		c := g.chain(t)
		gOK, wOK := checkChainAgainstGo(t, &c)
		if gOK {
			goOK++
		}
		if wOK {
			walkOK++
		}
		if gOK && wOK {
			both++
		}
	}
	t.Logf("%d chains: x509.Verify accepts %d, the walk %d, both %d", n, goOK, walkOK, both)
	if both < n/20 || goOK > n*9/10 {
		t.Fatalf("the generator is too lopsided to compare: x509.Verify accepts %d of %d, both %d", goOK, n, both)
	}
}

// FuzzChainDifferential is TestChainDifferential one chain at a time, drawn
// from the fuzzer's seed.
func FuzzChainDifferential(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7+1)
	}
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		c := chainGen{rand.New(rand.NewPCG(s1, s2))}.chain(t)
		checkChainAgainstGo(t, &c)
	})
}
