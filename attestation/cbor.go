package attestation

import (
	"errors"

	"github.com/attestd/attestd/internal/strictcbor"
)

// reader is internal/strictcbor's Reader with the verifier's errors: an
// encoding strictcbor finds malformed (not well-formed, or not in the shortest
// form) is ErrCBOR; a well-formed item of the wrong type is a schema error,
// whose sentinel the caller names (badType). Every message names the item.
// Indefinite lengths reach the schema only through head, so it accepts them
// only where the schema allows (the payload's top-level map).
type reader struct {
	strictcbor.Reader
}

func newReader(b []byte) reader { return reader{strictcbor.NewReader(b)} }

// fail turns the strictcbor error err from reading what, a want, into the
// verifier's error. On error strictcbor consumes nothing, so the offending
// item is still next.
func (r *reader) fail(err error, want byte, what string, badType error) error {
	if errors.Is(err, strictcbor.ErrType) {
		c, _ := r.Peek()
		return fail(badType, "%s is a %s, want a %s", what, strictcbor.MajorName(c>>5), strictcbor.MajorName(want))
	}
	return fail(ErrCBOR, "%s: %v", what, err)
}

// head reads an item head; indef reports an indefinite length.
func (r *reader) head(what string) (major byte, arg uint64, indef bool, err error) {
	if major, arg, indef, err = r.Head(); err != nil {
		return 0, 0, false, fail(ErrCBOR, "%s: %v", what, err)
	}
	return major, arg, indef, nil
}

// definite reads the head of an array or map that must be of major type want
// and of definite length, and returns its count.
func (r *reader) definite(want byte, what string, badType error) (uint64, error) {
	start := r.Off()
	major, n, indef, err := r.head(what)
	switch {
	case err != nil:
		return 0, err
	case major != want:
		return 0, fail(badType, "%s is a %s, want a %s", what, strictcbor.MajorName(major), strictcbor.MajorName(want))
	case indef:
		return 0, fail(ErrCBOR, "%s has an indefinite length at offset %d", what, start)
	}
	return n, nil
}

// bytes reads a definite-length byte string.
func (r *reader) bytes(what string, badType error) ([]byte, error) {
	s, err := r.Bytes()
	if err != nil {
		return nil, r.fail(err, strictcbor.Bytes, what, badType)
	}
	return s, nil
}

// text reads a definite-length UTF-8 text string.
func (r *reader) text(what string, badType error) ([]byte, error) {
	s, err := r.Text()
	if err != nil {
		return nil, r.fail(err, strictcbor.Text, what, badType)
	}
	return s, nil
}

// unsigned reads an unsigned integer.
func (r *reader) unsigned(what string, badType error) (uint64, error) {
	n, err := r.Uint()
	if err != nil {
		return 0, r.fail(err, strictcbor.Uint, what, badType)
	}
	return n, nil
}

// end fails unless all input was consumed.
func (r *reader) end(what string) error {
	if n := r.Len(); n != 0 {
		return fail(ErrCBOR, "%d trailing bytes after %s", n, what)
	}
	return nil
}
