package attestation

import "github.com/attestd/attestd/internal/strictcbor"

// Limits of the document schema. AWS's CDDL (nsm-api attestation_process.md)
// gives most of them; the rest bound the work a hostile input can cause.
const (
	// MaxDocumentSize bounds the whole COSE_Sign1 input (AWS: payload at most
	// 16 KiB; the NSM driver answers at most 12 KiB).
	MaxDocumentSize = 16 << 10
	// MaxAuxSize bounds public_key, user_data and nonce. AWS's CDDL says
	// 0..1024 bytes (its prose says 512 for user_data and nonce, and the NSM
	// enforces neither); 1024 accepts everything a genuine document can carry
	// under the CDDL.
	MaxAuxSize = 1024

	maxCABundle   = 8    // real documents carry 4
	maxCertSize   = 1024 // AWS: cert = bytes .size (1..1024)
	maxPCRs       = 32   // AWS: index = 0..31
	pcrSize       = 48   // SHA-384 registers
	maxModuleID   = 256  // real ids are 39 characters
	signatureSize = 96   // ES384: r || s, 48 bytes each
	// maxTimestamp is 9999-12-31T23:59:59.999Z in milliseconds: keeps the
	// conversion to time.Time exact.
	maxTimestamp = 253402300799999
)

// Payload field bits, for duplicate and presence tracking.
const (
	fModuleID = 1 << iota
	fDigest
	fTimestamp
	fPCRs
	fCertificate
	fCABundle
	fPublicKey
	fUserData
	fNonce

	fMandatory = fModuleID | fDigest | fTimestamp | fPCRs | fCertificate | fCABundle
)

// parsed is a syntactically valid, not yet verified document. Its byte slices
// alias the input.
type parsed struct {
	protected []byte // content of the protected header bstr
	payload   []byte // content of the payload bstr
	signature []byte // r || s

	moduleID  []byte
	timestamp uint64
	pcrs      [maxPCRs][]byte
	pcrMask   uint32 // bit i set: PCR i present
	cert      []byte
	cabundle  [maxCABundle][]byte
	nCA       int
	// nil when the field is null (absent); non-nil, possibly empty, otherwise.
	publicKey, userData, nonce []byte
}

// parse decodes a COSE_Sign1 attestation document strictly into p.
func parse(doc []byte, p *parsed) error {
	if len(doc) == 0 {
		return fail(ErrInput, "empty document")
	}
	if len(doc) > MaxDocumentSize {
		return fail(ErrInput, "document is %d bytes, at most %d allowed", len(doc), MaxDocumentSize)
	}
	r := newReader(doc)
	maj, arg, indef, err := r.head("document")
	if err != nil {
		return err
	}
	if maj == strictcbor.Tag {
		// AWS: the COSE_Sign1 may be tagged 18 (NSM output is untagged).
		if arg != 18 {
			return fail(ErrEnvelope, "tag %d, want none or 18 (COSE_Sign1)", arg)
		}
		if maj, arg, indef, err = r.head("tag 18 content"); err != nil {
			return err
		}
		if maj == strictcbor.Tag {
			return fail(ErrEnvelope, "nested tag %d inside tag 18", arg)
		}
	}
	if maj != strictcbor.Array {
		return fail(ErrEnvelope, "document is a %s, want a COSE_Sign1 array", strictcbor.MajorName(maj))
	}
	if indef {
		return fail(ErrCBOR, "COSE_Sign1 array has an indefinite length")
	}
	if arg != 4 {
		return fail(ErrEnvelope, "COSE_Sign1 array has %d elements, want 4", arg)
	}
	if p.protected, err = r.bytes("protected header", ErrEnvelope); err != nil {
		return err
	}
	if err := parseProtected(p.protected); err != nil {
		return err
	}
	maj, arg, indef, err = r.head("unprotected header")
	if err != nil {
		return err
	}
	if maj != strictcbor.Map {
		return fail(ErrEnvelope, "unprotected header is a %s, want a map", strictcbor.MajorName(maj))
	}
	if indef || arg != 0 {
		// Unprotected parameters are unauthenticated; AWS sends none.
		return fail(ErrEnvelope, "unprotected header is not an empty map")
	}
	if p.payload, err = r.bytes("payload", ErrEnvelope); err != nil {
		return err
	}
	if p.signature, err = r.bytes("signature", ErrEnvelope); err != nil {
		return err
	}
	if err := r.end("the COSE_Sign1 array"); err != nil {
		return err
	}
	if len(p.signature) != signatureSize {
		return fail(ErrSignature, "signature is %d bytes, want %d (raw ES384 r||s)", len(p.signature), signatureSize)
	}
	return parsePayload(p.payload, p)
}

// parseProtected accepts exactly the map {1: -35}: alg ES384 and nothing else.
func parseProtected(b []byte) error {
	if len(b) == 0 {
		return fail(ErrAlgorithm, "protected header is empty, want {1: -35} (ES384)")
	}
	r := newReader(b)
	maj, n, indef, err := r.head("protected header")
	if err != nil {
		return err
	}
	if maj != strictcbor.Map || indef {
		return fail(ErrAlgorithm, "protected header is not a definite-length map")
	}
	if n != 1 {
		return fail(ErrAlgorithm, "protected header has %d parameters, want only alg", n)
	}
	maj, key, _, err := r.head("protected header parameter")
	if err != nil {
		return err
	}
	if maj != strictcbor.Uint || key != 1 {
		return fail(ErrAlgorithm, "protected header parameter is not alg (1)")
	}
	maj, v, _, err := r.head("alg")
	if err != nil {
		return err
	}
	if maj != strictcbor.Nint || v != 34 { // -1 - 34 = -35 = ES384
		return fail(ErrAlgorithm, "alg is not ES384 (-35)")
	}
	return r.end("the protected header")
}

// parsePayload decodes the attestation document map. Any map, array or
// string in it may have an indefinite length (the NSM's top-level map does
// since mid-2025); the bounds are those of the definite forms.
func parsePayload(b []byte, p *parsed) error {
	if len(b) == 0 {
		return fail(ErrPayload, "payload is empty")
	}
	r := newPayloadReader(b)
	n, indef, err := r.count(strictcbor.Map, "payload", ErrPayload)
	if err != nil {
		return err
	}
	if !indef && n > 9 {
		return fail(ErrPayload, "payload map has %d entries, only 9 fields exist", n)
	}
	var seen uint16
	for i := uint64(0); ; i++ {
		// Duplicate keys are refused, so an indefinite map ends within 10 keys.
		if more, err := r.next(indef, i, n, "payload map"); err != nil {
			return err
		} else if !more {
			break
		}
		key, err := r.text("payload key", ErrPayload)
		if err != nil {
			return err
		}
		var bit uint16
		switch string(key) {
		case "module_id":
			bit = fModuleID
		case "digest":
			bit = fDigest
		case "timestamp":
			bit = fTimestamp
		case "pcrs":
			bit = fPCRs
		case "certificate":
			bit = fCertificate
		case "cabundle":
			bit = fCABundle
		case "public_key":
			bit = fPublicKey
		case "user_data":
			bit = fUserData
		case "nonce":
			bit = fNonce
		default:
			return fail(ErrPayload, "unknown field %q", truncate(key))
		}
		if seen&bit != 0 {
			return fail(ErrCBOR, "duplicate payload key %q", key)
		}
		seen |= bit
		if err := parseField(&r, bit, p); err != nil {
			return err
		}
	}
	if err := r.end("the payload map"); err != nil {
		return err
	}
	if missing := fMandatory &^ seen; missing != 0 {
		return fail(ErrPayload, "mandatory field %s is missing", fieldName(missing))
	}
	for i := range 3 {
		if p.pcrMask&(1<<i) == 0 {
			return fail(ErrPCRs, "PCR%d is missing (PCR0, PCR1 and PCR2 are always reported)", i)
		}
	}
	return nil
}

func parseField(r *reader, bit uint16, p *parsed) error {
	var err error
	switch bit {
	case fModuleID:
		if p.moduleID, err = r.text("module_id", ErrPayload); err != nil {
			return err
		}
		if len(p.moduleID) == 0 || len(p.moduleID) > maxModuleID {
			return fail(ErrPayload, "module_id is %d bytes, want 1..%d", len(p.moduleID), maxModuleID)
		}
	case fDigest:
		d, err := r.text("digest", ErrPayload)
		if err != nil {
			return err
		}
		if string(d) != "SHA384" {
			return fail(ErrDigest, "digest is %q, want \"SHA384\"", truncate(d))
		}
	case fTimestamp:
		if p.timestamp, err = r.unsigned("timestamp", ErrPayload); err != nil {
			return err
		}
		if p.timestamp == 0 || p.timestamp > maxTimestamp {
			return fail(ErrPayload, "timestamp %d is out of range", p.timestamp)
		}
	case fPCRs:
		return parsePCRs(r, p)
	case fCertificate:
		if p.cert, err = r.bytes("certificate", ErrPayload); err != nil {
			return err
		}
		if len(p.cert) == 0 || len(p.cert) > maxCertSize {
			return fail(ErrPayload, "certificate is %d bytes, want 1..%d", len(p.cert), maxCertSize)
		}
	case fCABundle:
		n, indef, err := r.count(strictcbor.Array, "cabundle", ErrPayload)
		if err != nil {
			return err
		}
		if !indef && (n == 0 || n > maxCABundle) {
			return fail(ErrPayload, "cabundle has %d entries, want 1..%d", n, maxCABundle)
		}
		for i := 0; ; i++ {
			if more, err := r.next(indef, uint64(i), n, "cabundle"); err != nil {
				return err
			} else if !more {
				break
			}
			if i == maxCABundle {
				return fail(ErrPayload, "cabundle has more than %d entries", maxCABundle)
			}
			c, err := r.bytes("cabundle entry", ErrPayload)
			if err != nil {
				return err
			}
			if len(c) == 0 || len(c) > maxCertSize {
				return fail(ErrPayload, "cabundle[%d] is %d bytes, want 1..%d", i, len(c), maxCertSize)
			}
			p.cabundle[i] = c
			p.nCA = i + 1
		}
		if p.nCA == 0 {
			return fail(ErrPayload, "cabundle has 0 entries, want 1..%d", maxCABundle)
		}
	case fPublicKey:
		if p.publicKey, err = optional(r, "public_key", 1); err != nil {
			return err
		}
	case fUserData:
		if p.userData, err = optional(r, "user_data", 0); err != nil {
			return err
		}
	case fNonce:
		if p.nonce, err = optional(r, "nonce", 0); err != nil {
			return err
		}
	}
	return nil
}

func parsePCRs(r *reader, p *parsed) error {
	n, indef, err := r.count(strictcbor.Map, "pcrs", ErrPayload)
	if err != nil {
		return err
	}
	if !indef && (n == 0 || n > maxPCRs) {
		return fail(ErrPCRs, "pcrs has %d entries, want 1..%d", n, maxPCRs)
	}
	for i := uint64(0); ; i++ {
		if more, err := r.next(indef, i, n, "pcrs"); err != nil {
			return err
		} else if !more {
			if i == 0 {
				return fail(ErrPCRs, "pcrs has 0 entries, want 1..%d", maxPCRs)
			}
			return nil
		}
		if i == maxPCRs {
			return fail(ErrPCRs, "pcrs has more than %d entries", maxPCRs)
		}
		idx, err := r.unsigned("PCR index", ErrPCRs)
		if err != nil {
			return err
		}
		if idx >= maxPCRs {
			return fail(ErrPCRs, "PCR index %d is out of range 0..%d", idx, maxPCRs-1)
		}
		if p.pcrMask&(1<<idx) != 0 {
			return fail(ErrCBOR, "duplicate PCR index %d", idx)
		}
		p.pcrMask |= 1 << idx
		v, err := r.bytes("PCR value", ErrPCRs)
		if err != nil {
			return err
		}
		if len(v) != pcrSize {
			return fail(ErrPCRs, "PCR%d is %d bytes, want %d", idx, len(v), pcrSize)
		}
		p.pcrs[idx] = v
	}
}

// optional reads null (absent, nil) or a byte string of min..MaxAuxSize bytes
// (present, never nil).
func optional(r *reader, what string, min int) ([]byte, error) {
	if r.Null() {
		return nil, nil
	}
	v, err := r.bytes(what, ErrPayload)
	if err != nil {
		return nil, err
	}
	if len(v) < min || len(v) > MaxAuxSize {
		return nil, fail(ErrPayload, "%s is %d bytes, want %d..%d", what, len(v), min, MaxAuxSize)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func fieldName(bits uint16) string {
	names := [...]string{"module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"}
	for i, n := range names {
		if bits&(1<<i) != 0 {
			return n
		}
	}
	return "?"
}

// truncate keeps error messages short whatever the input holds.
func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
