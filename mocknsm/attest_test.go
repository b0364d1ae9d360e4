package mocknsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/docproof"
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

const realDir = "../testdata/nitro/real"

// testDoc is the payload as test code reads it, independently of any project verifier.
type testDoc = docproof.Payload

// verifyIndependently checks a document with the tests' independent checker.
func verifyIndependently(doc, rootPEM []byte, at time.Time) (*testDoc, error) {
	return docproof.Verify(doc, rootPEM, at)
}

func realDocs(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(realDir, "*.cbor"))
	if err != nil || len(files) != 36 {
		t.Fatalf("real documents: %d files, %v", len(files), err)
	}
	docs := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[filepath.Base(f)] = b
	}
	return docs
}

func payloadOf(t testing.TB, doc []byte) (*testDoc, []byte) {
	t.Helper()
	env, p, err := docproof.Decode(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p, env.Payload
}

// TestIndependentVerifierOnRealDocs makes sure the test's own verifier is not vacuous: it accepts genuine AWS
// documents (both payload encodings, 16 and 17 PCRs) at their timestamp and rejects the two with a bad signature.
func TestIndependentVerifierOnRealDocs(t *testing.T) {
	awsRoot, err := os.ReadFile("../testdata/nitro/aws_nitro_root_g1.pem")
	if err != nil {
		t.Fatal(err)
	}
	docs := realDocs(t)
	for _, name := range []string{"qos-20220706-prod.cbor", "marlin-20250429-prod-pcr16.cbor", "bedrock-20250827-prod.cbor",
		"veracruz-20221109-prod-badsig.cbor", "eternis-20240723-debug-badsig.cbor"} {
		doc := docs[name]
		p, _ := payloadOf(t, doc)
		_, err := verifyIndependently(doc, awsRoot, time.UnixMilli(int64(p.Timestamp)))
		if bad := strings.Contains(name, "badsig"); (err != nil) != bad {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func attest(t testing.TB, n *NSM, req *request.Attestation) []byte {
	t.Helper()
	var r response.Response
	if err := cbor.Unmarshal(process(t, n, enc(t, req)), &r); err != nil || r.Attestation == nil {
		t.Fatalf("Attestation: %v %+v", err, r)
	}
	return r.Attestation.Document
}

func TestAttestationVerifies(t *testing.T) {
	n, dir := newTestNSMShared(t)
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	doc := attest(t, n, &request.Attestation{UserData: []byte("user"), Nonce: []byte("nonce"), PublicKey: []byte("pk")})
	p, err := verifyIndependently(doc, rootPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(int64(p.Timestamp))
	if ts.Before(before.Truncate(time.Millisecond)) || ts.After(time.Now()) {
		t.Fatalf("timestamp %v not within the call", ts)
	}
	if p.ModuleID != n.st.ModuleID || p.Digest != "SHA384" || string(p.UserData) != "user" ||
		string(p.Nonce) != "nonce" || string(p.PublicKey) != "pk" || len(p.PCRs) != 16 {
		t.Fatalf("payload %+v", p)
	}
	for i, v := range p.PCRs {
		if !bytes.Equal(v, n.pcrs[i][:]) {
			t.Errorf("pcrs[%d] = %x, want %x", i, v, n.pcrs[i])
		}
	}

	// Any changed byte of the payload or the signature breaks it.
	_, payload := payloadOf(t, doc)
	off := bytes.Index(doc, payload)
	for _, i := range []int{off + 20, off + len(payload) - 1, len(doc) - 1, len(doc) - 60} {
		bad := bytes.Clone(doc)
		bad[i] ^= 1
		if _, err := verifyIndependently(bad, rootPEM, ts); err == nil {
			t.Errorf("flipped byte %d still verifies", i)
		}
	}

	// Nothing trusts the mock root by default: not the AWS root, not the system pool.
	awsRoot, _ := os.ReadFile("../testdata/nitro/aws_nitro_root_g1.pem")
	if _, err := verifyIndependently(doc, awsRoot, ts); err == nil {
		t.Fatal("verifies under the AWS root")
	}
	leaf, _ := x509.ParseCertificate(p.Certificate)
	inter := x509.NewCertPool()
	for _, der := range p.CABundle {
		c, _ := x509.ParseCertificate(der)
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter, CurrentTime: ts}); err == nil {
		t.Fatal("the chain verifies with the system roots")
	}

	// Locked PCRs appear, unlocked ones do not; absent fields are null, empty ones h''.
	process(t, n, enc(t, &request.ExtendPCR{Index: 16, Data: []byte("app")}))
	process(t, n, enc(t, &request.ExtendPCR{Index: 17, Data: []byte("app")}))
	process(t, n, enc(t, &request.LockPCR{Index: 16}))
	doc = attest(t, n, &request.Attestation{UserData: []byte{}})
	p, err = verifyIndependently(doc, rootPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.PCRs) != 17 || !bytes.Equal(p.PCRs[16], sha384(make([]byte, 48), []byte("app"))) || p.PCRs[17] != nil {
		t.Fatalf("pcrs after locking 16: %d entries", len(p.PCRs))
	}
	_, payload = payloadOf(t, doc)
	tail := []byte("\x6apublic_key\xf6\x69user_data\x40\x65nonce\xf6")
	if !bytes.HasSuffix(payload, tail) {
		t.Fatalf("payload ends %x, want %x", payload[len(payload)-len(tail):], tail)
	}
}

// TestAttestationLimits: the NSM has no per-field limit (1024 bytes each at once succeeds, as in AWS's
// nsm-check); only the 4096-byte request bounds the fields, and the largest document fits the response buffer.
func TestAttestationLimits(t *testing.T) {
	n, _ := newTestNSMShared(t)
	process(t, n, enc(t, &request.LockPCRs{Range: 32})) // the largest pcrs map
	k := make([]byte, 1024)
	doc := attest(t, n, &request.Attestation{UserData: k, Nonce: k, PublicKey: k})
	if p, _ := payloadOf(t, doc); len(p.UserData) != 1024 || len(p.Nonce) != 1024 || len(p.PublicKey) != 1024 {
		t.Fatal("1024-byte fields")
	}
	// Fill a request to exactly 4096 bytes.
	req := &request.Attestation{UserData: make([]byte, 4000), Nonce: []byte{}, PublicKey: []byte{}}
	req.UserData = make([]byte, 4000+nsm.MaxRequestSize-len(enc(t, req)))
	if len(enc(t, req)) != nsm.MaxRequestSize {
		t.Fatalf("request %d bytes", len(enc(t, req)))
	}
	resp := process(t, n, enc(t, req))
	if len(resp) > nsm.MaxResponseSize {
		t.Fatalf("response %d bytes exceeds the driver's buffer", len(resp))
	}
	if _, errno := n.Process(enc(t, &request.Attestation{UserData: make([]byte, len(req.UserData)+1), Nonce: []byte{}, PublicKey: []byte{}})); errno == 0 {
		t.Fatal("a 4097-byte attestation request was accepted")
	}
}

// cborItem is one CBOR data item, read by the minimal parser below (test code: independent of fxamacker).
type cborItem struct {
	major, ai byte
	arg       uint64
	indef     bool
	raw       []byte
}

func readItem(b []byte) (cborItem, []byte, error) {
	if len(b) == 0 {
		return cborItem{}, nil, errors.New("EOF")
	}
	it := cborItem{major: b[0] >> 5, ai: b[0] & 31}
	p := 1
	switch {
	case it.ai < 24:
		it.arg = uint64(it.ai)
	case it.ai <= 27:
		n := 1 << (it.ai - 24)
		if len(b) < 1+n {
			return it, nil, errors.New("EOF in head")
		}
		for _, c := range b[1 : 1+n] {
			it.arg = it.arg<<8 | uint64(c)
		}
		p += n
	case it.ai == 31 && it.major >= 2 && it.major <= 5:
		it.indef = true
	default:
		return it, nil, fmt.Errorf("bad head %x", b[0])
	}
	children := uint64(0)
	switch it.major {
	case 2, 3:
		if !it.indef {
			if uint64(len(b)-p) < it.arg {
				return it, nil, errors.New("EOF in string")
			}
			p += int(it.arg)
		}
	case 4:
		children = it.arg
	case 5:
		children = 2 * it.arg
	case 6:
		children = 1
	}
	rest := b[p:]
	for i := uint64(0); it.indef || i < children; i++ {
		if it.indef && len(rest) > 0 && rest[0] == 0xff {
			rest = rest[1:]
			break
		}
		_, r, err := readItem(rest)
		if err != nil {
			return it, nil, err
		}
		rest = r
	}
	it.raw = b[:len(b)-len(rest)]
	return it, rest, nil
}

// children returns the items inside an array or map (keys and values alternating).
func (it cborItem) children() []cborItem {
	var out []cborItem
	b := it.raw[1+headLen(it):]
	for len(b) > 0 && !(it.indef && b[0] == 0xff) {
		c, r, err := readItem(b)
		if err != nil {
			break
		}
		out = append(out, c)
		b = r
	}
	return out
}

func headLen(it cborItem) int {
	if it.ai >= 24 && it.ai <= 27 {
		return 1 << (it.ai - 24)
	}
	return 0
}

// shape describes an item's CBOR types and head forms (and lengths below 256), recursively.
func shape(it cborItem) string {
	head := fmt.Sprintf("%d/%d", it.major, it.ai)
	if it.ai == 24 {
		head += fmt.Sprintf(":%d", it.arg) // a 1-byte length: PCR values (48), module id (39)
	}
	if it.indef {
		head = fmt.Sprintf("%d/indef", it.major)
	}
	switch it.major {
	case 4, 5:
		var parts []string
		for _, c := range it.children() {
			parts = append(parts, shape(c))
		}
		return head + "[" + strings.Join(parts, " ") + "]"
	case 0:
		if it.ai < 24 {
			return fmt.Sprintf("uint(%d)", it.arg)
		}
	case 7:
		return fmt.Sprintf("simple(%x)", it.raw[0])
	}
	return head
}

// payloadShape returns the top-level map's header and the shape of each key and value, in order.
func payloadShape(t *testing.T, payload []byte) (string, []string) {
	t.Helper()
	it, rest, err := readItem(payload)
	if err != nil || len(rest) != 0 || it.major != 5 {
		t.Fatalf("payload: %v, %d trailing bytes, major %d", err, len(rest), it.major)
	}
	var out []string
	kv := it.children()
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, string(kv[i].raw[1:])+"="+shape(kv[i+1]))
	}
	return fmt.Sprintf("%x", payload[0]), out
}

// TestDocumentShapeMatchesReal compares a mock document with every real AWS document, item by item: the
// envelope, the nine keys in order, every value's CBOR major type and head form (uint64 timestamp, definite pcrs
// map with uint keys and 48-byte values, definite 4-entry cabundle, null or byte string optionals). For each real
// document the mock is asked for optional fields of the same presence and length, and locks PCR16 when it did.
func TestDocumentShapeMatchesReal(t *testing.T) {
	n, _ := newTestNSMShared(t)
	mock := attest(t, n, &request.Attestation{})
	mockEnv, rest, err := readItem(mock)
	if err != nil || len(rest) != 0 {
		t.Fatalf("mock envelope: %v, %d trailing", err, len(rest))
	}
	// The envelope without the payload: array(4), protected bstr, {}, the payload's head byte, bstr(96).
	envShape := func(it cborItem) string {
		c := it.children()
		return fmt.Sprintf("%x %x %x %x %d/%d", it.raw[0], c[0].raw, c[1].raw, c[2].raw[0], c[3].ai, c[3].arg)
	}
	for name, real := range realDocs(t) {
		t.Run(name, func(t *testing.T) {
			realEnv, _, err := readItem(real)
			if err != nil {
				t.Fatal(err)
			}
			if envShape(mockEnv) != envShape(realEnv) {
				t.Errorf("envelope: mock %s, real %s", envShape(mockEnv), envShape(realEnv))
			}

			// The payload the mock signs for the same request (signing every one would only cost time).
			rp, realPayload := payloadOf(t, real)
			n, _ := newTestNSMShared(t)
			if len(rp.PCRs) == 17 {
				process(t, n, enc(t, &request.LockPCR{Index: 16}))
			}
			same := func(b []byte) []byte {
				if b == nil {
					return nil
				}
				return make([]byte, len(b))
			}
			_, mockPayload, err := n.payload(decoded{op: Attestation, userData: same(rp.UserData), nonce: same(rp.Nonce),
				publicKey: same(rp.PublicKey)}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			realHead, realShape := payloadShape(t, realPayload)
			mockHead, mockShape := payloadShape(t, mockPayload)
			if mockHead != "a9" || (realHead != "a9" && realHead != "bf") {
				t.Errorf("payload map header: mock %s, real %s", mockHead, realHead)
			}
			if !slices.Equal(mockShape, realShape) {
				t.Errorf("payload shape differs:\nmock %q\nreal %q", mockShape, realShape)
			}
		})
	}
	// The signed document's payload has the same shape as the unsigned one.
	_, signed := payloadOf(t, mock)
	_, unsigned, _ := n.payload(decoded{op: Attestation}, time.Now())
	_, a := payloadShape(t, signed)
	_, b := payloadShape(t, unsigned)
	if !slices.Equal(a, b) {
		t.Fatal("signed and unsigned payloads differ in shape")
	}
}

// TestCertificateProfile compares every certificate of a mock document with the same level of a real 2025 AWS
// chain: extension set and criticality, key usage and basic constraints (also their DER), subject attribute
// order, algorithms, lifetimes.
func TestCertificateProfile(t *testing.T) {
	realP, _ := payloadOf(t, realDocs(t)["bedrock-20250827-prod.cbor"])
	n, _ := newTestNSMShared(t)
	mockP, _ := payloadOf(t, attest(t, n, &request.Attestation{}))
	parse := func(p *testDoc) []*x509.Certificate {
		var out []*x509.Certificate
		for _, der := range append(slices.Clone(p.CABundle), p.Certificate) {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	extSet := func(c *x509.Certificate) string {
		var s []string
		for _, e := range c.Extensions {
			v := ""
			if e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15}) || e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 19}) {
				v = fmt.Sprintf("=%x", e.Value) // key usage and basic constraints: the exact DER
			}
			s = append(s, fmt.Sprintf("%s critical=%v%s", e.Id, e.Critical, v))
		}
		slices.Sort(s)
		return strings.Join(s, "; ")
	}
	attrOrder := func(c *x509.Certificate) string {
		var s []string
		for _, a := range c.Subject.Names {
			s = append(s, a.Type.String())
		}
		return strings.Join(s, ",")
	}
	real, mock := parse(realP), parse(mockP)
	levels := []string{"root", "regional", "zonal", "instance", "leaf"}
	for i, name := range levels {
		r, m := real[i], mock[i]
		if got, want := extSet(m), extSet(r); got != want {
			t.Errorf("%s extensions:\nmock %s\nreal %s", name, got, want)
		}
		if m.KeyUsage != r.KeyUsage || m.IsCA != r.IsCA || m.MaxPathLen != r.MaxPathLen || m.MaxPathLenZero != r.MaxPathLenZero {
			t.Errorf("%s: KU %v/%v CA %v/%v pathlen %d/%d", name, m.KeyUsage, r.KeyUsage, m.IsCA, r.IsCA, m.MaxPathLen, r.MaxPathLen)
		}
		if attrOrder(m) != attrOrder(r) || attrOrder(m) == "" {
			t.Errorf("%s subject attributes: mock %s, real %s", name, attrOrder(m), attrOrder(r))
		}
		if m.SignatureAlgorithm != x509.ECDSAWithSHA384 || m.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P384() {
			t.Errorf("%s: %v", name, m.SignatureAlgorithm)
		}
		if len(m.ExtKeyUsage) != 0 {
			t.Errorf("%s has an EKU", name)
		}
		mLife, rLife := m.NotAfter.Sub(m.NotBefore), r.NotAfter.Sub(r.NotBefore)
		if name == "zonal" {
			if mLife < 132*time.Hour || mLife > 145*time.Hour {
				t.Errorf("zonal lifetime %v", mLife)
			}
		} else if mLife != rLife {
			t.Errorf("%s lifetime: mock %v, real %v", name, mLife, rLife)
		}
	}
	if !strings.Contains(mock[0].Subject.CommonName, "mock.nitro-enclaves") || strings.Contains(mock[0].Subject.String(), "Amazon") {
		t.Errorf("mock root subject %s", mock[0].Subject)
	}
	leafSerial := mock[4].SerialNumber.Bytes()
	_, enclave := splitModuleID(n.st.ModuleID)
	if fmt.Sprintf("%x", leafSerial[:8]) != enclave || !bytes.Equal(leafSerial[8:12], []byte{0, 0, 0, 0}) {
		t.Errorf("leaf serial %x, want enclave id || 0^4 || NotBefore", leafSerial)
	}
}

// TestRenewal: the leaf is reused until less than an hour is left, then re-issued; CA certificates are
// re-issued from the same keys as they near expiry; every document verifies with the root.pem written at Init,
// from its timestamp until its leaf expires.
func TestRenewal(t *testing.T) {
	n, dir := newTestNSM(t, Config{})
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	clock := t0
	n.now = func() time.Time { return clock }
	first := true
	at := func(d time.Duration) (*testDoc, []*x509.Certificate) {
		t.Helper()
		clock = t0.Add(d)
		doc := attest(t, n, &request.Attestation{})
		p, err := verifyIndependently(doc, rootPEM, clock)
		if err != nil {
			t.Fatalf("at +%v: %v", d, err)
		}
		var certs []*x509.Certificate
		for _, der := range append(slices.Clone(p.CABundle), p.Certificate) {
			c, _ := x509.ParseCertificate(der)
			certs = append(certs, c)
		}
		leaf := certs[4]
		if ts := time.UnixMilli(int64(p.Timestamp)); !ts.Equal(clock.Truncate(time.Millisecond)) || ts.Before(leaf.NotBefore) {
			t.Fatalf("timestamp %v, clock %v, leaf from %v", ts, clock, leaf.NotBefore)
		}
		// Verifiable until the leaf expires, not after.
		doc2, _ := verifyIndependently(doc, rootPEM, leaf.NotAfter)
		if doc2 == nil {
			t.Fatalf("at +%v: not verifiable at leaf NotAfter", d)
		}
		if first {
			if _, err := verifyIndependently(doc, rootPEM, leaf.NotAfter.Add(time.Second)); err == nil {
				t.Fatalf("at +%v: verifiable after the leaf expired", d)
			}
			first = false
		}
		return p, certs
	}
	_, c0 := at(0)
	_, c1 := at(119 * time.Minute)
	if !c1[4].Equal(c0[4]) {
		t.Fatal("leaf re-issued with more than an hour left")
	}
	_, c2 := at(2*time.Hour + 5*time.Minute)
	if c2[4].Equal(c0[4]) || c2[4].PublicKey.(*ecdsa.PublicKey).Equal(c0[4].PublicKey) {
		t.Fatal("leaf not re-issued (with a new key) with less than an hour left")
	}
	if !c2[3].Equal(c0[3]) {
		t.Fatal("instance certificate re-issued early")
	}
	_, c3 := at(21 * time.Hour)
	if c3[3].Equal(c0[3]) || !c3[3].PublicKey.(*ecdsa.PublicKey).Equal(c0[3].PublicKey) || !c3[2].Equal(c0[2]) {
		t.Fatal("instance certificate not re-issued from its key with less than 4 h left")
	}
	_, c4 := at(31 * 24 * time.Hour)
	for i := 1; i <= 3; i++ {
		if c4[i].Equal(c3[i]) || c4[i].NotBefore.Before(clock.Add(-time.Second)) {
			t.Errorf("level %d not re-issued after expiry", i)
		}
	}
	if !c4[0].Equal(c0[0]) {
		t.Fatal("root re-issued")
	}
	// A clock before the chain's NotBefore: everything is re-issued (root too) and still verifies with its key.
	clock = t0.Add(-48 * time.Hour)
	doc := attest(t, n, &request.Attestation{})
	if _, err := verifyIndependently(doc, n.RootPEM(), clock); err != nil {
		t.Fatalf("before NotBefore: %v", err)
	}
	if bytes.Equal(n.RootPEM(), rootPEM) {
		t.Fatal("root not re-issued for a clock before its NotBefore")
	}
}
