package vsockrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Default frame limits: a frame is a 4-byte big-endian length and that many bytes of one CBOR item.
const (
	DefaultMaxRequestSize  = 8 << 10  // bytes of a request frame's body
	DefaultMaxResponseSize = 64 << 10 // bytes of a response frame's body
	maxFrameLimit          = 16 << 20 // no configured limit may exceed this
)

// ErrFrameTooLarge is returned by ReadFrame for a length prefix over the limit; the body is not read.
var ErrFrameTooLarge = errors.New("vsockrpc: frame too large")

// ErrEmptyFrame is returned by ReadFrame for a zero length prefix (a frame holds one CBOR item).
var ErrEmptyFrame = errors.New("vsockrpc: empty frame")

// ReadFrame reads one frame from r and returns its body. It checks the length against max before
// reading the body. A clean end of stream before the first byte is io.EOF; an end of stream inside
// a frame is io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	var body []byte
	return readFrameInto(r, &hdr, &body, max)
}

// readFrameInto is ReadFrame reading the body into *buf, grown as needed.
func readFrameInto(r io.Reader, hdr *[4]byte, buf *[]byte, max int) ([]byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := frameLen(*hdr, max)
	if err != nil {
		return nil, err
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return body, nil
}

// frameReader reads frames from a stream into its own buffer, one at a time. It can be resumed: an
// error (such as a read deadline) leaves the bytes read so far in the buffer, and the next call goes
// on from them.
type frameReader struct {
	r   io.Reader
	max int    // bound on a frame's body
	buf []byte // buf[off:end] is read and not yet returned
	off int
	end int
}

// frameReadBuffer is a frameReader's first buffer: an attest response (a ~4.7 KB document and a
// public key) arrives with one read system call and is decoded in place.
const frameReadBuffer = 8 << 10

// next returns the next frame's body, valid until the following call. Like ReadFrame, it checks the
// length against max before reading the body; a clean end of stream before the first byte is io.EOF.
func (f *frameReader) next() ([]byte, error) {
	if f.off == f.end { // all returned: start again at the front
		f.off, f.end = 0, 0
	}
	if err := f.fill(4); err != nil {
		return nil, err
	}
	n, err := frameLen([4]byte(f.buf[f.off:f.off+4]), f.max)
	if err != nil {
		return nil, err
	}
	if err := f.fill(4 + n); err != nil {
		return nil, err
	}
	body := f.buf[f.off+4 : f.off+4+n]
	f.off += 4 + n
	return body, nil
}

// fill reads until at least n unreturned bytes are buffered, growing the buffer as needed.
func (f *frameReader) fill(n int) error {
	for f.end-f.off < n {
		if len(f.buf)-f.off < n { // make room: move what is left to the front, then grow
			if len(f.buf) < n {
				nb := make([]byte, max(n, min(max(frameReadBuffer, 2*len(f.buf)), 4+f.max)))
				f.end = copy(nb, f.buf[f.off:f.end])
				f.buf = nb
			} else {
				f.end = copy(f.buf, f.buf[f.off:f.end])
			}
			f.off = 0
		}
		m, err := f.r.Read(f.buf[f.end:])
		f.end += m
		if err != nil && f.end-f.off < n {
			if errors.Is(err, io.EOF) && f.end > f.off {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func frameLen(hdr [4]byte, max int) (int, error) {
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return 0, ErrEmptyFrame
	case uint64(n) > uint64(max):
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	return int(n), nil
}

// WriteFrame writes body as one frame with a single Write call.
func WriteFrame(w io.Writer, body []byte) error {
	if len(body) == 0 || uint64(len(body)) > maxFrameLimit {
		return fmt.Errorf("vsockrpc: cannot frame %d bytes", len(body))
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	_, err := w.Write(frame)
	return err
}

// frameBufs recycles the buffers frames are encoded into.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// encodeFrame encodes v as one frame (length prefix included) into a pooled buffer; release it
// with putFrame.
func encodeFrame(v any) (*bytes.Buffer, error) {
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	buf.Write([]byte{0, 0, 0, 0})
	if err := encMode.MarshalToBuffer(v, buf); err != nil {
		putFrame(buf)
		return nil, err
	}
	n := buf.Len() - 4
	if n > maxFrameLimit {
		putFrame(buf)
		return nil, fmt.Errorf("vsockrpc: cannot frame %d bytes", n)
	}
	binary.BigEndian.PutUint32(buf.Bytes(), uint32(n))
	return buf, nil
}

func putFrame(buf *bytes.Buffer) {
	if buf.Cap() <= 2*DefaultMaxResponseSize { // do not keep a rare huge buffer alive
		frameBufs.Put(buf)
	}
}

// CBOR modes. Decoding is strict: duplicate map keys, indefinite lengths, tags, NaN and infinities,
// unknown struct fields and trailing bytes are errors; names match case-sensitively; nesting and
// container sizes are small because no message needs more.
var (
	encMode  cbor.UserBufferEncMode
	reqDec   cbor.DecMode // requests: the server's decoder of untrusted input
	respDec  cbor.DecMode // responses: the client's decoder
	errShape = errors.New("not a map")
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		IndefLength:   cbor.IndefLengthForbidden,
		NilContainers: cbor.NilContainerAsEmpty,
		TagsMd:        cbor.TagsForbidden,
	}.UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	strict := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		UTF8:              cbor.UTF8RejectInvalid,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}
	req := strict
	req.MaxNestedLevels = 4 // request map > params map > scalar; 4 is the library's minimum
	req.MaxArrayElements = 16
	req.MaxMapPairs = 16
	if reqDec, err = req.DecMode(); err != nil {
		panic(err)
	}
	resp := strict
	resp.MaxNestedLevels = 8 // response > result > keys array > key map
	resp.MaxArrayElements = 64
	resp.MaxMapPairs = 64
	if respDec, err = resp.DecMode(); err != nil {
		panic(err)
	}
}

// CBOR major types of the first byte of an item.
const (
	majorUint  = 0
	majorBytes = 2
	majorText  = 3
	majorMap   = 5
)

func major(raw []byte) int {
	if len(raw) == 0 {
		return -1
	}
	return int(raw[0] >> 5)
}

// request is a decoded request envelope; params is the raw params map, decoded per method. params
// aliases the decoded body.
type request struct {
	id     uint64
	method string
	params cbor.RawMessage
}

// decodeRequest decodes a request body. On error, idKnown reports whether the request id could be
// read: if so the error answers that request and the connection stays usable; if not the error
// is answered with a null id and the connection is closed.
func decodeRequest(body []byte) (req request, idKnown bool, e *Error) {
	m, err := decodeMap(reqDec, body)
	if err != nil {
		return req, false, Errorf(CodeBadRequest, "malformed request: %v", err)
	}
	rawID, ok := m["id"]
	if !ok {
		return req, false, Errorf(CodeBadRequest, "request has no id")
	}
	if err := decodeUint(cbor.RawMessage(rawID), &req.id); err != nil {
		return req, false, Errorf(CodeBadRequest, "id: %v", err)
	}
	rawV, ok := m["v"]
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no v")
	}
	var v uint64
	if err := decodeUint(cbor.RawMessage(rawV), &v); err != nil || v != Version {
		return req, true, Errorf(CodeUnsupportedVersion, "this server speaks version %d", Version)
	}
	if k := firstUnknown(m, "v", "id", "method", "params"); k != "" {
		return req, true, Errorf(CodeBadRequest, "unknown request field %q", k)
	}
	rawMethod, ok := m["method"]
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no method")
	}
	if err := decodeText(cbor.RawMessage(rawMethod), &req.method, 64); err != nil {
		return req, true, Errorf(CodeBadRequest, "method: %v", err)
	}
	params, ok := m["params"]
	if !ok {
		return req, true, Errorf(CodeBadRequest, "request has no params")
	}
	if major(params) != majorMap {
		return req, true, Errorf(CodeBadRequest, "params: not a map")
	}
	req.params = cbor.RawMessage(params)
	return req, true, nil
}

// rawView is a raw CBOR item like cbor.RawMessage, but aliasing the decoded input instead of
// copying it: valid only as long as that input is.
type rawView []byte

// UnmarshalCBOR keeps data itself (the decoder passes a slice of its input).
func (r *rawView) UnmarshalCBOR(data []byte) error {
	*r = data[:len(data):len(data)]
	return nil
}

// decodeMap decodes one CBOR map with text keys (and nothing after it) into raw values, which
// alias data.
func decodeMap(dm cbor.DecMode, data []byte) (map[string]rawView, error) {
	if major(data) != majorMap {
		return nil, errShape
	}
	var m map[string]rawView
	if err := dm.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// firstUnknown returns the smallest key of m not in known, or "".
func firstUnknown(m map[string]rawView, known ...string) string {
	var bad []string
	for k := range m {
		if !slices.Contains(known, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return bad[0]
}

func decodeUint(raw []byte, dst *uint64) error {
	if major(raw) != majorUint {
		return errors.New("not an unsigned integer")
	}
	return reqDec.Unmarshal(raw, dst)
}

func decodeText(raw cbor.RawMessage, dst *string, max int) error {
	if major(raw) != majorText {
		return errors.New("not a text string")
	}
	if err := reqDec.Unmarshal(raw, dst); err != nil {
		return err
	}
	if len(*dst) == 0 || len(*dst) > max {
		return fmt.Errorf("length %d not in 1..%d", len(*dst), max)
	}
	return nil
}

// decodeBytes decodes a byte string of at most max bytes; an empty one decodes to nil.
func decodeBytes(raw cbor.RawMessage, dst *[]byte, max int) error {
	if major(raw) != majorBytes {
		return errors.New("not a byte string")
	}
	if err := reqDec.Unmarshal(raw, dst); err != nil {
		return err
	}
	if len(*dst) > max {
		return errTooLong{len(*dst), max}
	}
	if len(*dst) == 0 {
		*dst = nil
	}
	return nil
}

type errTooLong struct{ n, max int }

func (e errTooLong) Error() string { return fmt.Sprintf("%d bytes, limit %d", e.n, e.max) }

// response is a response envelope as sent. Exactly one of Result and Error is set; ID is nil when
// the request's id could not be read.
type response struct {
	V      uint64  `cbor:"v"`
	ID     *uint64 `cbor:"id"`
	Result any     `cbor:"result,omitempty"`
	Error  *Error  `cbor:"error,omitempty"`
}

// wireRequest is a request envelope as the client sends it.
type wireRequest struct {
	V      uint64 `cbor:"v"`
	ID     uint64 `cbor:"id"`
	Method string `cbor:"method"`
	Params any    `cbor:"params"`
}

// Params as sent on the wire. The client encodes them; the server's decoders produce the same types,
// so a decoded request re-encodes to an equivalent one (the fuzz target checks this).
type (
	attestParams struct {
		Nonce    []byte `cbor:"nonce,omitempty"`
		Key      string `cbor:"key"`
		UserData []byte `cbor:"user_data,omitempty"`
	}
	userDataParams struct {
		UserData []byte `cbor:"user_data"`
	}
	randomParams struct {
		N uint64 `cbor:"n"`
	}
	extendParams struct {
		Index uint64 `cbor:"index"`
		Data  []byte `cbor:"data"`
	}
	lockParams struct {
		Index uint64 `cbor:"index"`
	}
	noParams struct{}
)

// Results of the methods whose result is not a public type.
type (
	randomResult struct {
		Random []byte `cbor:"random"`
	}
	extendResult struct {
		Value []byte `cbor:"value"`
	}
	emptyResult struct{}
)
