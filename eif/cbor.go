package eif

import (
	"errors"
	"fmt"
)

// The signature section is serde_cbor output of Rust structs whose byte vectors lack
// serde_bytes, so they are arrays of small integers. The few CBOR items involved are read
// and written here by hand, strictly: definite lengths and shortest-form heads only, as
// serde_cbor writes them.

const (
	cborUint  = 0
	cborNeg   = 1
	cborBytes = 2
	cborText  = 3
	cborArray = 4
	cborMap   = 5
)

var errCBOREnd = errors.New("unexpected end of CBOR data")

// cborReader reads CBOR items from a byte slice.
type cborReader struct {
	b   []byte
	pos int
}

// head reads an item head: major type and argument. Indefinite lengths, reserved values
// and non-shortest arguments are rejected.
func (r *cborReader) head() (major byte, arg uint64, err error) {
	if r.pos >= len(r.b) {
		return 0, 0, errCBOREnd
	}
	ib := r.b[r.pos]
	r.pos++
	major, info := ib>>5, ib&0x1f
	var n int
	switch {
	case info < 24:
		return major, uint64(info), nil
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default:
		return 0, 0, fmt.Errorf("CBOR head %#02x at %d: indefinite length or reserved value", ib, r.pos-1)
	}
	if len(r.b)-r.pos < n {
		return 0, 0, errCBOREnd
	}
	for _, c := range r.b[r.pos : r.pos+n] {
		arg = arg<<8 | uint64(c)
	}
	r.pos += n
	if (n == 1 && arg < 24) || (n > 1 && arg < 1<<(4*n)) {
		return 0, 0, fmt.Errorf("CBOR head at %d: argument %d not in shortest form", r.pos-n-1, arg)
	}
	return major, arg, nil
}

// expect reads a head of the given major type and returns its argument.
func (r *cborReader) expect(major byte, what string) (uint64, error) {
	m, arg, err := r.head()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if m != major {
		return 0, fmt.Errorf("%s: CBOR major type %d, want %d", what, m, major)
	}
	return arg, nil
}

// bytes reads a byte string.
func (r *cborReader) bytes(what string) ([]byte, error) {
	n, err := r.expect(cborBytes, what)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.pos) {
		return nil, fmt.Errorf("%s: %w", what, errCBOREnd)
	}
	b := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return b, nil
}

// key reads a text string and requires it to be want.
func (r *cborReader) key(want string) error {
	n, err := r.expect(cborText, "map key")
	if err != nil {
		return err
	}
	if n > uint64(len(r.b)-r.pos) || string(r.b[r.pos:r.pos+int(n)]) != want {
		return fmt.Errorf("map key at %d is not %q", r.pos, want)
	}
	r.pos += int(n)
	return nil
}

// byteArray reads an array of unsigned integers 0..255 (a Rust Vec<u8> through serde_cbor).
func (r *cborReader) byteArray(what string) ([]byte, error) {
	n, err := r.expect(cborArray, what)
	if err != nil {
		return nil, err
	}
	// Each element takes at least one byte: a length beyond the data is a lie.
	if n > uint64(len(r.b)-r.pos) {
		return nil, fmt.Errorf("%s: array of %d items in %d bytes", what, n, len(r.b)-r.pos)
	}
	out := make([]byte, n)
	for i := range out {
		m, v, err := r.head()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		if m != cborUint || v > 255 {
			return nil, fmt.Errorf("%s[%d]: not an integer 0..255", what, i)
		}
		out[i] = byte(v)
	}
	return out, nil
}

// end requires that all input was consumed.
func (r *cborReader) end(what string) error {
	if r.pos != len(r.b) {
		return fmt.Errorf("%s: %d trailing bytes", what, len(r.b)-r.pos)
	}
	return nil
}

// appendHead appends a shortest-form CBOR head.
func appendHead(b []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(b, m|byte(arg))
	case arg <= 0xff:
		return append(b, m|24, byte(arg))
	case arg <= 0xffff:
		return append(b, m|25, byte(arg>>8), byte(arg))
	case arg <= 0xffffffff:
		return append(b, m|26, byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
	}
	return append(b, m|27, byte(arg>>56), byte(arg>>48), byte(arg>>40), byte(arg>>32),
		byte(arg>>24), byte(arg>>16), byte(arg>>8), byte(arg))
}

func appendText(b []byte, s string) []byte {
	return append(appendHead(b, cborText, uint64(len(s))), s...)
}

func appendBytes(b, v []byte) []byte {
	return append(appendHead(b, cborBytes, uint64(len(v))), v...)
}

// appendByteArray appends v as serde_cbor writes a Vec<u8>: an array of integers.
func appendByteArray(b, v []byte) []byte {
	b = appendHead(b, cborArray, uint64(len(v)))
	for _, c := range v {
		b = appendHead(b, cborUint, uint64(c))
	}
	return b
}
