package attestation

import (
	"errors"

	"github.com/attestd/attestd/internal/strictcbor"
)

// reader is internal/strictcbor's Reader with the verifier's errors: an
// encoding strictcbor finds malformed (not well-formed, or not in the shortest
// form) is ErrCBOR; a well-formed item of the wrong type is a schema error,
// whose sentinel the caller names (badType). Every message names the item.
//
// A reader made by newReader (the COSE envelope and the protected header)
// accepts definite lengths only. One made by newPayloadReader also accepts
// indefinite-length maps and arrays (count) and strings (bytes, text): RFC
// 8949 and AWS allow them anywhere in the payload, and the NSM switched its
// top-level map to one in 2025.
type reader struct {
	strictcbor.Reader
	chunks bool // indefinite lengths allowed
	size   int  // of the input: bounds the joined chunked strings
	// joined holds the chunked strings read so far, back to back; its
	// capacity is fixed at size (chunks never overlap, so their total fits),
	// so earlier strings stay valid as it grows.
	joined []byte
}

func newReader(b []byte) reader { return reader{Reader: strictcbor.NewReader(b)} }

func newPayloadReader(b []byte) reader {
	return reader{Reader: strictcbor.NewReader(b), chunks: true, size: len(b)}
}

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

// count reads the head of an array or map that must be of major type want
// and returns its count, or indef for an indefinite length (payload readers
// only; the items then end with a break, see next).
func (r *reader) count(want byte, what string, badType error) (n uint64, indef bool, err error) {
	start := r.Off()
	major, n, indef, err := r.head(what)
	switch {
	case err != nil:
		return 0, false, err
	case major != want:
		return 0, false, fail(badType, "%s is a %s, want a %s", what, strictcbor.MajorName(major), strictcbor.MajorName(want))
	case indef && !r.chunks:
		return 0, false, fail(ErrCBOR, "%s has an indefinite length at offset %d", what, start)
	}
	return n, indef, nil
}

// next reports whether the array or map being read, which has read i items
// (pairs) of n, has another: for an indefinite length, whether the break
// (which next consumes) is not next.
func (r *reader) next(indef bool, i, n uint64, what string) (bool, error) {
	if !indef {
		return i < n, nil
	}
	c, ok := r.Peek()
	if !ok {
		return false, fail(ErrCBOR, "%s: unexpected end of data at offset %d", what, r.Off())
	}
	if c == strictcbor.Break {
		r.Head() // one byte, already seen
		return false, nil
	}
	return true, nil
}

// bytes reads a byte string.
func (r *reader) bytes(what string, badType error) ([]byte, error) {
	return r.str(strictcbor.Bytes, what, badType)
}

// text reads a UTF-8 text string.
func (r *reader) text(what string, badType error) ([]byte, error) {
	return r.str(strictcbor.Text, what, badType)
}

// str reads a string of the given major type: definite-length, or in a
// payload reader also indefinite-length, whose definite chunks of the same
// type (each valid UTF-8, for text) are joined.
func (r *reader) str(major byte, what string, badType error) ([]byte, error) {
	if c, ok := r.Peek(); !ok || c != major<<5|31 || !r.chunks {
		return r.chunk(major, what, badType)
	}
	start := r.Off()
	r.Head() // the indefinite-length head, already seen
	if r.joined == nil {
		r.joined = make([]byte, 0, r.size)
	}
	from := len(r.joined)
	for {
		c, ok := r.Peek()
		if !ok {
			return nil, fail(ErrCBOR, "%s: indefinite-length %s at offset %d has no break", what, strictcbor.MajorName(major), start)
		}
		if c == strictcbor.Break {
			r.Head()
			break
		}
		s, err := r.chunk(major, what, ErrCBOR) // a chunk of another type is malformed, not a schema error
		if err != nil {
			return nil, err
		}
		r.joined = append(r.joined, s...)
	}
	return r.joined[from:len(r.joined):len(r.joined)], nil
}

// chunk reads a definite-length string of the given major type.
func (r *reader) chunk(major byte, what string, badType error) ([]byte, error) {
	var s []byte
	var err error
	if major == strictcbor.Text {
		s, err = r.Text()
	} else {
		s, err = r.Bytes()
	}
	if err != nil {
		return nil, r.fail(err, major, what, badType)
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
