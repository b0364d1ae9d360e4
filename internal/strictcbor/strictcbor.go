// Package strictcbor reads and writes the few CBOR items attestd's own formats use (RFC 8949), strictly and
// without allocating.
//
// The Reader accepts only the preferred serialisation: every argument in its shortest form, no reserved
// additional information, and indefinite lengths reported to the caller (Head) or rejected (everything else).
// Byte and text strings are returned as sub-slices of the input, text is checked to be UTF-8, and a count read
// from the input is only ever looped over against the bytes left, never used to size a buffer. Errors are
// *Error values that match ErrMalformed (the input is not well-formed, or not in the strict form) or ErrType
// (well-formed, but not the type asked for), so a caller can tell a broken encoding from a schema mismatch.
//
// The Append functions write the same strict form.
package strictcbor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Major types (RFC 8949 §3.1).
const (
	Uint   byte = 0
	Nint   byte = 1
	Bytes  byte = 2
	Text   byte = 3
	Array  byte = 4
	Map    byte = 5
	Tag    byte = 6
	Simple byte = 7 // simple values and floats
)

// Single-byte items.
const (
	False byte = 0xf4
	True  byte = 0xf5
	Null  byte = 0xf6
	Break byte = 0xff // ends an indefinite-length item
)

// Error kinds: every *Error unwraps to one of them.
var (
	// ErrMalformed means the input is not well-formed CBOR, or not in the strict form this package reads.
	ErrMalformed = errors.New("malformed CBOR")
	// ErrType means a well-formed item is not of the type the caller asked for.
	ErrType = errors.New("unexpected CBOR type")
)

// Error is a failure to read an item.
type Error struct {
	Kind error  // ErrMalformed or ErrType
	Off  int    // offset of the item (or byte) at fault
	Msg  string // what is wrong
}

func (e *Error) Error() string { return fmt.Sprintf("%s at offset %d", e.Msg, e.Off) }

// Unwrap returns the error's kind.
func (e *Error) Unwrap() error { return e.Kind }

func malformed(off int, format string, args ...any) error {
	return &Error{Kind: ErrMalformed, Off: off, Msg: fmt.Sprintf(format, args...)}
}

// truncated reports a string of n bytes with only left bytes after its head (the data, not counting the head).
func truncated(off int, major byte, n uint64, left int) error {
	return malformed(off, "truncated %s: needs %d bytes, %d left", MajorName(major), n, left)
}

// majorNames names the major types in errors.
var majorNames = [8]string{"unsigned integer", "negative integer", "byte string", "text string", "array", "map",
	"tag", "simple value or float"}

// MajorName names a major type ("byte string").
func MajorName(major byte) string { return majorNames[major&7] }

// Reader reads items from a byte slice, front to back.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader of b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Off is the offset of the next unread byte.
func (r *Reader) Off() int { return r.off }

// Len is the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) - r.off }

// Peek returns the next byte without consuming it; ok is false at the end of the input.
func (r *Reader) Peek() (c byte, ok bool) {
	if r.off >= len(r.b) {
		return 0, false
	}
	return r.b[r.off], true
}

// Head reads an item head. For byte and text strings, arrays and maps, and the break code, additional
// information 31 (an indefinite length) is reported as indef with a zero argument; the caller decides whether
// the schema allows it (then the items that follow end with Break). A non-shortest argument, reserved
// additional information (28..30), indefinite integers or tags, and a one-byte simple value below 32 are
// ErrMalformed. Float arguments (major 7, info 25..27) have no shortest-form rule and come back as their bits.
func (r *Reader) Head() (major byte, arg uint64, indef bool, err error) {
	start := r.off
	if r.off >= len(r.b) {
		return 0, 0, false, malformed(start, "unexpected end of data")
	}
	ib := r.b[r.off]
	r.off++
	major, info := ib>>5, ib&0x1f
	switch {
	case info < 24:
		return major, uint64(info), false, nil
	case info <= 27:
		n := 1 << (info - 24) // 1, 2, 4 or 8 bytes
		if len(r.b)-r.off < n {
			r.off = start
			return 0, 0, false, malformed(start, "truncated item head")
		}
		for _, c := range r.b[r.off : r.off+n] {
			arg = arg<<8 | uint64(c)
		}
		r.off += n
		switch {
		case major == Simple && info == 24 && arg < 32:
			r.off = start
			return 0, 0, false, malformed(start, "simple value %d in two bytes", arg)
		case major != Simple && arg < shortest[info-24]:
			r.off = start
			return 0, 0, false, malformed(start, "non-minimal head: %s argument %d not in its shortest form", MajorName(major), arg)
		}
		return major, arg, false, nil
	case info == 31 && (major >= Bytes && major <= Map || major == Simple):
		return major, 0, true, nil
	case info == 31:
		r.off = start
		return 0, 0, false, malformed(start, "indefinite length on a %s", MajorName(major))
	}
	r.off = start
	return 0, 0, false, malformed(start, "reserved additional information %d", info)
}

// shortest is the smallest argument each of the 1, 2, 4 and 8-byte forms may carry.
var shortest = [4]uint64{24, 1 << 8, 1 << 16, 1 << 32}

// Expect reads the head of a definite-length item of the given major type and returns its argument (the
// value of an integer, the length of a string, the count of an array or map, the number of a tag). On error
// nothing is consumed.
func (r *Reader) Expect(want byte) (uint64, error) {
	start := r.off
	major, arg, indef, err := r.Head()
	switch {
	case err != nil:
		return 0, err
	case major != want:
		r.off = start
		return 0, &Error{Kind: ErrType, Off: start, Msg: fmt.Sprintf("found %s, want %s", MajorName(major), MajorName(want))}
	case indef:
		r.off = start
		return 0, malformed(start, "indefinite-length %s", MajorName(major))
	}
	return arg, nil
}

// Uint reads an unsigned integer.
func (r *Reader) Uint() (uint64, error) { return r.Expect(Uint) }

// Bytes reads a byte string; the result aliases the input.
func (r *Reader) Bytes() ([]byte, error) { return r.str(Bytes) }

// Text reads a text string, which must be valid UTF-8; the result aliases the input.
func (r *Reader) Text() ([]byte, error) {
	start := r.off
	s, err := r.str(Text)
	if err == nil && !utf8.Valid(s) {
		r.off = start
		return nil, malformed(start, "text string is not valid UTF-8")
	}
	return s, err
}

func (r *Reader) str(major byte) ([]byte, error) {
	start := r.off
	n, err := r.Expect(major)
	if err != nil {
		return nil, err
	}
	if left := len(r.b) - r.off; n > uint64(left) {
		r.off = start
		return nil, truncated(start, major, n, left)
	}
	s := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// Bool reads true or false.
func (r *Reader) Bool() (bool, error) {
	switch c, ok := r.Peek(); {
	case ok && c == True:
		r.off++
		return true, nil
	case ok && c == False:
		r.off++
		return false, nil
	case !ok:
		return false, malformed(r.off, "unexpected end of data")
	}
	return false, &Error{Kind: ErrType, Off: r.off, Msg: "not a boolean"}
}

// Null consumes a null if it is next and reports whether it did.
func (r *Reader) Null() bool {
	if c, ok := r.Peek(); ok && c == Null {
		r.off++
		return true
	}
	return false
}

// Skip reads one whole item and returns its encoding (aliasing the input). It accepts integers, strings,
// arrays and maps of definite length, and simple values and floats, nested at most depth deep (a scalar is
// depth 1). Tags and indefinite lengths are ErrMalformed: no format read with Skip uses them. Skip checks
// that the item is well-formed, not what it means: text is checked to be UTF-8 when it is read with Text,
// and map keys are checked when the map is read with TextMap. On error nothing is consumed.
func (r *Reader) Skip(depth int) ([]byte, error) {
	start := r.off
	if err := r.skip(depth); err != nil {
		r.off = start
		return nil, err
	}
	return r.b[start:r.off:r.off], nil
}

func (r *Reader) skip(depth int) error {
	start := r.off
	if depth < 1 {
		return malformed(start, "nested too deeply")
	}
	major, arg, indef, err := r.Head()
	switch {
	case err != nil:
		return err
	case indef:
		return malformed(start, "indefinite-length %s", MajorName(major))
	}
	switch major {
	case Bytes, Text:
		if arg > uint64(len(r.b)-r.off) {
			return truncated(start, major, arg, len(r.b)-r.off)
		}
		r.off += int(arg)
	case Array, Map:
		per := uint64(1) // every item takes at least a byte: a count beyond what is left is a lie
		if major == Map {
			per = 2
		}
		if arg > uint64(len(r.b)-r.off)/per {
			return malformed(start, "truncated %s: %d items cannot fit in the %d bytes left", MajorName(major), arg, len(r.b)-r.off)
		}
		for i := uint64(0); i < arg*per; i++ {
			if err := r.skip(depth - 1); err != nil {
				return err
			}
		}
	case Tag:
		return malformed(start, "tag %d", arg)
	}
	return nil
}

// End fails unless all input was read.
func (r *Reader) End() error {
	if r.off != len(r.b) {
		return malformed(r.off, "%d bytes after the item", len(r.b)-r.off)
	}
	return nil
}

// Entry is one pair of a map with text keys: the key and the value's encoding, both aliasing the input.
type Entry struct {
	Key []byte
	Val []byte
}

// TextMap reads a definite-length map of at most max pairs whose keys are distinct text strings, appending
// its pairs to dst. Values are read with Skip(depth-1), so depth counts the map itself. The map's order is
// kept. On error nothing is consumed.
func (r *Reader) TextMap(dst []Entry, max, depth int) ([]Entry, error) {
	start := r.off
	n, err := r.Expect(Map)
	if err != nil {
		return dst, err
	}
	if n > uint64(max) {
		r.off = start
		return dst, malformed(start, "map of %d pairs, limit %d", n, max)
	}
	first := len(dst)
	for range n {
		keyOff := r.off
		k, err := r.Text()
		if err == nil {
			for _, e := range dst[first:] {
				if string(e.Key) == string(k) {
					err = malformed(keyOff, "duplicate map key %q", k)
					break
				}
			}
		}
		var v []byte
		if err == nil {
			v, err = r.Skip(depth - 1)
		}
		if err != nil {
			r.off = start
			return dst[:first], err
		}
		dst = append(dst, Entry{Key: k, Val: v})
	}
	return dst, nil
}

// HeadSize is the size of the shortest head carrying n.
func HeadSize(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// AppendHead appends the shortest head of the given major type carrying n.
func AppendHead(b []byte, major byte, n uint64) []byte {
	major <<= 5
	switch {
	case n < 24:
		return append(b, major|byte(n))
	case n <= 0xff:
		return append(b, major|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, major|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, major|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, major|27), n)
}

// AppendUint appends an unsigned integer.
func AppendUint(b []byte, n uint64) []byte { return AppendHead(b, Uint, n) }

// AppendBytes appends a byte string.
func AppendBytes(b, v []byte) []byte { return append(AppendHead(b, Bytes, uint64(len(v))), v...) }

// AppendText appends a text string; s must be valid UTF-8.
func AppendText(b []byte, s string) []byte { return append(AppendHead(b, Text, uint64(len(s))), s...) }
