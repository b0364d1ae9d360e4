package kmsenvelope

import (
	"encoding/asn1"
	"fmt"
)

// BER tags the template uses (all low tag numbers, so one byte each).
const (
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagSequence    = 0x30
	tagSet         = 0x31
	tagCtx0        = 0x80 // [0] primitive
	tagCtx0Cons    = 0xa0 // [0] constructed
	tagCtx1Cons    = 0xa1
	tagCtx2Cons    = 0xa2
	constructedBit = 0x20
)

// FieldError is Parse's error: which field of the template is wrong, and how.
type FieldError struct {
	// Field names the template field, for example "rid" or "encryptedContent".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *FieldError) Error() string { return "kmsenvelope: " + e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// reader reads BER elements in order from one constructed element's contents (or the whole input).
// The parser is driven by the fixed template, so there is no generic tree walk and no recursion
// whose depth the input chooses.
type reader struct {
	b      []byte  // unread bytes; for an indefinite element, everything up to its parent's end
	indef  bool    // the contents end at an end-of-contents marker (00 00) rather than at len(b)
	parent *reader // for an indefinite element: advanced past the end-of-contents by leave
	field  string
}

// header reads one tag and length. It returns the contents length (-1 for indefinite) and the
// header's size. Lengths must be minimal and at most two bytes (MaxSize needs no more).
func header(b []byte, field string) (tag byte, n, hdr int, err error) {
	if len(b) < 2 {
		return 0, 0, 0, fieldErr(field, "truncated")
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, 0, 0, fieldErr(field, "high tag number form")
	}
	switch l := b[1]; {
	case l < 0x80:
		n, hdr = int(l), 2
	case l == 0x80:
		if tag&constructedBit == 0 {
			return 0, 0, 0, fieldErr(field, "indefinite length on a primitive element")
		}
		n, hdr = -1, 2
	case l == 0x81:
		if len(b) < 3 {
			return 0, 0, 0, fieldErr(field, "truncated")
		}
		if b[2] < 0x80 {
			return 0, 0, 0, fieldErr(field, "length not minimally encoded")
		}
		n, hdr = int(b[2]), 3
	case l == 0x82:
		if len(b) < 4 {
			return 0, 0, 0, fieldErr(field, "truncated")
		}
		n, hdr = int(b[2])<<8|int(b[3]), 4
		if n < 0x100 {
			return 0, 0, 0, fieldErr(field, "length not minimally encoded")
		}
	default:
		return 0, 0, 0, fieldErr(field, "length of %d bytes exceeds the envelope bound", int(l&0x7f))
	}
	if n > len(b)-hdr {
		return 0, 0, 0, fieldErr(field, "truncated")
	}
	return tag, n, hdr, nil
}

// atEnd reports whether r's contents are all read (for an indefinite element: the next two
// bytes are the end-of-contents marker).
func (r *reader) atEnd() bool {
	if r.indef {
		return len(r.b) >= 2 && r.b[0] == 0 && r.b[1] == 0
	}
	return len(r.b) == 0
}

// peek returns the next tag, or false at the end of r's contents.
func (r *reader) peek() (byte, bool) {
	if r.atEnd() || len(r.b) == 0 {
		return 0, false
	}
	return r.b[0], true
}

// enter reads the header of a constructed element with tag want and returns a reader over its
// contents. Indefinite length is accepted only if indefOK. The caller must call leave on the
// returned reader before reading r again.
func (r *reader) enter(want byte, field string, indefOK bool) (*reader, error) {
	tag, n, hdr, err := header(r.b, field)
	if err != nil {
		return nil, err
	}
	if tag != want {
		return nil, fieldErr(field, "tag 0x%02x, want 0x%02x", tag, want)
	}
	if n < 0 {
		if !indefOK {
			return nil, fieldErr(field, "indefinite length where the template has a definite one")
		}
		return &reader{b: r.b[hdr:], indef: true, parent: r, field: field}, nil
	}
	c := &reader{b: r.b[hdr : hdr+n], field: field}
	r.b = r.b[hdr+n:]
	return c, nil
}

// leave checks that r's contents were read whole (and, if indefinite, consumes the end-of-contents
// marker and advances the parent past it).
func (r *reader) leave() error {
	if !r.atEnd() {
		if !r.indef {
			return fieldErr(r.field, "%d unexpected bytes at the end", len(r.b))
		}
		if len(r.b) < 2 {
			return fieldErr(r.field, "truncated: no end-of-contents")
		}
		return fieldErr(r.field, "unexpected element with tag 0x%02x", r.b[0])
	}
	if r.indef {
		r.parent.b = r.b[2:]
	}
	return nil
}

// primitive reads a definite primitive element with tag want whose contents are min..max bytes.
func (r *reader) primitive(want byte, field string, min, max int) ([]byte, error) {
	if r.atEnd() {
		return nil, fieldErr(field, "missing")
	}
	tag, n, hdr, err := header(r.b, field)
	if err != nil {
		return nil, err
	}
	if tag != want {
		return nil, fieldErr(field, "tag 0x%02x, want 0x%02x", tag, want)
	}
	if n < min || n > max {
		if min == max {
			return nil, fieldErr(field, "%d bytes, want %d", n, min)
		}
		return nil, fieldErr(field, "%d bytes, want %d..%d", n, min, max)
	}
	v := r.b[hdr : hdr+n]
	r.b = r.b[hdr+n:]
	return v, nil
}

// oid reads an OBJECT IDENTIFIER and checks it is want (its DER contents).
func (r *reader) oid(want []byte, field string) error {
	v, err := r.primitive(tagOID, field, 1, 32)
	if err != nil {
		return err
	}
	if string(v) != string(want) {
		return fieldErr(field, "%s, want %s", oidString(v), oidString(want))
	}
	return nil
}

// smallInt reads an INTEGER that must equal want (the template's versions).
func (r *reader) smallInt(want byte, field string) error {
	v, err := r.primitive(tagInteger, field, 1, 8)
	if err != nil {
		return err
	}
	if len(v) != 1 || v[0] != want {
		return fieldErr(field, "%x, want %d", v, want)
	}
	return nil
}

// oidString renders an OID's contents in dotted form for error messages.
func oidString(contents []byte) string {
	var oid asn1.ObjectIdentifier
	der := append([]byte{tagOID, byte(len(contents))}, contents...)
	if len(contents) > 127 {
		return fmt.Sprintf("OID %x", contents)
	}
	if rest, err := asn1.Unmarshal(der, &oid); err != nil || len(rest) != 0 {
		return fmt.Sprintf("OID %x", contents)
	}
	return oid.String()
}
