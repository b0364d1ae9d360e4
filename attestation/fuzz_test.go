package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"maps"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/attestd/attestd/internal/fuzzedit"
)

// genericMode is fxamacker/cbor as a reference decoder: duplicate keys
// rejected, everything else at its (permissive) defaults.
var genericMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, IntDec: cbor.IntDecConvertNone}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// checkAgainstGeneric asserts that a document our decoder accepted is
// well-formed CBOR for fxamacker too and decodes to exactly the same values.
func checkAgainstGeneric(t testing.TB, data []byte, p *parsed) {
	t.Helper()
	if err := cbor.Wellformed(data); err != nil {
		t.Fatalf("accepted a document fxamacker finds malformed: %v", err)
	}
	var outer any
	if err := genericMode.Unmarshal(data, &outer); err != nil {
		t.Fatalf("fxamacker rejects an accepted document: %v", err)
	}
	if tag, ok := outer.(cbor.Tag); ok {
		if tag.Number != 18 {
			t.Fatalf("accepted tag %d", tag.Number)
		}
		outer = tag.Content
	}
	arr, ok := outer.([]any)
	if !ok || len(arr) != 4 {
		t.Fatalf("accepted a non COSE_Sign1: %T %v", outer, outer)
	}
	if m, ok := arr[1].(map[any]any); !ok || len(m) != 0 {
		t.Fatalf("unprotected header %v", arr[1])
	}
	for i, want := range [][]byte{p.protected, nil, p.payload, p.signature} {
		if i == 1 {
			continue
		}
		if got, ok := arr[i].([]byte); !ok || !bytes.Equal(got, want) {
			t.Fatalf("COSE element %d differs", i)
		}
	}
	checkPayloadAgainstGeneric(t, p.payload, p)
}

// checkPayloadAgainstGeneric asserts that a payload our decoder accepted into
// p decodes in fxamacker to exactly the same fields.
func checkPayloadAgainstGeneric(t testing.TB, data []byte, p *parsed) {
	t.Helper()
	if err := cbor.Wellformed(data); err != nil {
		t.Fatalf("accepted a payload fxamacker finds malformed: %v", err)
	}
	var payload map[any]any
	if err := genericMode.Unmarshal(data, &payload); err != nil {
		t.Fatalf("fxamacker rejects an accepted payload: %v", err)
	}
	text := func(k string) string { s, _ := payload[k].(string); return s }
	if text("module_id") != string(p.moduleID) || text("digest") != "SHA384" {
		t.Fatalf("module_id/digest differ: %v %v", payload["module_id"], payload["digest"])
	}
	if ts, ok := payload["timestamp"].(uint64); !ok || ts != p.timestamp {
		t.Fatalf("timestamp %v, ours %d", payload["timestamp"], p.timestamp)
	}
	pcrs, ok := payload["pcrs"].(map[any]any)
	if !ok || len(pcrs) != bits.OnesCount32(p.pcrMask) {
		t.Fatalf("pcrs %v", payload["pcrs"])
	}
	for k, v := range pcrs {
		idx, ok := k.(uint64)
		if vb, vok := v.([]byte); !ok || !vok || idx >= maxPCRs || !bytes.Equal(vb, p.pcrs[idx]) {
			t.Fatalf("PCR %v differs", k)
		}
	}
	if c, ok := payload["certificate"].([]byte); !ok || !bytes.Equal(c, p.cert) {
		t.Fatal("certificate differs")
	}
	bundle, ok := payload["cabundle"].([]any)
	if !ok || len(bundle) != p.nCA {
		t.Fatal("cabundle differs")
	}
	for i, c := range bundle {
		if cb, ok := c.([]byte); !ok || !bytes.Equal(cb, p.cabundle[i]) {
			t.Fatalf("cabundle[%d] differs", i)
		}
	}
	fields := 6
	for name, ours := range map[string][]byte{"public_key": p.publicKey, "user_data": p.userData, "nonce": p.nonce} {
		v, present := payload[name]
		if present {
			fields++
		}
		switch {
		case v == nil && ours != nil, v != nil && ours == nil:
			t.Fatalf("%s presence differs", name)
		case v != nil && !bytes.Equal(v.([]byte), ours):
			t.Fatalf("%s differs", name)
		}
	}
	if len(payload) != fields {
		t.Fatalf("payload has %d keys, we saw %d fields", len(payload), fields)
	}
}

func realDocuments(t testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join(realDir, "*.cbor"))
	if err != nil || len(files) != 36 {
		t.Fatalf("real documents: %v (%d files)", err, len(files))
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

// fuzzBases are the documents the fuzz targets edit: every real document, in
// name order (an edit script names its base by index).
func fuzzBases(t testing.TB) [][]byte {
	docs := realDocuments(t)
	names := slices.Sorted(maps.Keys(docs))
	bases := make([][]byte, len(names))
	for i, n := range names {
		bases[i] = docs[n]
	}
	return bases
}

// TestDifferential compares our decoder with fxamacker on every real
// document and every catalogue document our decoder accepts.
func TestDifferential(t *testing.T) {
	for name, doc := range realDocuments(t) {
		var p parsed
		if err := parse(doc, &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkAgainstGeneric(t, doc, &p)
	}
	accepted := 0
	for _, c := range catalogueDocs(t) {
		doc := c.doc
		var p parsed
		err := parse(doc, &p)
		if err == nil {
			accepted++
			checkAgainstGeneric(t, doc, &p)
		} else if !errors.As(err, new(*Error)) {
			t.Fatalf("%s: untyped error %v", c.name, err)
		}
		if cbor.Wellformed(doc) != nil && err == nil {
			t.Fatalf("%s: accepted malformed CBOR", c.name)
		}
	}
	if accepted < 40 {
		t.Fatalf("only %d catalogue documents parse; the semantic cases should", accepted)
	}
}

// FuzzParse: the decoder never panics, fails only with *Error, and whatever
// it accepts, fxamacker decodes to the same values.
func FuzzParse(f *testing.F) {
	fuzzedit.Run(f, fuzzBases(f), 2*MaxDocumentSize, func(t *testing.T, data []byte) {
		var p parsed
		err := parse(data, &p)
		if err != nil {
			if !errors.As(err, new(*Error)) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		checkAgainstGeneric(t, data, &p)
	})
}

// smallPayloads are payloads of a few hundred bytes (one-byte
// "certificates", three PCRs) in every length form the decoder accepts:
// FuzzPayload's seeds, small enough to minimise quickly.
func smallPayloads() [][]byte {
	pcrs := []kv{{cUint(0), cBytes(mockPCR(0))}, {cUint(1), cBytes(mockPCR(1))}, {cUint(2), cBytes(mockPCR(2))}}
	entries := func(pcrMap, bundle []byte, str func(major byte, b []byte) []byte) []kv {
		return []kv{
			{str(3, []byte("module_id")), str(3, []byte("i-0"))},
			{str(3, []byte("digest")), str(3, []byte("SHA384"))},
			{str(3, []byte("timestamp")), cUint(uint64(mockNow.UnixMilli()))},
			{str(3, []byte("pcrs")), pcrMap},
			{str(3, []byte("certificate")), str(2, []byte{0x30})},
			{str(3, []byte("cabundle")), bundle},
			{str(3, []byte("public_key")), cNull},
			{str(3, []byte("user_data")), str(2, []byte("ud"))},
			{str(3, []byte("nonce")), str(2, nil)},
		}
	}
	definite := func(major byte, b []byte) []byte { return append(cHead(major, uint64(len(b))), b...) }
	return [][]byte{
		cMap(entries(cMap(pcrs, false), cArray(cBytes([]byte{1})), definite), false),
		cMap(entries(cMap(pcrs, false), cArray(cBytes([]byte{1})), definite), true),
		cMap(entries(cMap(pcrs, true), cIndefArray([][]byte{{1}, {2}}), definite), false),
		cMap(entries(cMap(pcrs, true), cIndefArray([][]byte{{1}}), cChunked), true),
	}
}

// FuzzPayload: the payload decoder alone, on small payloads; whatever it
// accepts (indefinite lengths anywhere), fxamacker decodes to the same
// values.
func FuzzPayload(f *testing.F) {
	for _, b := range smallPayloads() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p parsed
		if err := parsePayload(data, &p); err != nil {
			if !errors.As(err, new(*Error)) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		checkPayloadAgainstGeneric(t, data, &p)
	})
}

// TestSmallPayloads: FuzzPayload's seeds all parse, so the fuzzer starts from
// accepted inputs of every form.
func TestSmallPayloads(t *testing.T) {
	for i, b := range smallPayloads() {
		var p parsed
		if err := parsePayload(b, &p); err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		checkPayloadAgainstGeneric(t, b, &p)
	}
}

var (
	fuzzOnce     sync.Once
	fuzzVerifier *Verifier
	// genuineSigned holds protected||payload||signature of every genuine real
	// document, and the same with the (r, n-s) signature, which also verifies.
	genuineSigned map[string]bool
)

func fuzzSetup(t testing.TB) {
	fuzzOnce.Do(func() {
		v, err := NewVerifier(Options{AtDocumentTime: true, AnyPCRs: true, AllowDebug: true, MaxAge: NoMaxAge})
		if err != nil {
			t.Fatal(err)
		}
		v.cfg.sigs = newSigGate(t, realDocuments(t)).signatures()
		fuzzVerifier = v
		genuineSigned = map[string]bool{}
		for name, doc := range realDocuments(t) {
			if strings.Contains(name, "badsig") {
				continue
			}
			var p parsed
			if err := parse(doc, &p); err != nil {
				t.Fatal(err)
			}
			signed := string(p.protected) + string(p.payload)
			genuineSigned[signed+string(p.signature)] = true
			genuineSigned[signed+string(p.signature[:48])+string(negateScalar(p.signature[48:]))] = true
		}
	})
}

// sigGate stands in front of the fuzz Verifier's two signature primitives so
// that the fuzzer spends its time in the parser and the checks rather than in
// P-384 arithmetic (a mutated certificate or payload otherwise costs up to
// five ECDSA verifications, and Go re-runs an input thousands of times while
// minimising it). A signature over bytes that no real document signed fails
// at once: it could only verify by forging ECDSA. Over genuine bytes (the
// certificates' to-be-signed parts, the documents' Sig_structure digests),
// the real primitive decides, so a changed signature, key or parent is still
// judged by crypto/ecdsa and crypto/x509; its results are memoised.
type sigGate struct {
	tbs     map[string]bool // RawTBSCertificate of every real certificate
	digests map[string]bool // SHA-384 of every real document's Sig_structure

	mu    sync.Mutex
	links map[string]error
	cose  map[string]bool
}

var errNotGenuine = errors.New("signed bytes are not those of a real document (fuzz gate)")

// newSigGate records the genuine signed bytes by verifying every real
// document once through recording primitives.
func newSigGate(t testing.TB, docs map[string][]byte) *sigGate {
	g := &sigGate{tbs: map[string]bool{}, digests: map[string]bool{}, links: map[string]error{}, cose: map[string]bool{}}
	v, err := NewVerifier(Options{AtDocumentTime: true, AnyPCRs: true, AllowDebug: true, MaxAge: NoMaxAge})
	if err != nil {
		t.Fatal(err)
	}
	v.cfg.sigs = signatures{
		link: func(child, parent *x509.Certificate) error {
			g.mu.Lock()
			g.tbs[string(child.RawTBSCertificate)] = true
			g.mu.Unlock()
			return child.CheckSignatureFrom(parent)
		},
		es384: func(key *ecdsa.PublicKey, digest, sig []byte) bool {
			g.digests[string(digest)] = true
			return ecdsa.VerifyASN1(key, digest, sig)
		},
	}
	for name, doc := range docs {
		if _, err := v.Verify(doc); err != nil && !strings.Contains(name, "badsig") {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if len(g.digests) == 0 || len(g.tbs) == 0 {
		t.Fatal("no genuine signed bytes recorded")
	}
	return g
}

// gateMemo bounds each memo; beyond it results are computed, not stored.
const gateMemo = 1 << 14

func (g *sigGate) signatures() signatures {
	return signatures{
		link: func(child, parent *x509.Certificate) error {
			if !g.tbs[string(child.RawTBSCertificate)] {
				return errNotGenuine
			}
			key := string(child.Raw) + "\x00" + string(parent.Raw)
			g.mu.Lock()
			err, ok := g.links[key]
			g.mu.Unlock()
			if !ok {
				err = child.CheckSignatureFrom(parent)
				g.mu.Lock()
				if len(g.links) < gateMemo {
					g.links[key] = err
				}
				g.mu.Unlock()
			}
			return err
		},
		es384: func(key *ecdsa.PublicKey, digest, sig []byte) bool {
			if !g.digests[string(digest)] {
				return false
			}
			kb, err := key.Bytes()
			if err != nil {
				return false
			}
			memo := string(kb) + string(digest) + string(sig)
			g.mu.Lock()
			ok, seen := g.cose[memo]
			g.mu.Unlock()
			if !seen {
				ok = ecdsa.VerifyASN1(key, digest, sig)
				g.mu.Lock()
				if len(g.cose) < gateMemo {
					g.cose[memo] = ok
				}
				g.mu.Unlock()
			}
			return ok
		},
	}
}

// TestSigGate: the gate agrees with the real primitives on genuine documents
// (accepted, and the badsig ones rejected), on the (r, n-s) twin of a
// signature, and fails a document whose signed bytes changed.
func TestSigGate(t *testing.T) {
	fuzzSetup(t)
	docs, v := realDocuments(t), fuzzVerifier
	for name, doc := range docs {
		_, err := v.Verify(doc)
		if strings.Contains(name, "badsig") {
			wantRejected(t, nil, err, ErrSignature, "does not verify")
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	doc := bytes.Clone(docs["qos-20220706-prod.cbor"])
	copy(doc[len(doc)-48:], negateScalar(doc[len(doc)-48:]))
	if _, err := v.Verify(doc); err != nil {
		t.Fatalf("(r, n-s) rejected through the gate: %v", err)
	}
	doc[bytes.Index(doc, []byte("module_idx'i-"))+13] ^= 1 // a module_id digit: the digest is no longer genuine
	d, err := v.Verify(doc)
	wantRejected(t, d, err, ErrSignature, "does not verify")
}

// negateScalar returns n - s for a P-384 scalar s (big-endian, 48 bytes).
func negateScalar(s []byte) []byte {
	out := make([]byte, 48)
	var borrow int
	for i := 47; i >= 0; i-- {
		d := int(p384Order[i]) - int(s[i]) - borrow
		borrow = 0
		if d < 0 {
			d += 256
			borrow = 1
		}
		out[i] = byte(d)
	}
	return out
}

// FuzzVerify runs the full verification (embedded AWS root, at the document
// time, everything allowed): never a panic, never a document together with an
// error, and an accepted input must carry exactly the signed bytes of a
// genuine document (only the unsigned outer wrapping may differ).
func FuzzVerify(f *testing.F) {
	fuzzSetup(f)
	fuzzedit.Run(f, fuzzBases(f), 2*MaxDocumentSize, func(t *testing.T, data []byte) {
		d, err := fuzzVerifier.Verify(data)
		if err != nil {
			if d != nil || !errors.As(err, new(*Error)) {
				t.Fatalf("document %v with error %v", d, err)
			}
			return
		}
		if d == nil {
			t.Fatal("no document and no error")
		}
		var p parsed
		if err := parse(data, &p); err != nil {
			t.Fatal(err)
		}
		if !genuineSigned[string(p.protected)+string(p.payload)+string(p.signature)] {
			t.Fatalf("accepted a mutant: %x", data)
		}
	})
}

// TestNegateScalar: (r, n-s) is the other valid signature, so the fuzz
// property above must allow it; check the helper against a real document.
func TestNegateScalar(t *testing.T) {
	doc := realDocuments(t)["qos-20220706-prod.cbor"]
	mutant := bytes.Clone(doc)
	copy(mutant[len(mutant)-48:], negateScalar(doc[len(doc)-48:]))
	if _, err := Verify(mutant, Options{AtDocumentTime: true, AnyPCRs: true}); err != nil {
		t.Fatalf("(r, n-s) rejected: %v", err)
	}
}
