package eif

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Files are measured through a read-only mapping, other readers through buffers: both
// must give the same results.
func TestParseFileMatchesReader(t *testing.T) {
	r := mrand.New(mrand.NewPCG(7, 8))
	dir := t.TempDir()
	for i, c := range []spec{
		{kernel: randomBytes(r, 10), ramdisks: [][]byte{randomBytes(r, 5)}},
		{kernel: randomBytes(r, chunkSize+3), cmdline: []byte("x"), ramdisks: [][]byte{randomBytes(r, chunkSize/2), randomBytes(r, 2*chunkSize+5)}},
	} {
		in := c.input()
		in.Signer = vectorSigner(t)
		b, _ := build(t, in)
		path := filepath.Join(dir, "img.eif")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile, err := ParseFile(path)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		fromReader, err := parseBytes(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		a, m := fromFile.Measurements, fromReader.Measurements
		if !bytes.Equal(a.PCR0, m.PCR0) || !bytes.Equal(a.PCR1, m.PCR1) || !bytes.Equal(a.PCR2, m.PCR2) || !bytes.Equal(a.PCR8, m.PCR8) ||
			fromFile.Header != fromReader.Header || !bytes.Equal(fromFile.Signature.COSESign1, fromReader.Signature.COSESign1) {
			t.Errorf("case %d: file and reader disagree", i)
		}
	}
}

// A file truncated after the layout walk faults inside the mapping: ErrChanged, not a crash.
func TestTruncatedWhileMapped(t *testing.T) {
	r := mrand.New(mrand.NewPCG(9, 10))
	b, _ := build(t, spec{kernel: randomBytes(r, 100), ramdisks: [][]byte{randomBytes(r, 10), randomBytes(r, 4*chunkSize)}}.input())
	path := filepath.Join(t.TempDir(), "img.eif")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := int64(len(b))
	var hb [HeaderSize]byte
	copy(hb[:], b)
	h, err := parseHeader(&hb)
	if err != nil {
		t.Fatal(err)
	}
	sections, raw, err := walk(f, size, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := openSource(f, size).(*mapSource); !ok {
		t.Skip("files are not mapped on this platform")
	}
	if err := os.Truncate(path, size/3); err != nil {
		t.Fatal(err)
	}
	// The page fault path, not a short read: the mapping outlives the truncation.
	if _, err := measure(f, size, &hb, sections, raw); !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), "while it was mapped") {
		t.Fatalf("err = %v, want ErrChanged from a fault in the mapping", err)
	}
}

type fakeFault uintptr

func (f fakeFault) Addr() uintptr { return uintptr(f) }
func (fakeFault) Error() string   { return "fault" }

// Faults outside the mapping are bugs, not a changed file: they keep panicking.
func TestFaultOutsideMappingPanics(t *testing.T) {
	mapping := make([]byte, 16)
	defer func() {
		if recover() == nil {
			t.Error("a fault outside the mapping was swallowed")
		}
	}()
	_ = faultError(fakeFault(1), mapping)
}
