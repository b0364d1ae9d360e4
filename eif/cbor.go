package eif

import (
	"fmt"

	"github.com/attestd/attestd/internal/strictcbor"
)

// The signature section is serde_cbor output of Rust structs, read and written with
// internal/strictcbor: definite lengths and shortest-form heads only, as serde_cbor writes
// them. Its byte vectors lack serde_bytes, so they are arrays of small integers; those, and
// errors that name the item, are this file's.

// cborReader is a strictcbor.Reader whose errors name the item read.
type cborReader struct {
	strictcbor.Reader
}

func newCBORReader(b []byte) cborReader { return cborReader{strictcbor.NewReader(b)} }

// expect reads the head of a definite-length item of the given major type and returns its
// argument.
func (r *cborReader) expect(major byte, what string) (uint64, error) {
	n, err := r.Expect(major)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// bytes reads a byte string.
func (r *cborReader) bytes(what string) ([]byte, error) {
	b, err := r.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return b, nil
}

// key reads a text string and requires it to be want.
func (r *cborReader) key(want string) error {
	off := r.Off()
	k, err := r.Text()
	if err != nil {
		return fmt.Errorf("map key: %w", err)
	}
	if string(k) != want {
		return fmt.Errorf("map key at %d is not %q", off, want)
	}
	return nil
}

// byteArray reads an array of unsigned integers 0..255 (a Rust Vec<u8> through serde_cbor).
func (r *cborReader) byteArray(what string) ([]byte, error) {
	n, err := r.expect(strictcbor.Array, what)
	if err != nil {
		return nil, err
	}
	// Each element takes at least one byte: a length beyond the data is a lie.
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%s: array of %d items in %d bytes", what, n, r.Len())
	}
	out := make([]byte, n)
	for i := range out {
		v, err := r.Uint()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		if v > 255 {
			return nil, fmt.Errorf("%s[%d]: %d is not a byte", what, i, v)
		}
		out[i] = byte(v)
	}
	return out, nil
}

// end requires that all input was consumed.
func (r *cborReader) end(what string) error {
	if err := r.End(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// appendByteArray appends v as serde_cbor writes a Vec<u8>: an array of integers.
func appendByteArray(b, v []byte) []byte {
	b = strictcbor.AppendHead(b, strictcbor.Array, uint64(len(v)))
	for _, c := range v {
		b = strictcbor.AppendUint(b, uint64(c))
	}
	return b
}
