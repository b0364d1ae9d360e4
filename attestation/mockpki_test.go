package attestation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// An AWS-shaped mock PKI (root -> regional -> zonal -> instance -> leaf, all
// P-384, ecdsa-with-SHA384, the same extensions as the real chain) and a
// COSE_Sign1 document builder with its own small CBOR encoder, so that
// malformed documents can be signed and reach the check they target.

// mockNow is the timestamp of mock documents.
var mockNow = time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)

type mockCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type mockPKI struct {
	root, regional, zonal, instance, leaf mockCA
}

var (
	pkiOnce sync.Once
	pki     *mockPKI
	keyPool = map[string]*ecdsa.PrivateKey{}
	keyMu   sync.Mutex
)

// key returns a per-name cached P-384 key (key generation dominates setup).
func key(t testing.TB, name string) *ecdsa.PrivateKey {
	return keyOn(t, name, elliptic.P384())
}

func keyOn(t testing.TB, name string, curve elliptic.Curve) *ecdsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	name += "/" + curve.Params().Name
	if k, ok := keyPool[name]; ok {
		return k
	}
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPool[name] = k
	return k
}

func awsName(cn string) pkix.Name {
	return pkix.Name{Country: []string{"US"}, Organization: []string{"Amazon"}, OrganizationalUnit: []string{"AWS"}, CommonName: cn}
}

var serial atomic.Int64

func caTemplate(cn string, pathLen int, from, to time.Time) *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + serial.Add(1)),
		Subject:               awsName(cn),
		NotBefore:             from,
		NotAfter:              to,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	if pathLen >= 0 {
		t.MaxPathLen, t.MaxPathLenZero = pathLen, pathLen == 0
	} else {
		t.MaxPathLen = -1
	}
	return t
}

func leafTemplate(from, to time.Time) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(1000 + serial.Add(1)),
		Subject:               awsName("i-0123456789abcdef0-enc0123456789abcdef.us-east-1.aws"),
		NotBefore:             from,
		NotAfter:              to,
		BasicConstraintsValid: true,
		IsCA:                  false,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
}

// issue signs tmpl for pub with the parent (nil parent: self-signed by key).
func issue(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey, parent *mockCA, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	parentCert := tmpl
	if parent != nil {
		parentCert = parent.cert
		signer = parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newMockPKI(t testing.TB) *mockPKI {
	pkiOnce.Do(func() {
		p := &mockPKI{}
		rk := key(t, "root")
		p.root = mockCA{issue(t, caTemplate("aws.nitro-enclaves", -1, mockNow.AddDate(-5, 0, 0), mockNow.AddDate(25, 0, 0)), &rk.PublicKey, nil, rk), rk}
		p.regional = p.child(t, "regional", caTemplate("0123456789abcdef.us-east-1.aws.nitro-enclaves", 2, mockNow.AddDate(0, 0, -5), mockNow.AddDate(0, 0, 15)), &p.root)
		p.zonal = p.child(t, "zonal", caTemplate("fedcba9876543210.zonal.us-east-1.aws.nitro-enclaves", 1, mockNow.AddDate(0, 0, -2), mockNow.AddDate(0, 0, 4)), &p.regional)
		instTmpl := caTemplate("i-0123456789abcdef0.us-east-1.aws.nitro-enclaves", 0, mockNow.Add(-12*time.Hour), mockNow.Add(12*time.Hour))
		instTmpl.KeyUsage = x509.KeyUsageCertSign
		p.instance = p.child(t, "instance", instTmpl, &p.zonal)
		p.leaf = p.child(t, "leaf", leafTemplate(mockNow.Add(-time.Hour), mockNow.Add(2*time.Hour+3*time.Second)), &p.instance)
		pki = p
	})
	return pki
}

func (p *mockPKI) child(t testing.TB, keyName string, tmpl *x509.Certificate, parent *mockCA) mockCA {
	k := key(t, keyName)
	return mockCA{issue(t, tmpl, &k.PublicKey, parent, nil), k}
}

// --- a tiny CBOR encoder (independent of the decoder under test) ---

func cHead(maj byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{maj<<5 | byte(n)}
	case n <= 0xff:
		return []byte{maj<<5 | 24, byte(n)}
	case n <= 0xffff:
		return []byte{maj<<5 | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{maj<<5 | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	default:
		b := []byte{maj<<5 | 27}
		for i := 7; i >= 0; i-- {
			b = append(b, byte(n>>(8*i)))
		}
		return b
	}
}

func cUint(n uint64) []byte  { return cHead(0, n) }
func cBytes(b []byte) []byte { return append(cHead(2, uint64(len(b))), b...) }
func cText(s string) []byte  { return append(cHead(3, uint64(len(s))), s...) }
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

var cNull = []byte{0xf6}

// kv is one encoded map entry.
type kv struct{ k, v []byte }

func cMap(entries []kv, indef bool) []byte {
	var out []byte
	if indef {
		out = []byte{0xbf}
	} else {
		out = cHead(5, uint64(len(entries)))
	}
	for _, e := range entries {
		out = append(out, e.k...)
		out = append(out, e.v...)
	}
	if indef {
		out = append(out, 0xff)
	}
	return out
}

func cArray(items ...[]byte) []byte {
	return append(cHead(4, uint64(len(items))), cat(items...)...)
}

// --- documents ---

// mockPCR returns a distinct, non-zero 48-byte PCR value.
func mockPCR(i int) []byte { return bytes.Repeat([]byte{byte(0xa0 + i)}, pcrSize) }

// docSpec describes a mock document; build encodes and signs it.
type docSpec struct {
	timestamp   time.Time
	leaf        *x509.Certificate
	cabundle    [][]byte
	pcrs        []kv // encoded entries
	publicKey   []byte
	userData    []byte
	nonce       []byte
	fields      func([]kv) []kv // edits the payload entries before encoding
	indefinite  bool            // payload top-level map as bf..ff
	payload     func([]byte) []byte
	protected   []byte
	unprotected []byte
	signer      *ecdsa.PrivateKey
	signature   func(sig []byte) []byte
	envelope    func(protected, unprotected, payload, sig []byte) []byte
}

// baseSpec is a valid document signed by the mock leaf.
func baseSpec(t testing.TB) *docSpec {
	p := newMockPKI(t)
	s := &docSpec{
		timestamp:   mockNow,
		leaf:        p.leaf.cert,
		cabundle:    [][]byte{p.root.cert.Raw, p.regional.cert.Raw, p.zonal.cert.Raw, p.instance.cert.Raw},
		publicKey:   bytes.Repeat([]byte{0x04}, 65),
		userData:    []byte("user data"),
		nonce:       []byte("0123456789abcdef0123"),
		protected:   []byte{0xa1, 0x01, 0x38, 0x22},
		unprotected: []byte{0xa0},
		signer:      p.leaf.key,
	}
	for i := range 16 {
		s.pcrs = append(s.pcrs, kv{cUint(uint64(i)), cBytes(mockPCR(i))})
	}
	return s
}

func optBytes(b []byte) []byte {
	if b == nil {
		return cNull
	}
	return cBytes(b)
}

func (s *docSpec) payloadEntries() []kv {
	bundle := make([][]byte, len(s.cabundle))
	for i, c := range s.cabundle {
		bundle[i] = cBytes(c)
	}
	return []kv{
		{cText("module_id"), cText("i-0123456789abcdef0-enc0123456789abcdef")},
		{cText("digest"), cText("SHA384")},
		{cText("timestamp"), cUint(uint64(s.timestamp.UnixMilli()))},
		{cText("pcrs"), cMap(s.pcrs, false)},
		{cText("certificate"), cBytes(s.leaf.Raw)},
		{cText("cabundle"), cArray(bundle...)},
		{cText("public_key"), optBytes(s.publicKey)},
		{cText("user_data"), optBytes(s.userData)},
		{cText("nonce"), optBytes(s.nonce)},
	}
}

// sigStructure is RFC 8152 §4.4 Sig_structure for COSE_Sign1.
func sigStructure(protected, payload []byte) []byte {
	return cArray(cText("Signature1"), cBytes(protected), cBytes(nil), cBytes(payload))
}

// signES384 returns the raw r||s signature (48 bytes each, whatever the
// curve, so that a wrong-curve key still yields a 96-byte field).
func signES384(t testing.TB, k *ecdsa.PrivateKey, msg []byte) []byte {
	d := sha512.Sum384(msg)
	der, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil {
		t.Fatal(err)
	}
	// Fixed 66-byte fields fit every curve; keep the low 48 bytes of each.
	r, sv := sig.R.FillBytes(make([]byte, 66)), sig.S.FillBytes(make([]byte, 66))
	return append(r[18:], sv[18:]...)
}

func (s *docSpec) build(t testing.TB) []byte {
	t.Helper()
	entries := s.payloadEntries()
	if s.fields != nil {
		entries = s.fields(entries)
	}
	payload := cMap(entries, s.indefinite)
	if s.payload != nil {
		payload = s.payload(payload)
	}
	sig := signES384(t, s.signer, sigStructure(s.protected, payload))
	if s.signature != nil {
		sig = s.signature(sig)
	}
	if s.envelope != nil {
		return s.envelope(s.protected, s.unprotected, payload, sig)
	}
	return cat(cHead(4, 4), cBytes(s.protected), s.unprotected, cBytes(payload), cBytes(sig))
}

// mockOptions are the baseline options for mock documents: mock root, one
// second after the timestamp, PCR0/1/2 pinned.
func mockOptions(t testing.TB) Options {
	return Options{
		Root: newMockPKI(t).root.cert,
		Time: mockNow.Add(time.Second),
		PCRs: map[int][][]byte{0: {mockPCR(0)}, 1: {mockPCR(1)}, 2: {mockPCR(2)}},
	}
}

// replaceField swaps the value of the named payload field.
func replaceField(name string, v []byte) func([]kv) []kv {
	return func(es []kv) []kv {
		for i := range es {
			if bytes.Equal(es[i].k, cText(name)) {
				es[i].v = v
			}
		}
		return es
	}
}

func dropField(name string) func([]kv) []kv {
	return func(es []kv) []kv {
		out := es[:0]
		for _, e := range es {
			if !bytes.Equal(e.k, cText(name)) {
				out = append(out, e)
			}
		}
		return out
	}
}

func addField(k, v []byte) func([]kv) []kv {
	return func(es []kv) []kv { return append(es, kv{k, v}) }
}

// wantRejected asserts that err is an *Error for exactly the check want (and
// mentions substr), and that no document came with it.
func wantRejected(t testing.TB, doc *Document, err error, want error, substr string) {
	t.Helper()
	if doc != nil {
		t.Errorf("got a document together with err=%v", err)
	}
	if err == nil {
		t.Fatalf("accepted, want %v check failure", want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !errors.Is(err, want) || e.Check != want.Error() {
		t.Fatalf("rejected by %q check (%v), want %q", e.Check, err, want)
	}
	if substr != "" && !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not mention %q", err, substr)
	}
}
