package kmsenvelope

import (
	"bytes"
	"testing"
)

// FuzzParse: no input panics Parse, and what it accepts holds every invariant the template states.
// testdata/fuzz/FuzzParse holds the six real envelopes and a few edge shapes as seeds.
func FuzzParse(f *testing.F) {
	for _, r := range realEnvelopes {
		f.Add(readTestdata(f, r.file))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			if _, ok := err.(*FieldError); !ok {
				t.Fatalf("error %T %v, want *FieldError", err, err)
			}
			return
		}
		if len(b) > MaxSize || len(e.KeyID) != KeyIDSize || len(e.IV) != IVSize ||
			len(e.EncryptedKey) == 0 || len(e.EncryptedKey) > maxEncryptedKey ||
			len(e.EncryptedContent) == 0 || len(e.EncryptedContent)%blockSize != 0 {
			t.Fatalf("accepted an envelope outside the bounds: %+v", e)
		}
		sum := 0
		for _, c := range e.Chunks {
			if c <= 0 {
				t.Fatalf("chunk of %d bytes", c)
			}
			sum += c
		}
		if e.Chunks != nil && sum != len(e.EncryptedContent) {
			t.Fatalf("chunks %v do not add up to %d", e.Chunks, len(e.EncryptedContent))
		}
		if !bytes.Contains(b, e.KeyID) || !bytes.Contains(b, e.IV) || !bytes.Contains(b, e.EncryptedKey) {
			t.Fatal("parsed fields are not in the input")
		}
	})
}

// FuzzOpen: no input panics Open with the edgebit key, every failure is ErrOpen, and whatever
// opens also parses.
func FuzzOpen(f *testing.F) {
	key := edgebitKey(f)
	f.Add(readTestdata(f, "edgebit.ber"))
	f.Add(readTestdata(f, "sdkc-2-primitive.ber"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := Open(key, b)
		if err != nil {
			if err != ErrOpen || pt != nil {
				t.Fatalf("%x, %v; want nil, ErrOpen", pt, err)
			}
			return
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("opened but does not parse: %v", err)
		}
	})
}
