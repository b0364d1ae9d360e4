package strictcbor

import (
	"bytes"
	"testing"

	fxcbor "github.com/fxamacker/cbor/v2"
)

// FuzzSkip checks Skip against fxamacker's decoder: whatever Skip accepts is well-formed CBOR to it too, and
// the item it returns re-encodes, through fxamacker's decoder and its encoder in core deterministic mode, to
// the same length (shortest forms and definite lengths are all Skip accepts; map order may differ). On
// rejection nothing is consumed. Seeds: testdata/fuzz/FuzzSkip.
func FuzzSkip(f *testing.F) {
	enc, err := fxcbor.CoreDetEncOptions().EncMode()
	if err != nil {
		f.Fatal(err)
	}
	dec, err := fxcbor.DecOptions{MaxNestedLevels: 16, UTF8: fxcbor.UTF8DecodeInvalid}.DecMode()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		raw, err := r.Skip(16)
		if err != nil {
			if r.Off() != 0 {
				t.Fatalf("rejected input consumed %d bytes", r.Off())
			}
			return
		}
		if !bytes.Equal(raw, in[:len(raw)]) || r.Off() != len(raw) {
			t.Fatalf("Skip returned %x, not the %d-byte prefix", raw, r.Off())
		}
		if err := dec.Wellformed(raw); err != nil {
			t.Fatalf("Skip accepted %x, fxamacker: %v", raw, err)
		}
		var v any
		if err := dec.Unmarshal(raw, &v); err != nil {
			return // e.g. a map key fxamacker cannot hold in a Go map; well-formedness was checked above
		}
		out, err := enc.Marshal(v)
		if err != nil {
			return // NaN payloads and the like
		}
		if !mayShrink(raw) && len(out) != len(raw) {
			t.Fatalf("Skip accepted %x (%d bytes); fxamacker re-encodes it as %x (%d bytes)", raw, len(raw), out, len(out))
		}
	})
}

// mayShrink reports items whose re-encoding may legitimately differ in length: floats (fxamacker shortens
// them) and maps (duplicate keys, which Skip does not look for, collapse).
func mayShrink(raw []byte) bool {
	r := NewReader(raw)
	for r.Len() > 0 {
		major, arg, _, err := r.Head()
		if err != nil {
			return true
		}
		switch major {
		case Simple, Map:
			return true
		case Bytes, Text:
			r.off += int(arg)
		}
	}
	return false
}

// FuzzTextMap checks that TextMap returns distinct text keys, values Skip accepts, and consumes exactly the map.
// Seeds: testdata/fuzz/FuzzTextMap.
func FuzzTextMap(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		es, err := r.TextMap(nil, 16, 4)
		if err != nil {
			if r.Off() != 0 || len(es) != 0 {
				t.Fatalf("rejected map consumed %d bytes, returned %d entries", r.Off(), len(es))
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range es {
			if seen[string(e.Key)] {
				t.Fatalf("duplicate key %q", e.Key)
			}
			seen[string(e.Key)] = true
			vr := NewReader(e.Val)
			if _, err := vr.Skip(3); err != nil || vr.Len() != 0 {
				t.Fatalf("value %x of %q: %v", e.Val, e.Key, err)
			}
		}
		whole := NewReader(in)
		if raw, err := whole.Skip(4); err != nil || len(raw) != r.Off() {
			t.Fatalf("TextMap read %d bytes, Skip %d (%v)", r.Off(), len(raw), err)
		}
	})
}
