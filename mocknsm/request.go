package mocknsm

import (
	"github.com/attestd/attestd/internal/strictcbor"
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
)

// Request type names, as on the wire; also the keys of Faults.
const (
	DescribeNSM = "DescribeNSM"
	DescribePCR = "DescribePCR"
	ExtendPCR   = "ExtendPCR"
	LockPCR     = "LockPCR"
	LockPCRs    = "LockPCRs"
	Attestation = "Attestation"
	GetRandom   = "GetRandom"
)

// decoded is a decoded NSM request.
type decoded struct {
	op                         string
	index                      uint16 // DescribePCR, ExtendPCR, LockPCR: index; LockPCRs: range
	data                       []byte // ExtendPCR
	userData, nonce, publicKey []byte // Attestation; nil = absent
}

// reqDecMode is strict: duplicate map keys and tags are errors, as are trailing bytes (cbor.Unmarshal).
var reqDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey: cbor.DupMapKeyEnforcedAPF,
		TagsMd:    cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// major is the CBOR major type of the item raw starts with.
func major(raw []byte) byte { return raw[0] >> 5 }

// decodeRequest parses the serde_cbor form of an NSM request (nitro-specs §4.3), strictly; the package doc lists
// which malformed requests get InvalidOperation and which InvalidArgument. Indexes are range-checked by the
// handlers (InvalidIndex), not here.
func decodeRequest(b []byte) (decoded, nsm.ErrorCode) {
	if len(b) == 0 {
		return decoded{}, nsm.InvalidOperation
	}
	switch major(b) {
	case strictcbor.Text:
		var name string
		if reqDecMode.Unmarshal(b, &name) != nil {
			return decoded{}, nsm.InvalidOperation
		}
		if name == DescribeNSM || name == GetRandom {
			return decoded{op: name}, ""
		}
		return decoded{}, nsm.InvalidOperation
	case strictcbor.Map:
		var outer map[string]cbor.RawMessage
		if reqDecMode.Unmarshal(b, &outer) != nil || len(outer) != 1 {
			return decoded{}, nsm.InvalidOperation
		}
		var name string
		var body cbor.RawMessage
		for k, v := range outer {
			name, body = k, v
		}
		return decodeBody(name, body)
	}
	return decoded{}, nsm.InvalidOperation
}

// fields of each struct variant: true = required.
var variantFields = map[string]map[string]bool{
	DescribePCR: {"index": true},
	ExtendPCR:   {"index": true, "data": true},
	LockPCR:     {"index": true},
	LockPCRs:    {"range": true},
	Attestation: {"user_data": false, "nonce": false, "public_key": false},
}

func decodeBody(name string, body cbor.RawMessage) (decoded, nsm.ErrorCode) {
	want, ok := variantFields[name]
	if !ok {
		return decoded{}, nsm.InvalidOperation
	}
	var fields map[string]cbor.RawMessage
	if major(body) != strictcbor.Map || reqDecMode.Unmarshal(body, &fields) != nil {
		return decoded{}, nsm.InvalidArgument
	}
	for k := range fields {
		if _, ok := want[k]; !ok {
			return decoded{}, nsm.InvalidArgument
		}
	}
	for k, required := range want {
		if _, ok := fields[k]; required && !ok {
			return decoded{}, nsm.InvalidArgument
		}
	}
	r := decoded{op: name}
	var ok1, ok2, ok3 bool
	switch name {
	case DescribePCR, LockPCR, ExtendPCR:
		r.index, ok1 = decodeU16(fields["index"])
		ok2, ok3 = true, true
		if name == ExtendPCR {
			r.data, ok2 = decodeBytes(fields["data"], false)
		}
	case LockPCRs:
		r.index, ok1 = decodeU16(fields["range"])
		ok2, ok3 = true, true
	case Attestation:
		r.userData, ok1 = decodeBytes(fields["user_data"], true)
		r.nonce, ok2 = decodeBytes(fields["nonce"], true)
		r.publicKey, ok3 = decodeBytes(fields["public_key"], true)
	}
	if !ok1 || !ok2 || !ok3 {
		return decoded{}, nsm.InvalidArgument
	}
	return r, ""
}

func decodeU16(raw cbor.RawMessage) (uint16, bool) {
	var v uint64
	if major(raw) != strictcbor.Uint || reqDecMode.Unmarshal(raw, &v) != nil || v > 0xffff {
		return 0, false
	}
	return uint16(v), true
}

// decodeBytes decodes a byte string; with optional, a missing field (nil raw) or null is nil (absent). A
// present byte string is never nil.
func decodeBytes(raw cbor.RawMessage, optional bool) ([]byte, bool) {
	if optional && (raw == nil || len(raw) == 1 && raw[0] == strictcbor.Null) {
		return nil, true
	}
	var v []byte
	if major(raw) != strictcbor.Bytes || reqDecMode.Unmarshal(raw, &v) != nil {
		return nil, false
	}
	if v == nil {
		v = []byte{}
	}
	return v, true
}
