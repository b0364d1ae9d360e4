package eif

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/attestd/attestd/internal/fuzzedit"
)

// fuzzBases reads the raw inputs in testdata/fuzzbase/dir, in name order, that a fuzz target
// edits (package fuzzedit: images are kilobytes, too long for Go's minimiser).
func fuzzBases(f *testing.F, dir string) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzzbase", dir, "*"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fuzz bases in testdata/fuzzbase/%s: %v", dir, err)
	}
	var bases [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, b)
	}
	return bases
}

// FuzzParse: Parse never panics, fails only with typed errors, and whatever it accepts is
// self-consistent. Each input is also parsed with its CRC fixed, so that mutations reach the
// metadata and signature decoders instead of stopping at the CRC check. The inputs are edits
// (package fuzzedit) of testdata/fuzzbase/parse: the test vector, small built images
// (unsigned, signed, single ramdisk, three ramdisks, bzImage and arm64 kernels) and truncations.
func FuzzParse(f *testing.F) {
	fuzzedit.Run(f, fuzzBases(f, "parse"), 64<<10, func(t *testing.T, b []byte) {
		check(t, b)
		if len(b) >= HeaderSize {
			check(t, fixCRC(append([]byte{}, b...)))
		}
	})
}

func check(t *testing.T, b []byte) {
	img, err := parseBytes(b)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		return
	}
	m := img.Measurements
	if len(m.PCR0) != 48 || len(m.PCR1) != 48 || len(m.PCR2) != 48 || (m.PCR8 != nil) != img.Signed() {
		t.Fatalf("measurements %+v", m)
	}
	if img.Header.CRC32 != fileCRC(b) {
		t.Fatalf("accepted CRC %08x, file %08x", img.Header.CRC32, fileCRC(b))
	}
	last := img.Sections[len(img.Sections)-1]
	if last.DataOffset()+last.Size != int64(len(b)) {
		t.Fatalf("sections end at %d, file at %d", last.DataOffset()+last.Size, len(b))
	}
	if _, err := Describe(img).JSON(); err != nil {
		t.Fatalf("describe: %v", err)
	}
	// What the pass read from the kernel section as it streamed is what the whole section says.
	k := img.Sections[0]
	if want := ReadKernel(b[k.DataOffset() : k.DataOffset()+k.Size]); img.Kernel != want {
		t.Fatalf("Parse read the kernel as %+v, ReadKernel as %+v", img.Kernel, want)
	}
}

// FuzzKernel: ReadKernel never panics, reports only a well-formed release, and gives the same
// answer when the section is streamed in pieces (of 1 to 256 bytes, from step) as in one go.
// The inputs are edits (package fuzzedit) of testdata/fuzzbase/kernel: synthetic bzImages
// (4.14, 6.6, a zero pointer, a pointer past the setup, a string without NUL) and arm64 Images
// (one banner, two conflicting banners).
func FuzzKernel(f *testing.F) {
	bases := fuzzBases(f, "kernel")
	for i := range bases {
		f.Add(uint8(i), []byte(nil), uint8(i*37))
	}
	f.Fuzz(func(t *testing.T, base uint8, script []byte, step uint8) {
		section, ok := fuzzedit.Edit(bases, base, script, 16<<10)
		if !ok {
			return
		}
		k := ReadKernel(section)
		switch k.Format {
		case KernelBzImage, KernelArm64Image:
		case KernelUnknown:
			if k.Release != "" {
				t.Fatalf("release %q of an unknown format", k.Release)
			}
		default:
			t.Fatalf("format %q", k.Format)
		}
		if k.Release != "" && !validRelease([]byte(k.Release)) {
			t.Fatalf("invalid release %q", k.Release)
		}
		if got := writeInPieces(section, int(step)+1, 1, int(step)/3+1); got != k {
			t.Fatalf("in pieces: %+v, in one go: %+v", got, k)
		}
	})
}

// FuzzMetadata: ParseMetadata never panics, and what it accepts re-encodes (as the builder
// writes it) to metadata that parses to the same fields.
func FuzzMetadata(f *testing.F) {
	f.Add([]byte(`{"ImageName":"synthetic","ImageVersion":"1.0","BuildMetadata":{"BuildTime":"2024-01-01T00:00:00+00:00","BuildTool":"eif_build","BuildToolVersion":"0.0.0","OperatingSystem":"OS","KernelVersion":"kernel"},"DockerInfo":null,"CustomMetadata":null}`))
	f.Add([]byte(`{"ImageName":"a\u0000\"","ImageVersion":"","BuildMetadata":{"BuildTime":"","BuildTool":"","BuildToolVersion":"","OperatingSystem":"","KernelVersion":""},"DockerInfo":{"b":[1,2.5e3,{"c":null}],"a":true},"CustomMetadata":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		enc, err := m.encode()
		if err != nil {
			t.Fatalf("encode accepted metadata: %v", err)
		}
		back, err := ParseMetadata(enc)
		if err != nil {
			t.Fatalf("re-encoded metadata rejected: %v\n%s", err, enc)
		}
		again, err := back.encode()
		if err != nil || !bytes.Equal(enc, again) || back.ImageName != m.ImageName || back.BuildMetadata != m.BuildMetadata {
			t.Fatalf("round trip differs:\n%s\n%s", enc, again)
		}
	})
}
