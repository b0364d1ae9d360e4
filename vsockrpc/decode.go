package vsockrpc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/attestd/attestd/internal/strictcbor"
)

// Decoding. Requests are the parent's bytes, hostile by assumption; responses are the agent's, but a client
// does not trust them to be well-behaved either. Both are read with internal/strictcbor, exactly to the
// shapes below: maps with distinct text keys and a bounded number of pairs, nesting bounded, shortest-form
// heads, definite lengths, no tags, valid UTF-8, nothing after the item, and no field the schema does not
// name. Byte strings are copied out of the frame (whose buffer is reused); nothing else is allocated for a
// field that is skipped or rejected. Encoding is in encode.go; the fuzz targets check that each side reads
// what the other writes.

// Bounds on what the decoders accept, beyond the frame size.
const (
	maxRequestPairs  = 16 // pairs in a request envelope or its params
	maxRequestDepth  = 4  // request > params > value > item
	maxResponsePairs = 16 // pairs in a response envelope or any map of a result
	maxResponseDepth = 8  // response > result > keys > key > value, with room to grow
	maxMethodSize    = 64 // bytes of a method name
	maxResultText    = 1024
	maxResultPCRs    = 64
	maxGateName      = 64 // bytes of a gate name in describe's platform.relaxed
)

// fields is a decoded map with text keys: its pairs in order, aliasing the input.
type fields []strictcbor.Entry

// readFields reads data, which must be exactly one map with at most max distinct text keys nested at most
// depth deep (the map included), appending its pairs to dst.
func readFields(data []byte, dst []strictcbor.Entry, max, depth int) (fields, error) {
	r := strictcbor.NewReader(data)
	es, err := r.TextMap(dst, max, depth)
	if err == nil {
		err = r.End()
	}
	return es, err
}

// get returns the value of key name.
func (f fields) get(name string) ([]byte, bool) {
	for _, e := range f {
		if string(e.Key) == name {
			return e.Val, true
		}
	}
	return nil, false
}

// firstUnknown returns the smallest key not in known, or "".
func (f fields) firstUnknown(known ...string) string {
	var first []byte
	for _, e := range f {
		if !slices.Contains(known, string(e.Key)) && (first == nil || bytes.Compare(e.Key, first) < 0) {
			first = e.Key
		}
	}
	return string(first)
}

// The scalar decoders read raw, which must be exactly one item. Each keeps its Reader on the stack
// (a Reader passed to a function value would be moved to the heap, one allocation per field).

func decodeUint(raw []byte) (uint64, error) {
	r := strictcbor.NewReader(raw)
	n, err := r.Uint()
	if err == nil {
		err = r.End()
	}
	return n, err
}

func decodeBool(raw []byte) (bool, error) {
	r := strictcbor.NewReader(raw)
	v, err := r.Bool()
	if err == nil {
		err = r.End()
	}
	return v, err
}

// decodeText decodes a text string of min..max bytes.
func decodeText(raw []byte, min, max int) (string, error) {
	r := strictcbor.NewReader(raw)
	s, err := r.Text()
	if err == nil {
		err = r.End()
	}
	if err != nil {
		return "", err
	}
	if len(s) < min || len(s) > max {
		return "", fmt.Errorf("length %d not in %d..%d", len(s), min, max)
	}
	return string(s), nil
}

// decodeBytes decodes a byte string of at most max bytes into a copy; an empty one decodes to nil.
func decodeBytes(raw []byte, max int) ([]byte, error) {
	r := strictcbor.NewReader(raw)
	b, err := r.Bytes()
	if err == nil {
		err = r.End()
	}
	switch {
	case err != nil:
		return nil, err
	case len(b) > max:
		return nil, errTooLong{len(b), max}
	case len(b) == 0:
		return nil, nil
	}
	return bytes.Clone(b), nil
}

type errTooLong struct{ n, max int }

func (e errTooLong) Error() string { return fmt.Sprintf("%d bytes, limit %d", e.n, e.max) }

// isMap reports whether raw starts a map.
func isMap(raw []byte) bool { return len(raw) > 0 && raw[0]>>5 == strictcbor.Map }

// field is one field a map may hold: its name, whether it must be present, and its decoder.
type field struct {
	name     string
	required bool
	decode   func(raw []byte) error
}

// decodeFields decodes the map raw: each field present is decoded, a required one missing or a key not
// in fs is an error. A field decoder's error is returned as is when it is an *Error, otherwise prefixed
// with the field's name.
func decodeFields(raw []byte, max, depth int, fs ...field) error {
	var buf [maxRequestPairs]strictcbor.Entry
	m, err := readFields(raw, buf[:0], max, depth)
	if err != nil {
		return err
	}
	return m.decode("field", fs)
}

// decode decodes the fields fs of m; noun names them in errors ("field", "param").
func (m fields) decode(noun string, fs []field) error {
	known := make([]string, 0, maxRequestPairs)
	for _, f := range fs {
		known = append(known, f.name)
	}
	if k := m.firstUnknown(known...); k != "" {
		return fmt.Errorf("unknown %s %q", noun, k)
	}
	for _, f := range fs {
		raw, ok := m.get(f.name)
		if !ok {
			if f.required {
				return fmt.Errorf("missing %s %q", noun, f.name)
			}
			continue
		}
		if err := f.decode(raw); err != nil {
			var e *Error
			if errors.As(err, &e) {
				return e
			}
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// request is a decoded request envelope; params is the raw params map, decoded per method. params
// aliases the decoded body.
type request struct {
	id     uint64
	method string
	params []byte
}

// decodeRequest decodes a request body. On error, idKnown reports whether the request id could be
// read: if so the error answers that request and the connection stays usable; if not the error
// is answered with a null id and the connection is closed.
func decodeRequest(body []byte) (req request, idKnown bool, e *Error) {
	var buf [maxRequestPairs]strictcbor.Entry
	m, err := readFields(body, buf[:0], maxRequestPairs, maxRequestDepth)
	if err == nil {
		err = checkNoFloats(body) // the rest of the encoding rules: one rule for the whole body (encoding.go)
	}
	if err != nil {
		return req, false, Errorf(CodeBadRequest, "malformed request: %v", err)
	}
	rawID, ok := m.get("id")
	if !ok {
		return req, false, Errorf(CodeBadRequest, "request has no id")
	}
	if req.id, err = decodeUint(rawID); err != nil {
		return req, false, Errorf(CodeBadRequest, "id: %v", err)
	}
	rawV, ok := m.get("v")
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no v")
	}
	if v, err := decodeUint(rawV); err != nil || v != Version {
		return req, true, Errorf(CodeUnsupportedVersion, "this server speaks version %d", Version)
	}
	if k := m.firstUnknown("v", "id", "method", "params"); k != "" {
		return req, true, Errorf(CodeBadRequest, "unknown request field %q", k)
	}
	rawMethod, ok := m.get("method")
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no method")
	}
	if req.method, err = decodeText(rawMethod, 1, maxMethodSize); err != nil {
		return req, true, Errorf(CodeBadRequest, "method: %v", err)
	}
	params, ok := m.get("params")
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no params")
	}
	if !isMap(params) {
		return req, true, Errorf(CodeBadRequest, "params: not a map")
	}
	req.params = params
	return req, true, nil
}

// decodeParams decodes a params map: a key in forbidden is CodeForbiddenField (checked before
// anything else, so the answer does not depend on the other fields), any other key not in fs is
// CodeBadRequest, as is a missing required field or a value its decoder rejects. A decoder may
// return an *Error to choose the code.
func decodeParams(raw []byte, forbidden []string, fs ...field) *Error {
	var buf [maxRequestPairs]strictcbor.Entry
	m, err := readFields(raw, buf[:0], maxRequestPairs, maxRequestDepth-1)
	if err != nil {
		return Errorf(CodeBadRequest, "params: %v", err)
	}
	for _, k := range forbidden {
		if _, ok := m.get(k); ok {
			return Errorf(CodeForbiddenField, "%s cannot be set by this caller", k)
		}
	}
	if err := m.decode("param", fs); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return Errorf(CodeBadRequest, "%v", err)
	}
	return nil
}

// decodeResponse decodes a response body: the id (hasID false when null) and either the raw result (a
// slice of body) or the protocol error. err reports a malformed response.
func decodeResponse(body []byte) (id uint64, hasID bool, result []byte, perr *Error, err error) {
	var buf [4]strictcbor.Entry
	m, err := readFields(body, buf[:0], len(buf), maxResponseDepth)
	if err != nil {
		return 0, false, nil, nil, err
	}
	if k := m.firstUnknown("v", "id", "result", "error"); k != "" {
		return 0, false, nil, nil, fmt.Errorf("unknown field %q", k)
	}
	rawV, _ := m.get("v")
	if v, err := decodeUint(rawV); err != nil || v != Version {
		return 0, false, nil, nil, fmt.Errorf("not a version %d response", Version)
	}
	switch rawID, ok := m.get("id"); {
	case !ok:
		return 0, false, nil, nil, errors.New("no id")
	case len(rawID) != 1 || rawID[0] != strictcbor.Null:
		if id, err = decodeUint(rawID); err != nil {
			return 0, false, nil, nil, fmt.Errorf("id: %w", err)
		}
		hasID = true
	}
	result, hasResult := m.get("result")
	rawErr, hasErr := m.get("error")
	switch {
	case hasResult == hasErr:
		return 0, false, nil, nil, errors.New("want exactly one of result and error")
	case hasErr:
		if perr, err = decodeError(rawErr); err != nil {
			return 0, false, nil, nil, fmt.Errorf("error: %w", err)
		}
		return id, hasID, nil, perr, nil
	case !hasID:
		return 0, false, nil, nil, errors.New("result with a null id")
	case !isMap(result):
		return 0, false, nil, nil, errors.New("result: not a map")
	}
	return id, true, result, nil, nil
}

// decodeError decodes the error of a response.
func decodeError(raw []byte) (*Error, error) {
	var e Error
	err := decodeFields(raw, maxResponsePairs, maxResponseDepth,
		textField("code", true, &e.Code, 1, 64),
		textField("message", false, &e.Message, 0, maxMessageLen),
		textField("nsm_code", false, &e.NSMCode, 1, 64))
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Field decoders of results.

func textField(name string, required bool, dst *string, min, max int) field {
	return field{name, required, func(raw []byte) (err error) {
		*dst, err = decodeText(raw, min, max)
		return err
	}}
}

func bytesField(name string, dst *[]byte, max int) field {
	return field{name, true, func(raw []byte) (err error) {
		*dst, err = decodeBytes(raw, max)
		return err
	}}
}

func uintField(name string, dst *uint64) field {
	return field{name, true, func(raw []byte) (err error) {
		*dst, err = decodeUint(raw)
		return err
	}}
}

// resultDecoder is implemented by everything a Client decodes a result into.
type resultDecoder interface {
	decodeResult(raw []byte) error
}

func (r *AttestResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		bytesField("document", &r.Document, DefaultMaxResponseSize),
		bytesField("public_key", &r.PublicKey, DefaultMaxResponseSize),
		textField("key", true, &r.Key, 1, MaxKeyNameSize))
}

func (h *Health) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		textField("status", true, &h.Status, 1, maxResultText),
		field{"attest", true, func(raw []byte) error {
			a := &h.Attest
			return decodeFields(raw, maxResponsePairs, maxResponseDepth,
				uintField("succeeded", &a.Succeeded),
				uintField("failed", &a.Failed),
				uintField("consecutive_failures", &a.ConsecutiveFailures),
				unixField("last_success", &a.LastSuccess),
				unixField("last_failure", &a.LastFailure),
				textField("last_error", true, &a.LastError, 0, maxResultText))
		}})
}

// unixField decodes a Unix time that a sender writes as a uint (times before 1970 are not sent).
func unixField(name string, dst *int64) field {
	return field{name, true, func(raw []byte) error {
		v, err := decodeUint(raw)
		if err == nil && v > math.MaxInt64 {
			err = fmt.Errorf("%d out of range", v)
		}
		*dst = int64(v)
		return err
	}}
}

func (r *randomResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth, bytesField("random", &r.Random, MaxRandomSize))
}

func (r *extendResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth, bytesField("value", &r.Value, 64))
}

func (*emptyResult) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth)
}

func (d *Description) decodeResult(raw []byte) error {
	return decodeFields(raw, maxResponsePairs, maxResponseDepth,
		textField("agent_version", true, &d.AgentVersion, 0, maxResultText),
		textField("module_id", true, &d.ModuleID, 0, maxResultText),
		field{"keys", true, func(raw []byte) (err error) {
			d.Keys, err = decodeKeys(raw)
			return err
		}},
		field{"entropy", true, func(raw []byte) error {
			e := &d.Entropy
			var last uint64
			err := decodeFields(raw, maxResponsePairs, maxResponseDepth,
				textField("source", true, &e.Source, 0, maxResultText),
				uintField("seeded_bytes", &e.SeededBytes),
				textField("kernel_pool", true, &e.KernelPool, 0, maxResultText),
				uintField("last_reseed", &last))
			if err == nil && last > math.MaxInt64 {
				err = fmt.Errorf("last_reseed %d out of range", last)
			}
			e.LastReseed = int64(last)
			return err
		}},
		field{"pcrs", true, func(raw []byte) (err error) {
			d.PCRs, err = decodePCRs(raw)
			return err
		}},
		field{"nonce", true, func(raw []byte) error {
			n := &d.Nonce
			return decodeFields(raw, maxResponsePairs, maxResponseDepth,
				uintField("min", &n.Min), uintField("max", &n.Max),
				field{"required", true, func(raw []byte) (err error) {
					n.Required, err = decodeBool(raw)
					return err
				}})
		}},
		field{"platform", true, func(raw []byte) error {
			p := &d.Platform
			return decodeFields(raw, maxResponsePairs, maxResponseDepth,
				textField("kernel_release", true, &p.KernelRelease, 0, maxResultText),
				textField("clock_source", true, &p.ClockSource, 0, maxResultText),
				field{"relaxed", true, func(raw []byte) (err error) {
					p.Relaxed, err = decodeGates(raw)
					return err
				}})
		}})
}

// decodeGates decodes describe's array of relaxed gates: distinct names of 1..maxGateName bytes.
func decodeGates(raw []byte) ([]string, error) {
	r := strictcbor.NewReader(raw)
	n, err := r.Expect(strictcbor.Array)
	if err != nil {
		return nil, err
	}
	if n > maxResponsePairs {
		return nil, fmt.Errorf("%d gates, limit %d", n, maxResponsePairs)
	}
	gates := make([]string, 0, n)
	for range n {
		g, err := r.Text()
		if err != nil {
			return nil, err
		}
		if len(g) < 1 || len(g) > maxGateName {
			return nil, fmt.Errorf("gate name of %d bytes not in 1..%d", len(g), maxGateName)
		}
		if slices.Contains(gates, string(g)) {
			return nil, fmt.Errorf("gate %q twice", g)
		}
		gates = append(gates, string(g))
	}
	return gates, r.End()
}

// decodeKeys decodes describe's array of keys.
func decodeKeys(raw []byte) ([]KeyInfo, error) {
	r := strictcbor.NewReader(raw)
	n, err := r.Expect(strictcbor.Array)
	if err != nil {
		return nil, err
	}
	if n > maxResponsePairs {
		return nil, fmt.Errorf("%d keys, limit %d", n, maxResponsePairs)
	}
	keys := make([]KeyInfo, n)
	for i := range keys {
		item, err := r.Skip(maxResponseDepth)
		if err != nil {
			return nil, err
		}
		k := &keys[i]
		if err := decodeFields(item, maxResponsePairs, maxResponseDepth,
			textField("name", true, &k.Name, 1, MaxKeyNameSize),
			textField("algorithm", true, &k.Algorithm, 0, maxResultText),
			bytesField("public_key", &k.PublicKey, DefaultMaxResponseSize),
			textField("binding", true, &k.Binding, 0, maxResultText)); err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
	}
	return keys, r.End()
}

// decodePCRs decodes describe's map from PCR index to value.
func decodePCRs(raw []byte) (map[uint16][]byte, error) {
	r := strictcbor.NewReader(raw)
	n, err := r.Expect(strictcbor.Map)
	if err != nil {
		return nil, err
	}
	if n > maxResultPCRs {
		return nil, fmt.Errorf("%d PCRs, limit %d", n, maxResultPCRs)
	}
	pcrs := make(map[uint16][]byte, n)
	for range n {
		i, err := r.Uint()
		if err != nil {
			return nil, err
		}
		if i >= maxResultPCRs {
			return nil, fmt.Errorf("PCR index %d out of range", i)
		}
		if _, dup := pcrs[uint16(i)]; dup {
			return nil, fmt.Errorf("PCR %d twice", i)
		}
		v, err := r.Bytes()
		if err != nil {
			return nil, fmt.Errorf("PCR %d: %w", i, err)
		}
		pcrs[uint16(i)] = bytes.Clone(v)
	}
	return pcrs, r.End()
}
