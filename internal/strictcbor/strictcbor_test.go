package strictcbor

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	fxcbor "github.com/fxamacker/cbor/v2"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHead(t *testing.T) {
	for _, c := range []struct {
		in    string
		major byte
		arg   uint64
		indef bool
	}{
		{"00", Uint, 0, false},
		{"17", Uint, 23, false},
		{"1818", Uint, 24, false},
		{"18ff", Uint, 255, false},
		{"190100", Uint, 256, false},
		{"1a00010000", Uint, 65536, false},
		{"1b0000000100000000", Uint, 1 << 32, false},
		{"1bffffffffffffffff", Uint, math.MaxUint64, false},
		{"20", Nint, 0, false},
		{"5818", Bytes, 24, false},
		{"5f", Bytes, 0, true},
		{"7f", Text, 0, true},
		{"9f", Array, 0, true},
		{"bf", Map, 0, true},
		{"ff", Simple, 0, true},
		{"d2", Tag, 18, false},
		{"f6", Simple, 22, false},
		{"f820", Simple, 32, false},
		{"f90000", Simple, 0, false},             // half-float 0: floats have no shortest-form rule
		{"fa00000000", Simple, 0, false},         // single 0
		{"fb0000000000000000", Simple, 0, false}, // double 0
	} {
		r := NewReader(unhex(t, c.in))
		major, arg, indef, err := r.Head()
		if err != nil || major != c.major || arg != c.arg || indef != c.indef || r.Len() != 0 {
			t.Errorf("Head(%s) = %d, %d, %v, %v (left %d), want %d, %d, %v", c.in, major, arg, indef, err, r.Len(),
				c.major, c.arg, c.indef)
		}
	}
}

func TestHeadRejects(t *testing.T) {
	for _, in := range []string{
		"",                   // nothing
		"18",                 // truncated argument
		"1900",               // truncated argument
		"1817",               // 23 in two bytes
		"1900ff",             // 255 in three bytes
		"1a0000ffff",         // 65535 in five bytes
		"1b00000000ffffffff", // 2^32-1 in nine bytes
		"3817",               // negative -24 in two bytes
		"5800",               // empty byte string, long form
		"1c", "1d", "1e",     // reserved
		"1f", "3f", "df", // indefinite integer, negative, tag
		"f800", "f81f", // simple values below 32 in two bytes
	} {
		r := NewReader(unhex(t, in))
		if _, _, _, err := r.Head(); !errors.Is(err, ErrMalformed) || r.Off() != 0 {
			t.Errorf("Head(%q): err %v, offset %d; want ErrMalformed at 0", in, err, r.Off())
		}
	}
	// The attestation verifier's errors quote this message, and its tests look for "non-minimal".
	r := NewReader(unhex(t, "1900ff"))
	const want = "non-minimal head: unsigned integer argument 255 not in its shortest form at offset 0"
	if _, _, _, err := r.Head(); err == nil || err.Error() != want {
		t.Errorf("Head(1900ff): %v", err)
	}
}

func TestExpectAndScalars(t *testing.T) {
	r := NewReader(unhex(t, "1903e8"+"43010203"+"6361c3a9"+"f5"+"f4"+"f6"+"a0"))
	if n, err := r.Uint(); err != nil || n != 1000 {
		t.Fatalf("Uint = %d, %v", n, err)
	}
	if b, err := r.Bytes(); err != nil || !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Fatalf("Bytes = %x, %v", b, err)
	}
	if s, err := r.Text(); err != nil || string(s) != "aé" {
		t.Fatalf("Text = %q, %v", s, err)
	}
	if v, err := r.Bool(); err != nil || !v {
		t.Fatalf("Bool = %v, %v", v, err)
	}
	if v, err := r.Bool(); err != nil || v {
		t.Fatalf("Bool = %v, %v", v, err)
	}
	if !r.Null() || r.Null() {
		t.Fatal("Null did not consume exactly one null")
	}
	// A type mismatch consumes nothing and is ErrType.
	off := r.Off()
	if _, err := r.Bytes(); !errors.Is(err, ErrType) || r.Off() != off {
		t.Fatalf("Bytes of a map: %v, offset %d -> %d", err, off, r.Off())
	}
	if _, err := r.Bool(); !errors.Is(err, ErrType) {
		t.Fatalf("Bool of a map: %v", err)
	}
	if err := r.End(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("End before the map: %v", err)
	}
	if n, err := r.Expect(Map); err != nil || n != 0 {
		t.Fatalf("Expect(Map) = %d, %v", n, err)
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Bool(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Bool at the end: %v", err)
	}
}

func TestStringRejects(t *testing.T) {
	for _, c := range []struct {
		in   string
		text bool
		kind error
	}{
		{"44010203", false, ErrMalformed},             // 4 bytes claimed, 3 left
		{"5b7fffffffffffffff00", false, ErrMalformed}, // a huge length is not allocated, just refused
		{"5f4101ff", false, ErrMalformed},             // indefinite
		{"62c328", true, ErrMalformed},                // invalid UTF-8
		{"6180", true, ErrMalformed},                  // lone continuation byte
		{"4161", true, ErrType},                       // a byte string where text is wanted
	} {
		r := NewReader(unhex(t, c.in))
		var err error
		if c.text {
			_, err = r.Text()
		} else {
			_, err = r.Bytes()
		}
		if !errors.Is(err, c.kind) || r.Off() != 0 {
			t.Errorf("%s: err %v, offset %d; want %v at 0", c.in, err, r.Off(), c.kind)
		}
		var e *Error
		if !errors.As(err, &e) || e.Off != 0 {
			t.Errorf("%s: %#v is not an *Error at offset 0", c.in, err)
		}
	}
}

// TestTruncatedCounts: a string cut short reports the bytes it needs and the
// bytes left after its head, not counting the head ("needs 96, 95 left" for a
// 96-byte string cut by one byte), through Bytes, Text and Skip alike.
func TestTruncatedCounts(t *testing.T) {
	in := append([]byte{0x58, 0x60}, make([]byte, 95)...)
	const want = "truncated byte string: needs 96 bytes, 95 left at offset 0"
	r := NewReader(in)
	if _, err := r.Bytes(); err == nil || err.Error() != want {
		t.Errorf("Bytes: %v, want %q", err, want)
	}
	if _, err := r.Skip(1); err == nil || err.Error() != want {
		t.Errorf("Skip: %v, want %q", err, want)
	}
	r = NewReader(unhex(t, "6461"))
	if _, err := r.Text(); err == nil || err.Error() != "truncated text string: needs 4 bytes, 1 left at offset 0" {
		t.Errorf("Text: %v", err)
	}
	r = NewReader(unhex(t, "8300"))
	if _, err := r.Skip(2); err == nil || !strings.Contains(err.Error(), "3 items cannot fit in the 1 bytes left") {
		t.Errorf("Skip(array): %v", err)
	}
}

func TestSkip(t *testing.T) {
	for _, c := range []struct {
		in    string
		depth int
		ok    bool
	}{
		{"00", 1, true},
		{"a26161016162820203", 3, true}, // {"a": 1, "b": [2, 3]}
		{"a26161016162820203", 2, false},
		{"818181818100", 6, true},
		{"818181818100", 5, false},
		{"f93c00", 1, true},              // half-float 1.0
		{"d8184100", 1, false},           // tag
		{"9f00ff", 1, false},             // indefinite array
		{"8300", 1, false},               // array of 3 with 1 byte left
		{"9b7fffffffffffffff", 1, false}, // huge count: refused before looping
		{"bb3fffffffffffffff", 1, false},
		{"a10000", 1, false}, // map needs depth 2
		{"a10000", 2, true},  // integer keys are fine for Skip
		{"a1616100", 2, true},
		{"62c328", 1, true},  // UTF-8 is checked by Text, not Skip
		{"64c328", 1, false}, // text longer than the input
	} {
		in := unhex(t, c.in)
		r := NewReader(append(in, 0xf6))
		raw, err := r.Skip(c.depth)
		if c.ok {
			if err != nil || !bytes.Equal(raw, in) || r.Len() != 1 {
				t.Errorf("Skip(%s, %d) = %x, %v", c.in, c.depth, raw, err)
			}
		} else if !errors.Is(err, ErrMalformed) || r.Off() != 0 {
			t.Errorf("Skip(%s, %d): err %v, offset %d; want ErrMalformed at 0", c.in, c.depth, err, r.Off())
		}
	}
}

func TestTextMap(t *testing.T) {
	in := unhex(t, "a3"+"626964"+"07"+"616b"+"a0"+"6178"+"4101")
	r := NewReader(in)
	es, err := r.TextMap(make([]Entry, 0, 4), 3, 2)
	if err != nil || r.Len() != 0 {
		t.Fatal(err)
	}
	want := []Entry{{[]byte("id"), []byte{0x07}}, {[]byte("k"), []byte{0xa0}}, {[]byte("x"), []byte{0x41, 0x01}}}
	if len(es) != len(want) {
		t.Fatalf("%d entries", len(es))
	}
	for i := range want {
		if !bytes.Equal(es[i].Key, want[i].Key) || !bytes.Equal(es[i].Val, want[i].Val) {
			t.Errorf("entry %d = %q: %x", i, es[i].Key, es[i].Val)
		}
	}
	for _, c := range []struct {
		in       string
		max, dep int
		kind     error
	}{
		{"a3626964076b00a0617841", 2, 2, ErrMalformed}, // over max pairs
		{"a2616101616102", 4, 2, ErrMalformed},         // duplicate key "a"
		{"a10101", 4, 2, ErrType},                      // integer key
		{"a161618100", 4, 2, ErrMalformed},             // value nested too deep
		{"bf616101ff", 4, 2, ErrMalformed},             // indefinite map
		{"80", 4, 2, ErrType},                          // not a map
	} {
		r := NewReader(unhex(t, c.in))
		es, err := r.TextMap(nil, c.max, c.dep)
		if !errors.Is(err, c.kind) || r.Off() != 0 || len(es) != 0 {
			t.Errorf("TextMap(%s): %v, offset %d, %d entries; want %v", c.in, err, r.Off(), len(es), c.kind)
		}
	}
}

func TestAppend(t *testing.T) {
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, math.MaxUint64} {
		for _, major := range []byte{Uint, Bytes, Map} {
			b := AppendHead(nil, major, n)
			if len(b) != HeadSize(n) {
				t.Errorf("AppendHead(%d, %d) is %d bytes, HeadSize says %d", major, n, len(b), HeadSize(n))
			}
			r := NewReader(b)
			if m, arg, _, err := r.Head(); err != nil || m != major || arg != n {
				t.Errorf("AppendHead(%d, %d) = %x reads back as %d, %d, %v", major, n, b, m, arg, err)
			}
			if major == Uint {
				if want, _ := fxcbor.Marshal(n); !bytes.Equal(b, want) {
					t.Errorf("AppendUint(%d) = %x, fxamacker writes %x", n, b, want)
				}
			}
		}
	}
	b := AppendText(AppendBytes(nil, []byte{1, 2}), "hé")
	if want := unhex(t, "420102"+"6368c3a9"); !bytes.Equal(b, want) {
		t.Errorf("AppendBytes+AppendText = %x, want %x", b, want)
	}
}
