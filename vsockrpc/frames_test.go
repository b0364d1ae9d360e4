package vsockrpc

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cborOf encodes v canonically (test inputs).
func cborOf(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func frameOf(body []byte) []byte {
	f := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(f, uint32(len(body)))
	copy(f[4:], body)
	return f
}

func hexb(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func req(id uint64, method string, params map[string]any) map[string]any {
	if params == nil {
		params = map[string]any{}
	}
	return map[string]any{"v": 1, "id": id, "method": method, "params": params}
}

func rawDial(t testing.TB, addr string) net.Conn {
	t.Helper()
	a, err := ParseAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := dialAddr(testCtx(t), a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second)) // a generous bound so a broken server fails the test, not hangs it
	return nc
}

// readResponse reads one response frame from nc.
func readResponse(t testing.TB, nc net.Conn) (id *uint64, result []byte, perr *Error) {
	t.Helper()
	body, err := ReadFrame(nc, DefaultMaxResponseSize)
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	rid, hasID, result, perr, err := decodeResponse(body)
	if err != nil {
		t.Fatalf("malformed response %x: %v", body, err)
	}
	if hasID {
		id = &rid
	}
	return id, result, perr
}

// expectClosed checks that the server closed nc (after any response already read).
func expectClosed(t testing.TB, nc net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := nc.Read(b[:])
	if err == nil {
		t.Fatalf("connection still open: read %d bytes", n)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed: %v", err)
	}
}

// TestBadFrames sends malformed, truncated, oversized and otherwise wrong requests. Each gets a
// typed error; frame-level errors (the id is unknown) close the connection, request-level errors
// keep it usable. A concurrent well-behaved client is unaffected throughout.
func TestBadFrames(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})

	// The bystander: a client calling health in a loop during the whole test.
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := dialT(t, addr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Health(testCtx(t)); err != nil {
				failed.Add(1)
				t.Errorf("bystander: %v", err)
			} else {
				ok.Add(1)
			}
		}
	}()

	good := cborOf(t, req(9, "health", nil))
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, 1<<30)
	cases := []struct {
		name     string
		frame    []byte
		code     string
		id       *uint64 // expected id in the response; nil: null id and the connection closes
		contains string  // in the message
	}{
		{"not CBOR", frameOf([]byte{0xff}), CodeBadRequest, nil, "malformed"},
		{"empty frame", frameOf(nil), CodeBadRequest, nil, "empty"},
		{"oversized", big, CodeFrameTooLarge, nil, "1073741824"},
		{"array", frameOf(cborOf(t, []int{1, 2})), CodeBadRequest, nil, "malformed"},
		{"null", frameOf([]byte{0xf6}), CodeBadRequest, nil, "malformed"},
		{"trailing bytes", frameOf(append(good[:len(good):len(good)], 0x00)), CodeBadRequest, nil, "malformed"},
		{"two items", frameOf(append(append([]byte{}, good...), good...)), CodeBadRequest, nil, "malformed"},
		// {"id":1,"id":2,"v":1,"method":"health","params":{}}
		{"duplicate key", frameOf(hexb(t, "a5 626964 01 626964 02 6176 01 666d6574686f64 666865616c7468 66706172616d73 a0")), CodeBadRequest, nil, "malformed"},
		// indefinite-length map with the same content
		{"indefinite map", frameOf(hexb(t, "bf 626964 01 6176 01 666d6574686f64 666865616c7468 66706172616d73 a0 ff")), CodeBadRequest, nil, "malformed"},
		// tag 1 around the id
		{"tag", frameOf(hexb(t, "a4 626964 c101 6176 01 666d6574686f64 666865616c7468 66706172616d73 a0")), CodeBadRequest, nil, "malformed"},
		// body cut short: a map announcing 4 pairs with 1
		{"truncated item", frameOf(hexb(t, "a4 626964 01")), CodeBadRequest, nil, "malformed"},
		{"no id", frameOf(cborOf(t, map[string]any{"v": 1, "method": "health", "params": map[string]any{}})), CodeBadRequest, nil, "no id"},
		{"negative id", frameOf(cborOf(t, map[string]any{"v": 1, "id": -1, "method": "health", "params": map[string]any{}})), CodeBadRequest, nil, "id"},
		{"text id", frameOf(cborOf(t, map[string]any{"v": 1, "id": "1", "method": "health", "params": map[string]any{}})), CodeBadRequest, nil, "id"},
		{"params too deep", frameOf(cborOf(t, req(1, "health", map[string]any{"a": map[string]any{"b": map[string]any{"c": []int{1}}}}))), CodeBadRequest, nil, "malformed"},
		{"invalid UTF-8 method", frameOf(hexb(t, "a4 626964 01 6176 01 666d6574686f64 62ff01 66706172616d73 a0")), CodeBadRequest, ptr(1), "UTF-8"},

		{"version 2", frameOf(cborOf(t, map[string]any{"v": 2, "id": 7, "method": "health", "params": map[string]any{}})), CodeUnsupportedVersion, ptr(7), "version 1"},
		{"version text", frameOf(cborOf(t, map[string]any{"v": "1", "id": 7, "method": "health", "params": map[string]any{}})), CodeUnsupportedVersion, ptr(7), "version 1"},
		{"no version", frameOf(cborOf(t, map[string]any{"id": 7, "method": "health", "params": map[string]any{}})), CodeBadRequest, ptr(7), "no v"},
		{"unknown field", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "method": "health", "params": map[string]any{}, "x": 1})), CodeBadRequest, ptr(7), `"x"`},
		{"field case", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "Method": "health", "params": map[string]any{}})), CodeBadRequest, ptr(7), `"Method"`},
		{"no method", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "params": map[string]any{}})), CodeBadRequest, ptr(7), "no method"},
		{"method not text", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "method": []byte("health"), "params": map[string]any{}})), CodeBadRequest, ptr(7), "method"},
		{"no params", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "method": "health"})), CodeBadRequest, ptr(7), "no params"},
		{"params not a map", frameOf(cborOf(t, map[string]any{"v": 1, "id": 7, "method": "health", "params": []int{}})), CodeBadRequest, ptr(7), "params"},
		{"unknown method", frameOf(cborOf(t, req(7, "shell", nil))), CodeUnknownMethod, ptr(7), `"shell"`},
		{"health with params", frameOf(cborOf(t, req(7, "health", map[string]any{"verbose": true}))), CodeBadRequest, ptr(7), `"verbose"`},
		{"nonce null", frameOf(cborOf(t, req(7, "attest", map[string]any{"key": "rsa", "nonce": nil}))), CodeBadRequest, ptr(7), "nonce"},
		{"nonce text", frameOf(cborOf(t, req(7, "attest", map[string]any{"key": "rsa", "nonce": "abc"}))), CodeBadRequest, ptr(7), "nonce"},
		{"key bytes", frameOf(cborOf(t, req(7, "attest", map[string]any{"key": []byte("rsa"), "nonce": []byte{1}}))), CodeBadRequest, ptr(7), "key"},
		{"random float", frameOf(cborOf(t, req(7, "random", map[string]any{"n": 1.0}))), CodeBadRequest, nil, "floating-point"},
		{"random negative", frameOf(cborOf(t, req(7, "random", map[string]any{"n": -1}))), CodeBadRequest, ptr(7), "n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := rawDial(t, addr)
			if _, err := nc.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			id, _, perr := readResponse(t, nc)
			if perr == nil || perr.Code != tc.code || !strings.Contains(perr.Message, tc.contains) {
				t.Fatalf("got %v, want %s containing %q", perr, tc.code, tc.contains)
			}
			if tc.id == nil {
				if id != nil {
					t.Fatalf("id %d, want null", *id)
				}
				expectClosed(t, nc)
				return
			}
			if id == nil || *id != *tc.id {
				t.Fatalf("id %v, want %d", id, *tc.id)
			}
			// The connection is still usable.
			nc.Write(frameOf(good))
			id, res, perr := readResponse(t, nc)
			if perr != nil || id == nil || *id != 9 || !bytes.Equal(res, cborOf(t, Health{Status: "ok"})) {
				t.Fatalf("after the error: id %v, %x, %v", id, res, perr)
			}
		})
	}

	t.Run("truncated header", func(t *testing.T) {
		nc := rawDial(t, addr)
		nc.Write([]byte{0, 0})
		nc.(*net.UnixConn).CloseWrite()
		_, _, perr := readResponse(t, nc)
		if perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, "truncated frame header") {
			t.Fatalf("got %v", perr)
		}
		expectClosed(t, nc)
	})
	t.Run("truncated body", func(t *testing.T) {
		nc := rawDial(t, addr)
		fr := frameOf(good)
		nc.Write(fr[:len(fr)-3])
		nc.(*net.UnixConn).CloseWrite()
		_, _, perr := readResponse(t, nc)
		if perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, "truncated frame") {
			t.Fatalf("got %v", perr)
		}
		expectClosed(t, nc)
	})
	t.Run("oversized body is not read", func(t *testing.T) {
		// The header announces 1 GiB; the server must answer at once, without waiting for it.
		nc := rawDial(t, addr)
		nc.Write(big)
		nc.Write(make([]byte, 1000))
		_, _, perr := readResponse(t, nc)
		if perr == nil || perr.Code != CodeFrameTooLarge {
			t.Fatalf("got %v", perr)
		}
		expectClosed(t, nc)
	})

	close(stop)
	wg.Wait()
	if ok.Load() == 0 || failed.Load() != 0 {
		t.Fatalf("bystander: %d ok, %d failed", ok.Load(), failed.Load())
	}
	if n := len(f.calls); n == 0 {
		t.Fatal("the service was never called")
	}
}

func ptr(v uint64) *uint64 { return &v }

// TestFrameSizeLimit checks the limit is exact: a body of MaxRequestSize bytes is served, one
// more byte is refused before it is read.
func TestFrameSizeLimit(t *testing.T) {
	const limit = 256
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{MaxRequestSize: limit})
	body := func(n int) []byte {
		base := len(cborOf(t, req(1, "attest", map[string]any{"key": "rsa", "nonce": []byte{}})))
		// growing the nonce from 0 to k bytes adds k bytes, plus 1 once k >= 24
		k := n - base
		if k >= 24 {
			k--
		}
		b := cborOf(t, req(1, "attest", map[string]any{"key": "rsa", "nonce": bytes.Repeat([]byte{'x'}, k)}))
		if len(b) != n {
			t.Fatalf("built %d bytes, want %d", len(b), n)
		}
		return b
	}
	nc := rawDial(t, addr)
	nc.Write(frameOf(body(limit)))
	if _, _, perr := readResponse(t, nc); perr != nil {
		t.Fatalf("%d-byte request: %v", limit, perr)
	}
	nc.Write(frameOf(body(limit + 1)))
	if _, _, perr := readResponse(t, nc); perr == nil || perr.Code != CodeFrameTooLarge {
		t.Fatalf("%d-byte request: %v, want frame_too_large", limit+1, perr)
	}
	expectClosed(t, nc)
}

// TestSlowFrame: a frame that starts but does not finish within ReadTimeout is answered and the
// connection closed; a connection idle past IdleTimeout is closed silently.
func TestSlowFrame(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{ReadTimeout: 50 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	nc := rawDial(t, addr)
	nc.Write(frameOf(cborOf(t, req(1, "health", nil)))[:6])
	_, _, perr := readResponse(t, nc)
	if perr == nil || perr.Code != CodeBadRequest || !strings.Contains(perr.Message, "not received in time") {
		t.Fatalf("got %v", perr)
	}
	expectClosed(t, nc)

	idle := rawDial(t, addr)
	var b [1]byte
	if n, err := idle.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
}

// TestPipelining sends three requests in one write; the responses come back in order.
func TestPipelining(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	nc := rawDial(t, addr)
	var batch []byte
	for i := uint64(1); i <= 3; i++ {
		batch = append(batch, frameOf(cborOf(t, req(100+i, "random", map[string]any{"n": i})))...)
	}
	nc.Write(batch)
	for i := uint64(1); i <= 3; i++ {
		id, res, perr := readResponse(t, nc)
		if perr != nil || id == nil || *id != 100+i {
			t.Fatalf("response %d: id %v, %v", i, id, perr)
		}
		var r randomResult
		if err := r.decodeResult(res); err != nil || len(r.Random) != int(i) {
			t.Fatalf("response %d: %x, %v", i, res, err)
		}
	}
}

// TestReadWriteFrame covers the exported framing functions.
func TestReadWriteFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, nil); err == nil {
		t.Fatal("wrote an empty frame")
	}
	if !bytes.Equal(buf.Bytes(), []byte("\x00\x00\x00\x05hello")) {
		t.Fatalf("frame %x", buf.Bytes())
	}
	b, err := ReadFrame(bytes.NewReader(buf.Bytes()), 5)
	if err != nil || string(b) != "hello" {
		t.Fatalf("ReadFrame = %q, %v", b, err)
	}
	if _, err := ReadFrame(bytes.NewReader(buf.Bytes()), 4); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 5); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
	for _, cut := range []int{2, 4, 7} {
		if _, err := ReadFrame(bytes.NewReader(buf.Bytes()[:cut]), 5); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), 5); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("zero length: %v", err)
	}
}

// docFrames returns the bodies of the example frames in the code blocks of a docs/protocol.md
// section: hex lines (a trailing comment after two spaces allowed), one frame per block, or
// several when the block separates them with a blank line.
func docFrames(t *testing.T, sec string) [][]byte {
	t.Helper()
	hexLine := regexp.MustCompile(`^([0-9a-f]{2,}(?: [0-9a-f]{2,})*)(?:\s{2,}.*)?$`)
	blocks := strings.Split(sec, "```")
	var out [][]byte
	for i := 1; i < len(blocks); i += 2 { // odd pieces are inside code fences
		for _, part := range strings.Split(blocks[i], "\n\n") {
			var h strings.Builder
			for _, line := range strings.Split(part, "\n") {
				if m := hexLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
					h.WriteString(strings.ReplaceAll(m[1], " ", ""))
				}
			}
			if h.Len() == 0 {
				continue
			}
			frame := hexb(t, h.String())
			body, err := ReadFrame(bytes.NewReader(frame), DefaultMaxResponseSize)
			if err != nil || len(body) != len(frame)-4 {
				t.Fatalf("example %d: %v (%d bytes after the frame)", len(out), err, len(frame)-4-len(body))
			}
			out = append(out, body)
		}
	}
	return out
}

// TestProtocolDocExamples decodes every example frame of docs/protocol.md section 9: requests
// must be accepted and re-encode to the same bytes, responses must be well-formed.
func TestProtocolDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(doc), "## 9. Examples")
	sec, _, _ = strings.Cut(sec, "\n## ")
	n := 0
	for _, body := range docFrames(t, sec) {
		n++
		if req, _, e := decodeRequest(body); e == nil {
			p, e := LocalAPI(newFake()).methods[req.method].decode(req.params)
			if e != nil {
				t.Fatalf("example %d: %v", n, e)
			}
			enc := wireRequest{V: Version, ID: req.id, Method: req.method, Params: p.(encoder)}.appendCBOR(nil)
			if !bytes.Equal(enc, body) {
				t.Fatalf("example %d: re-encodes to %x", n, enc)
			}
			continue
		}
		if _, _, _, _, err := decodeResponse(body); err != nil {
			t.Fatalf("example %d is neither a request nor a response: %v", n, err)
		}
	}
	if n != 6 {
		t.Fatalf("found %d examples, want 6", n)
	}
}
