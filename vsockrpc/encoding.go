package vsockrpc

import (
	"encoding/binary"
	"fmt"

	"github.com/attestd/attestd/internal/strictcbor"
)

// The one rule for a request body that breaks the protocol's CBOR encoding (docs/protocol.md §3),
// anywhere in it, params included: it is an encoding error, answered with a null id, and the
// connection is closed. strictcbor's reader finds the non-shortest heads, indefinite lengths, tags,
// excess nesting, truncated items and trailing bytes as it reads the envelope; checkNoFloats finds
// the rest of what §3 bans from the encoding, floating-point and simple values other than false,
// true and null, which the reader passes as well-formed. A body encoded right whose content breaks
// the schema (a type, a key, UTF-8, a range) is answered with its id, on an open connection.

// checkNoFloats returns an error naming the first floating-point value, or simple value other than
// false, true and null, in body, which must be well-formed (strictcbor has read it whole). It walks
// the items in order: every item is a head, followed by its payload for a byte or text string.
func checkNoFloats(body []byte) error {
	for i := 0; i < len(body); {
		b := body[i]
		major, info := b>>5, b&0x1f
		if major == strictcbor.Simple {
			if b < 0xf4 || b > 0xf6 {
				return fmt.Errorf("%s at offset %d: the protocol has no floating-point or simple values but false, true and null",
					simpleName(info), i)
			}
			i++
			continue
		}
		arg := uint64(info)
		if info >= 24 { // 24..27: a 1, 2, 4 or 8-byte argument (strictcbor checked the form)
			size := 1 << (info - 24)
			if i+1+size > len(body) {
				return fmt.Errorf("truncated head at offset %d", i)
			}
			var buf [8]byte
			copy(buf[8-size:], body[i+1:i+1+size])
			arg = binary.BigEndian.Uint64(buf[:])
			i += size
		}
		i++
		if major == strictcbor.Bytes || major == strictcbor.Text {
			if arg > uint64(len(body)-i) {
				return fmt.Errorf("truncated string at offset %d", i)
			}
			i += int(arg)
		}
	}
	return nil
}

func simpleName(info byte) string {
	if info >= 25 && info <= 27 {
		return "floating-point value"
	}
	return "simple value"
}
