package vsockrpc

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Default limits of a Server.
const (
	DefaultMaxConns       = 4096
	DefaultMaxInFlight    = 16
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultReadTimeout    = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// Limits bounds what a Server spends on its callers. A zero field takes its default.
type Limits struct {
	// MaxRequestSize bounds a request frame's body (default DefaultMaxRequestSize, or
	// DefaultLocalMaxRequestSize for LocalAPI). A larger length prefix is answered with
	// CodeFrameTooLarge and the connection is closed, unread.
	MaxRequestSize int
	// MaxResponseSize bounds a response frame's body (default DefaultMaxResponseSize, or
	// DefaultLocalMaxResponseSize for LocalAPI). A larger result is replaced by a CodeInternal error.
	MaxResponseSize int
	// MaxConns bounds open connections (default DefaultMaxConns). A connection over the limit is
	// accepted, answered with a CodeBusy error (id null) and closed at once.
	MaxConns int
	// MaxInFlight bounds requests being handled by the service at once, over all connections
	// (default DefaultMaxInFlight). A request waits for a slot until its RequestTimeout, then gets
	// CodeBusy. Methods that never wait on the NSM (describe, health, set_user_data) have
	// MaxInFlight slots of their own, so they never queue behind NSM-bound requests.
	MaxInFlight int
	// IdleTimeout is how long a connection may wait between frames (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// ReadTimeout is how long a frame may take to arrive once its first byte has (default
	// DefaultReadTimeout).
	ReadTimeout time.Duration
	// WriteTimeout is how long writing one response may take (default DefaultWriteTimeout).
	WriteTimeout time.Duration
	// RequestTimeout bounds one request from the end of its frame to its result: waiting for a
	// slot plus the service call, whose context carries this deadline (default
	// DefaultRequestTimeout), give or take a tenth of it (at most 100 ms). Requests that start
	// together share that context, so it is not cancelled when one of them ends. A service that
	// returns the context's error yields CodeUnavailable.
	RequestTimeout time.Duration
}

// resolve returns l with defaults filled in (the local API's frame limits when local), or an error
// for a value out of range.
func (l Limits) resolve(local bool) (Limits, error) {
	maxReq, maxResp := DefaultMaxRequestSize, DefaultMaxResponseSize
	if local {
		maxReq, maxResp = DefaultLocalMaxRequestSize, DefaultLocalMaxResponseSize
	}
	ints := []struct {
		name     string
		v        *int
		def, min int
		max      int
	}{
		{"MaxRequestSize", &l.MaxRequestSize, maxReq, 256, maxFrameLimit},
		{"MaxResponseSize", &l.MaxResponseSize, maxResp, 8 << 10, maxFrameLimit},
		{"MaxConns", &l.MaxConns, DefaultMaxConns, 1, 1 << 20},
		{"MaxInFlight", &l.MaxInFlight, DefaultMaxInFlight, 1, 1 << 16},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.min || *f.v > f.max {
			return l, fmt.Errorf("vsockrpc: Limits.%s = %d not in %d..%d", f.name, *f.v, f.min, f.max)
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"IdleTimeout", &l.IdleTimeout, DefaultIdleTimeout},
		{"ReadTimeout", &l.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", &l.WriteTimeout, DefaultWriteTimeout},
		{"RequestTimeout", &l.RequestTimeout, DefaultRequestTimeout},
	}
	for _, f := range durs {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return l, fmt.Errorf("vsockrpc: Limits.%s = %v is negative", f.name, *f.v)
		}
	}
	return l, nil
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("vsockrpc: server closed")

// Server answers requests of one API on any number of listeners. One goroutine serves each
// connection, handling its requests in order (a client may pipeline them); requests from all
// connections share MaxInFlight service slots. Set the fields before the first Serve; do not copy
// a Server after that.
type Server struct {
	// API is the set of methods served (ParentAPI or LocalAPI). Required.
	API *API
	// Limits bounds sizes, connections, concurrency and time.
	Limits Limits
	// Logger receives the server's log; nil means slog.Default(). Per-connection events are
	// logged at Debug so that a hostile caller cannot flood the log.
	Logger *slog.Logger

	initOnce sync.Once
	initErr  error
	lim      Limits
	log      *slog.Logger
	sem      chan struct{}   // slots of NSM-bound methods
	quickSem chan struct{}   // slots of methods that never wait on the NSM (method.quick)
	ctx      context.Context // cancelled by Close: the parent of every request's context
	cancel   context.CancelFunc
	reqCtx   atomic.Pointer[requestCtx] // the context requests starting now share (requestContext)

	closing   atomic.Bool   // set (under mu) by Shutdown and Close
	closingCh chan struct{} // closed when closing is set
	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*serverConn]struct{}
	wg        sync.WaitGroup // one per tracked connection; Add only under mu while not closing
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.closingCh = make(chan struct{})
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*serverConn]struct{}{}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		if s.API == nil {
			s.initErr = errors.New("vsockrpc: Server.API is nil")
			return
		}
		if s.lim, s.initErr = s.Limits.resolve(s.API.local); s.initErr == nil {
			s.sem = make(chan struct{}, s.lim.MaxInFlight)
			s.quickSem = make(chan struct{}, s.lim.MaxInFlight)
		}
	})
	return s.initErr
}

// Serve accepts connections on l and serves them until Shutdown or Close (then it returns
// ErrServerClosed) or until Accept fails with a permanent error. Temporary accept errors (such as
// running out of file descriptors) are retried with a backoff up to one second. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		l.Close()
		return err
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if !temporary(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("vsockrpc: accept failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.closingCh:
			}
			continue
		}
		backoff = 0
		c, code := s.track(nc)
		if c == nil {
			s.reject(nc, code)
			continue
		}
		go s.serveConn(c)
	}
}

// temporary reports whether an Accept error is worth retrying.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// serverConn is one connection. Idle connections hold only this struct, a small read buffer, the
// socket and a parked goroutine.
type serverConn struct {
	nc   net.Conn
	br   *bufio.Reader
	mu   sync.Mutex
	idle bool // waiting for the first byte of a frame: Shutdown may close it

	readBy, writeBy time.Time // the deadlines armed on nc (see arm)
}

// arm makes the deadline *at (applied to the connection by set) end d from now, give or take a
// second (half of d if that is shorter): a deadline already ending in that window is left as it
// is. Moving a deadline costs a timer update that can wake the runtime's network poller on
// another CPU; this way a busy connection moves each deadline about once a second, not once per
// request.
func arm(at *time.Time, set func(time.Time) error, d time.Duration) {
	now := time.Now()
	want := now.Add(d)
	if at.After(want) || !at.After(want.Add(-min(d/2, time.Second))) {
		*at = want
		set(want)
	}
}

// requestCtx is a context carrying a deadline, shared by the requests that start within its margin.
type requestCtx struct {
	ctx      context.Context
	cancel   context.CancelFunc // not called early: requests may still use ctx; its deadline frees it
	deadline time.Time
}

// requestContext returns a context whose deadline ends RequestTimeout from now, give or take a
// margin of a tenth of RequestTimeout (at most 100 ms): requests that start within a margin of
// each other share one context, and so one timer. Like moving a deadline (see arm), starting a
// timer can wake the runtime's network poller on another CPU, which costs more than the rest of
// the server's own work on a request.
func (s *Server) requestContext() context.Context {
	want := time.Now().Add(s.lim.RequestTimeout)
	margin := min(s.lim.RequestTimeout/10, 100*time.Millisecond)
	if rc := s.reqCtx.Load(); rc != nil && !rc.deadline.Before(want) && rc.deadline.Before(want.Add(margin)) {
		return rc.ctx
	}
	rc := &requestCtx{deadline: want.Add(margin)}
	rc.ctx, rc.cancel = context.WithDeadline(s.ctx, rc.deadline)
	s.reqCtx.Store(rc) // racing callers may each store one: harmless, each ends at its deadline
	return rc.ctx
}

// serverReadBuffer is a connection's read buffer: a typical request (an attest with a nonce of up
// to ~150 bytes) arrives with its header in one read system call and is decoded in place; larger
// ones take one more read. Idle connections hold it, so it is small.
const serverReadBuffer = 256

func (s *Server) track(nc net.Conn) (*serverConn, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil, CodeShuttingDown
	}
	if len(s.conns) >= s.lim.MaxConns {
		return nil, CodeBusy
	}
	c := &serverConn{nc: nc, br: bufio.NewReaderSize(nc, serverReadBuffer)}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, ""
}

// reject answers a connection that will not be served with an error (id null) and closes it. The
// write deadline is short: the accept loop waits for it.
func (s *Server) reject(nc net.Conn, code string) {
	s.log.Debug("vsockrpc: connection rejected", "remote", nc.RemoteAddr(), "code", code)
	msg := "too many connections"
	if code == CodeShuttingDown {
		msg = "server is shutting down"
	}
	if buf, err := encodeFrame(response{V: Version, Error: &Error{Code: code, Message: msg}}); err == nil {
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(buf.Bytes())
		putFrame(buf)
	}
	nc.Close()
}

func (s *Server) serveConn(c *serverConn) {
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	consumed := 0   // bytes of the last request still in c.br: its params alias them until answered
	var big *[]byte // the last request's body when it did not fit c.br: likewise, until answered
	for {
		c.br.Discard(consumed)
		consumed = 0
		if big != nil {
			putBody(big)
			big = nil
		}
		if !s.setIdle(c) {
			return
		}
		// Wait up to IdleTimeout for the first byte of the next frame, then give the whole frame
		// ReadTimeout: a slow trickle cannot hold the connection longer than that.
		_, err := c.br.Peek(1)
		c.mu.Lock()
		c.idle = false
		c.mu.Unlock()
		if err != nil {
			s.debug(c, "vsockrpc: connection done", "err", err)
			return
		}
		if !frameBuffered(c.br) {
			arm(&c.readBy, c.nc.SetReadDeadline, s.lim.ReadTimeout)
		}
		body, pooled, rerr := s.readFrame(c)
		if rerr != nil {
			s.debug(c, "vsockrpc: bad frame", "err", rerr)
			s.fail(c, rerr)
			return
		}
		if pooled == nil {
			consumed = len(body)
		}
		big = pooled
		req, idKnown, e := decodeRequest(body)
		if e != nil {
			s.debug(c, "vsockrpc: bad request", "err", e, "id_known", idKnown)
			if !idKnown {
				s.fail(c, e)
				return
			}
			if !s.respond(c, &req.id, req.method, nil, e) {
				return
			}
			continue
		}
		var res encoder
		if s.closing.Load() {
			err = Errorf(CodeShuttingDown, "server is shutting down")
		} else {
			res, err = s.dispatch(req)
		}
		if !s.respond(c, &req.id, req.method, res, err) {
			return
		}
	}
}

// debug logs a per-connection event at Debug level; the arguments are only formatted when enabled.
func (s *Server) debug(c *serverConn, msg string, args ...any) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug(msg, append([]any{"remote", c.nc.RemoteAddr()}, args...)...)
	}
}

// setIdle marks c idle and arms the idle deadline, or reports false if the server is closing.
// Shutdown checks idle under the same lock, so a connection is either seen idle (and woken) or
// sees closing here.
func (s *Server) setIdle(c *serverConn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	c.idle = true
	arm(&c.readBy, c.nc.SetReadDeadline, s.lim.IdleTimeout)
	return true
}

// frameBuffered reports whether a whole frame is already in br: reading it cannot block.
func frameBuffered(br *bufio.Reader) bool {
	hdr, err := br.Peek(min(4, br.Buffered()))
	if err != nil || len(hdr) < 4 {
		return false
	}
	return uint64(br.Buffered()-4) >= uint64(binary.BigEndian.Uint32(hdr))
}

// readFrame reads a frame whose first byte is buffered in c.br. A body that fits c.br's buffer is
// returned in place (inPlace): the caller discards it from c.br once the request is answered.
func (s *Server) readFrame(c *serverConn) (body []byte, pooled *[]byte, e *Error) {
	hdr, err := c.br.Peek(4)
	if err != nil {
		return nil, nil, Errorf(CodeBadRequest, "truncated frame header: %v", readErr(err))
	}
	size, err := frameLen([4]byte(hdr), s.lim.MaxRequestSize)
	if errors.Is(err, ErrFrameTooLarge) {
		return nil, nil, Errorf(CodeFrameTooLarge, "request frame: %v", err)
	} else if err != nil {
		return nil, nil, Errorf(CodeBadRequest, "%v", err)
	}
	c.br.Discard(4)
	if size <= c.br.Size() {
		if body, err = c.br.Peek(size); err != nil {
			return nil, nil, Errorf(CodeBadRequest, "truncated frame: %v", readErr(err))
		}
		return body, nil, nil
	}
	pooled = getBody(size)
	body = (*pooled)[:size]
	if _, err := io.ReadFull(c.br, body); err != nil {
		putBody(pooled)
		return nil, nil, Errorf(CodeBadRequest, "truncated frame: %v", readErr(err))
	}
	return body, pooled, nil
}

// bodyBufs holds the buffers of request bodies too large for a connection's read buffer (an open
// of a 64 KiB envelope, say): a fresh 64 KiB allocation per request costs more in clearing and
// garbage collection than the request's own socket crossing.
var bodyBufs sync.Pool

// poisonReleasedBodies makes putBody clear each buffer it takes back. The package's tests set it,
// so that a request still reading its body after release fails every test that reaches it.
var poisonReleasedBodies bool

// getBody returns a buffer of at least size bytes from bodyBufs, or a new one.
func getBody(size int) *[]byte {
	if b, ok := bodyBufs.Get().(*[]byte); ok && cap(*b) >= size {
		return b
	}
	b := make([]byte, size)
	return &b
}

// putBody returns b to bodyBufs unless it is larger than any default limit needs: a rare request
// under a raised limit does not keep a huge buffer alive.
func putBody(b *[]byte) {
	if poisonReleasedBodies {
		clear((*b)[:cap(*b)])
	}
	if cap(*b) <= DefaultLocalMaxRequestSize {
		bodyBufs.Put(b)
	}
}

func readErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("not received in time")
	}
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// fail answers a frame-level error (id null) and closes the connection. It half-closes first and
// drains briefly what the peer is still sending, so that the peer reads the error instead of a
// reset (TCP resets a connection closed with unread input).
func (s *Server) fail(c *serverConn, e *Error) {
	if !s.respond(c, nil, "", nil, e) {
		return
	}
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, c.nc, 256<<10)
	}
}

// dispatch decodes the params of req and calls the service in a slot.
func (s *Server) dispatch(req request) (encoder, error) {
	m, ok := s.API.methods[req.method]
	if !ok {
		return nil, Errorf(CodeUnknownMethod, "no method %q", req.method)
	}
	params, e := m.decode(req.params)
	if e != nil {
		return nil, e
	}
	ctx := s.requestContext()
	sem := s.sem
	if m.quick { // its own slots: never behind requests waiting on a slow NSM
		sem = s.quickSem
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		if s.ctx.Err() != nil {
			return nil, Errorf(CodeShuttingDown, "server is shutting down")
		}
		return nil, Errorf(CodeBusy, "too many requests in flight")
	}
	defer func() { <-sem }()
	return s.call(ctx, req.method, m, params)
}

// call runs the service; a panic becomes CodeInternal for this request only.
func (s *Server) call(ctx context.Context, name string, m method, params any) (res encoder, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("vsockrpc: service panicked", "method", name, "panic", r, "stack", string(debug.Stack()))
			res, err = nil, Errorf(CodeInternal, "internal error")
		}
	}()
	res, err = m.call(ctx, params)
	if err != nil && ctx.Err() != nil && !errors.As(err, new(*Error)) {
		if s.ctx.Err() != nil {
			return nil, Errorf(CodeShuttingDown, "server is shutting down")
		}
		return nil, Errorf(CodeUnavailable, "request not completed in time")
	}
	return res, err
}

// respond writes one response. It reports false if the connection is unusable.
func (s *Server) respond(c *serverConn, id *uint64, name string, res encoder, err error) bool {
	resp := response{V: Version, ID: id, Result: res}
	if err != nil {
		resp.Result, resp.Error = nil, s.protocolError(name, err)
	}
	buf, eerr := encodeFrame(resp)
	if eerr == nil && buf.Len()-4 > s.lim.MaxResponseSize {
		putFrame(buf)
		s.log.Error("vsockrpc: result exceeds MaxResponseSize", "method", name, "size", buf.Len()-4)
		resp.Result, resp.Error = nil, Errorf(CodeInternal, "result too large")
		buf, eerr = encodeFrame(resp)
	} else if eerr != nil && err == nil {
		s.log.Error("vsockrpc: cannot encode result", "method", name, "err", eerr)
		resp.Result, resp.Error = nil, Errorf(CodeInternal, "internal error")
		buf, eerr = encodeFrame(resp)
	}
	if eerr != nil {
		s.log.Error("vsockrpc: cannot encode response", "method", name, "err", eerr)
		return false
	}
	defer putFrame(buf)
	arm(&c.writeBy, c.nc.SetWriteDeadline, s.lim.WriteTimeout)
	if _, werr := c.nc.Write(buf.Bytes()); werr != nil {
		s.debug(c, "vsockrpc: write failed", "err", werr)
		return false
	}
	return true
}

// protocolError turns a service error into what the caller sees: an *Error as is (message
// bounded), anything else CodeInternal with the details only in the log.
func (s *Server) protocolError(name string, err error) *Error {
	var e *Error
	if errors.As(err, &e) && e != nil && e.valid() {
		out := *e
		out.Message = truncate(out.Message, maxMessageLen)
		return &out
	}
	s.log.Error("vsockrpc: service failed", "method", name, "err", err)
	return Errorf(CodeInternal, "internal error")
}

// Shutdown stops the server gracefully: it closes the listeners, closes idle connections, lets
// requests already read finish and their responses be written, then closes those connections
// too. A frame still arriving is read and answered with CodeShuttingDown. If ctx ends first,
// Shutdown calls Close and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	conns := s.startClosing()
	for _, c := range conns {
		c.mu.Lock()
		if c.idle {
			c.nc.SetReadDeadline(time.Now()) // wakes the blocked read; the goroutine then exits
		}
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops the server at once: listeners and connections are closed and the context of
// requests in progress is cancelled. It does not wait for service calls to return.
func (s *Server) Close() error {
	s.init()
	conns := s.startClosing()
	s.cancel()
	for _, c := range conns {
		c.nc.Close()
	}
	return nil
}

// startClosing sets closing, closes the listeners and returns the connections open now (no new
// one can be tracked after this).
func (s *Server) startClosing() []*serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing.Swap(true) {
		close(s.closingCh)
	}
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}
