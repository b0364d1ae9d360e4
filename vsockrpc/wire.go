package vsockrpc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
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
func encodeFrame(v encoder) (*bytes.Buffer, error) {
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	buf.Write(v.appendCBOR(append(buf.AvailableBuffer(), 0, 0, 0, 0)))
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

// response is a response envelope as sent. Exactly one of Result and Error is set; ID is nil when
// the request's id could not be read.
type response struct {
	V      uint64  `cbor:"v"`
	ID     *uint64 `cbor:"id"`
	Result encoder `cbor:"result,omitempty"`
	Error  *Error  `cbor:"error,omitempty"`
}

// wireRequest is a request envelope as the client sends it.
type wireRequest struct {
	V      uint64  `cbor:"v"`
	ID     uint64  `cbor:"id"`
	Method string  `cbor:"method"`
	Params encoder `cbor:"params"`
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
