package vsockrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawServer accepts one connection on a fresh unix socket and hands it to serve, on the
// goroutine that accepted it. It returns the address.
func rawServer(t *testing.T, serve func(nc net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		serve(nc)
	}()
	return "unix://" + path
}

// answer reads one request from nc and returns its id.
func readID(t *testing.T, nc net.Conn) uint64 {
	body, err := ReadFrame(nc, DefaultMaxRequestSize)
	if err != nil {
		t.Error(err)
		return 0
	}
	r, _, e := decodeRequest(body)
	if e != nil {
		t.Error(e)
	}
	return r.id
}

// healthFrame is the frame of a health response to id.
func healthFrame(t *testing.T, id uint64) []byte {
	buf, err := encodeFrame(response{V: Version, ID: &id, Result: &Health{Status: "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// TestClientHasNoGoroutine: a client connection runs no goroutine of its own; a lone call reads its
// response itself.
func TestClientHasNoGoroutine(t *testing.T) {
	next := make(chan struct{})
	addr := rawServer(t, func(nc net.Conn) {
		for range 3 {
			nc.Write(healthFrame(t, readID(t, nc)))
		}
		<-next
	})
	defer close(next)
	c := dialT(t, addr)
	for range 3 {
		if _, err := c.Health(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	if strings.Contains(stacks, "vsockrpc.(*clientConn)") {
		t.Fatalf("a goroutine runs the client's code:\n%s", stacks)
	}
}

// TestClientCancelledReaderPassesTurn: the call reading the connection gives up; the call waiting
// behind it takes over the reading, drops the late response and gets its own.
func TestClientCancelledReaderPassesTurn(t *testing.T) {
	release := make(chan struct{})
	addr := rawServer(t, func(nc net.Conn) {
		first, second := readID(t, nc), readID(t, nc)
		<-release
		nc.Write(append(healthFrame(t, first), healthFrame(t, second)...))
		io.Copy(io.Discard, nc)
	})
	c := dialT(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	firstDone := make(chan error, 1)
	go func() { _, err := c.Health(ctx); firstDone <- err }()
	waitPending(t, c, 1)
	secondDone := make(chan error, 1)
	go func() { _, err := c.Health(testCtx(t)); secondDone <- err }()
	waitPending(t, c, 2)
	cancel()
	if err := <-firstDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("first call: %v", err)
	}
	close(release)
	if err := <-secondDone; err != nil {
		t.Fatalf("second call: %v", err)
	}
	c.cc.mu.Lock()
	defer c.cc.mu.Unlock()
	if c.cc.reading || len(c.cc.abandoned) != 0 || len(c.cc.pending) != 0 {
		t.Fatalf("after both calls: reading %v, abandoned %d, pending %d", c.cc.reading, len(c.cc.abandoned), len(c.cc.pending))
	}
}

// TestClientResumesPartialFrame: a call gives up halfway through its response; the rest is read
// from where it stopped (by the goroutine that drains what is owed), and the next call is
// answered.
func TestClientResumesPartialFrame(t *testing.T) {
	half := make(chan struct{})
	rest := make(chan struct{})
	addr := rawServer(t, func(nc net.Conn) {
		f := healthFrame(t, readID(t, nc))
		nc.Write(f[:len(f)/2])
		close(half)
		<-rest
		nc.Write(f[len(f)/2:])
		nc.Write(healthFrame(t, readID(t, nc)))
		io.Copy(io.Discard, nc)
	})
	c := dialT(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Health(ctx); done <- err }()
	<-half
	time.Sleep(20 * time.Millisecond) // let the reader take the first half in
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	close(rest)
	if _, err := c.Health(testCtx(t)); err != nil {
		t.Fatalf("next call: %v", err)
	}
}

// waitPending waits until c's connection has n calls registered.
func waitPending(t *testing.T, c *Client, n int) {
	t.Helper()
	ctx := testCtx(t)
	for {
		c.cc.mu.Lock()
		got := len(c.cc.pending)
		c.cc.mu.Unlock()
		if got == n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d calls pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// chunkReader returns its chunks one Read at a time, then err.
type chunkReader struct {
	chunks [][]byte
	err    error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, r.err
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

var errTransient = errors.New("transient")

// TestFrameReader: frames split anywhere, several in one read, bodies larger than the first
// buffer, and an error in the middle of a frame that a later call resumes from.
func TestFrameReader(t *testing.T) {
	frame := func(body []byte) []byte {
		var b bytes.Buffer
		if err := WriteFrame(&b, body); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	big := bytes.Repeat([]byte{7}, 3*frameReadBuffer)
	stream := append(append(frame([]byte("a")), frame(big)...), frame([]byte("bc"))...)
	for split := 1; split < len(stream); split += 997 {
		r := &chunkReader{chunks: [][]byte{bytes.Clone(stream[:split])}, err: errTransient}
		f := frameReader{r: r, max: len(big)}
		var got [][]byte
		for len(got) < 3 {
			body, err := f.next()
			if errors.Is(err, errTransient) { // the rest arrives later
				r.chunks, r.err = [][]byte{bytes.Clone(stream[split:])}, io.EOF
				continue
			}
			if err != nil {
				t.Fatalf("split %d: %v", split, err)
			}
			got = append(got, bytes.Clone(body))
		}
		if !bytes.Equal(got[0], []byte("a")) || !bytes.Equal(got[1], big) || !bytes.Equal(got[2], []byte("bc")) {
			t.Fatalf("split %d: wrong bodies", split)
		}
		if _, err := f.next(); err != io.EOF {
			t.Fatalf("split %d: at the end: %v", split, err)
		}
	}
	// The end of the stream inside a frame, and a length over the limit.
	f := frameReader{r: bytes.NewReader(frame([]byte("abc"))[:5]), max: 16}
	if _, err := f.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	f = frameReader{r: bytes.NewReader(frame(make([]byte, 17))), max: 16}
	if _, err := f.next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("too large: %v", err)
	}
}
