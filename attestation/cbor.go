package attestation

import (
	"unicode/utf8"
)

// A minimal strict CBOR reader for the one schema this package reads. It never
// allocates: byte and text strings are returned as sub-slices of the input,
// and counts are only looped over, never used to size a buffer. Every length
// and integer must use the shortest encoding (RFC 8949 §4.2.1); indefinite
// lengths are reported to the caller, which accepts them only where the schema
// allows (the payload's top-level map).

// CBOR major types.
const (
	majUint   = 0
	majNint   = 1
	majBytes  = 2
	majText   = 3
	majArray  = 4
	majMap    = 5
	majTag    = 6
	majSimple = 7
)

// Simple values and markers used by the schema.
const (
	cborNull  = 0xf6
	cborBreak = 0xff
)

var majNames = [8]string{"unsigned integer", "negative integer", "byte string", "text string", "array", "map", "tag", "simple value or float"}

type reader struct {
	b   []byte
	off int
}

// peek returns the next byte without consuming it.
func (r *reader) peek() (byte, error) {
	if r.off >= len(r.b) {
		return 0, fail(ErrCBOR, "unexpected end of data at offset %d", r.off)
	}
	return r.b[r.off], nil
}

// head reads an item head. For majors 2..5 and the break code, info 31
// (indefinite length) is returned as indef=true; the caller decides whether it
// is allowed. Non-minimal arguments and the reserved infos 28..30 are errors.
func (r *reader) head() (maj byte, arg uint64, indef bool, err error) {
	start := r.off
	if r.off >= len(r.b) {
		return 0, 0, false, fail(ErrCBOR, "unexpected end of data at offset %d", r.off)
	}
	ib := r.b[r.off]
	r.off++
	maj, info := ib>>5, ib&0x1f
	switch {
	case info < 24:
		return maj, uint64(info), false, nil
	case info <= 27:
		n := 1 << (info - 24) // 1, 2, 4 or 8 bytes
		if len(r.b)-r.off < n {
			return 0, 0, false, fail(ErrCBOR, "truncated item head at offset %d", start)
		}
		for _, c := range r.b[r.off : r.off+n] {
			arg = arg<<8 | uint64(c)
		}
		r.off += n
		if maj == majSimple {
			// One-byte simple values below 32 are not well-formed (RFC 8949
			// §3.3); floats have no minimality rule but the schema never
			// accepts them.
			if info == 24 && arg < 32 {
				return 0, 0, false, fail(ErrCBOR, "invalid simple value encoding at offset %d", start)
			}
			return maj, arg, false, nil
		}
		var min uint64
		switch info {
		case 24:
			min = 24
		case 25:
			min = 1 << 8
		case 26:
			min = 1 << 16
		case 27:
			min = 1 << 32
		}
		if arg < min {
			return 0, 0, false, fail(ErrCBOR, "non-minimal encoding at offset %d", start)
		}
		return maj, arg, false, nil
	case info == 31:
		switch maj {
		case majBytes, majText, majArray, majMap, majSimple:
			return maj, 0, true, nil
		}
		return 0, 0, false, fail(ErrCBOR, "indefinite length on %s at offset %d", majNames[maj], start)
	default:
		return 0, 0, false, fail(ErrCBOR, "reserved additional information %d at offset %d", info, start)
	}
}

// definite reads a head that must be of major type want and definite length.
// badType is the sentinel for a type mismatch (a schema error, not a CBOR one).
func (r *reader) definite(want byte, what string, badType error) (uint64, error) {
	start := r.off
	maj, arg, indef, err := r.head()
	if err != nil {
		return 0, err
	}
	if maj != want {
		return 0, fail(badType, "%s is a %s, want a %s", what, majNames[maj], majNames[want])
	}
	if indef {
		return 0, fail(ErrCBOR, "%s has an indefinite length at offset %d", what, start)
	}
	return arg, nil
}

// bytes reads a definite-length byte string.
func (r *reader) bytes(what string, badType error) ([]byte, error) {
	n, err := r.definite(majBytes, what, badType)
	if err != nil {
		return nil, err
	}
	return r.take(n, what)
}

// text reads a definite-length UTF-8 text string.
func (r *reader) text(what string, badType error) ([]byte, error) {
	n, err := r.definite(majText, what, badType)
	if err != nil {
		return nil, err
	}
	s, err := r.take(n, what)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(s) {
		return nil, fail(ErrCBOR, "%s is not valid UTF-8", what)
	}
	return s, nil
}

// take consumes n bytes of string content.
func (r *reader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, fail(ErrCBOR, "%s length %d exceeds the remaining %d bytes", what, n, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// unsigned reads an unsigned integer.
func (r *reader) unsigned(what string, badType error) (uint64, error) {
	maj, arg, _, err := r.head()
	if err != nil {
		return 0, err
	}
	if maj != majUint {
		return 0, fail(badType, "%s is a %s, want an unsigned integer", what, majNames[maj])
	}
	return arg, nil
}

// null consumes a CBOR null if it is next and reports whether it did.
func (r *reader) null() bool {
	if r.off < len(r.b) && r.b[r.off] == cborNull {
		r.off++
		return true
	}
	return false
}

// end fails unless all input was consumed.
func (r *reader) end(what string) error {
	if r.off != len(r.b) {
		return fail(ErrCBOR, "%d trailing bytes after %s", len(r.b)-r.off, what)
	}
	return nil
}
