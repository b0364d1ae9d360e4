package attestation

import (
	"bytes"
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fxamacker/cbor/v2"
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
	var payload map[any]any
	if err := genericMode.Unmarshal(p.payload, &payload); err != nil {
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
	for _, doc := range realDocuments(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
	for _, doc := range realDocuments(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
