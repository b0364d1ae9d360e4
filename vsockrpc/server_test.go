package vsockrpc

import (
	"context"
	"errors"
	"fmt"
	"github.com/attestd/attestd/internal/testlog"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/leaktest"
)

// needFDs fails the test if the process cannot open n more descriptors.
func needFDs(t *testing.T, n uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur < n {
		t.Fatalf("RLIMIT_NOFILE is %d, this test needs %d", rl.Cur, n)
	}
}

// TestIdleConnections: 1,000 idle connections (each served once, then silent) do not stop a
// new client from being served.
func TestIdleConnections(t *testing.T) {
	const idle = 1000
	needFDs(t, 2*idle+200)
	srv, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	ping := frameOf(cborOf(t, req(1, "health", nil)))
	for i := 0; i < idle; i++ {
		nc := rawDial(t, addr)
		nc.Write(ping)
		if _, _, perr := readResponse(t, nc); perr != nil {
			t.Fatalf("idle connection %d: %v", i, perr)
		}
	}
	srv.mu.Lock()
	held := len(srv.conns)
	srv.mu.Unlock()
	if held != idle {
		t.Fatalf("server holds %d connections, want %d", held, idle)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Attest(ctx, []byte("fresh"), "rsa"); err != nil {
		t.Fatalf("new client with %d idle connections: %v", idle, err)
	}
}

// TestMaxConns: a connection over the limit gets busy (null id) and is closed; once a slot frees,
// new connections are served again.
func TestMaxConns(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{MaxConns: 3})
	ctx := testCtx(t)
	var held []*Client
	for i := 0; i < 3; i++ {
		c := dialT(t, addr)
		if _, err := c.Health(ctx); err != nil { // served, so tracked by the server
			t.Fatal(err)
		}
		held = append(held, c)
	}
	over := dialT(t, addr)
	_, err := over.Health(ctx)
	if !errors.Is(err, &Error{Code: CodeBusy}) {
		t.Fatalf("connection over the limit: %v, want busy", err)
	}
	held[0].Close()
	// The server notices the close asynchronously: retry until a slot is free.
	for {
		c, err := Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Health(ctx)
		c.Close()
		if err == nil {
			break
		}
		if !errors.Is(err, &Error{Code: CodeBusy}) {
			t.Fatalf("after a slot freed: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("no slot freed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPanicRecovered: a panicking handler gets internal for that request only; the connection
// and the server go on, and the panic is logged.
func TestPanicRecovered(t *testing.T) {
	f := newFake()
	var panics atomic.Int32
	f.attestHook = func(_ context.Context, req LocalAttestRequest) (*AttestResult, error) {
		if string(req.Nonce) == "boom" {
			panics.Add(1)
			panic("handler bug")
		}
		return &AttestResult{Document: req.Nonce, PublicKey: []byte("p"), Key: req.Key}, nil
	}
	var logBuf testlog.Buffer
	// The pipe client never redials: the same connection must survive.
	c := servePipe(t, &Server{API: LocalAPI(f), Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	ctx := testCtx(t)
	_, err := c.Attest(ctx, []byte("boom"), "rsa")
	wantCode(t, err, CodeInternal, "internal error")
	res, err := c.Attest(ctx, []byte("after"), "rsa")
	if err != nil || string(res.Document) != "after" {
		t.Fatalf("after the panic: %v", err)
	}
	if panics.Load() != 1 || !strings.Contains(logBuf.String(), "service panicked") || !strings.Contains(logBuf.String(), "handler bug") {
		t.Fatalf("panics %d, log %q", panics.Load(), logBuf.String())
	}
}

// blockingFake returns a fake whose attest with nonce "slow" signals started and waits for release.
func blockingFake() (f *fakeService, started chan struct{}, release chan struct{}) {
	f = newFake()
	started, release = make(chan struct{}, 16), make(chan struct{})
	f.attestHook = func(ctx context.Context, req LocalAttestRequest) (*AttestResult, error) {
		if string(req.Nonce) == "slow" {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return &AttestResult{Document: append([]byte("doc:"), req.Nonce...), PublicKey: []byte("p"), Key: req.Key}, nil
	}
	return f, started, release
}

func serveUnix(t *testing.T, srv *Server) (addr string, served chan error) {
	t.Helper()
	addr = "unix://" + filepath.Join(t.TempDir(), "s")
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.init() // before Serve's goroutine: tests inspect the server's state
	served = make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	return addr, served
}

// TestShutdownDrains: Shutdown closes idle connections and the listener at once, lets the
// request in flight finish and deliver its response, then returns; a request pipelined behind
// it is not started.
func TestShutdownDrains(t *testing.T) {
	f, started, release := blockingFake()
	srv := &Server{API: LocalAPI(f), Logger: quietLogger()}
	addr, served := serveUnix(t, srv)
	ctx := testCtx(t)

	busy := dialT(t, addr)
	idle := rawDial(t, addr)
	idle.Write(frameOf(cborOf(t, req(1, "health", nil))))
	readResponse(t, idle)

	inflight := make(chan error, 1)
	go func() {
		res, err := busy.Attest(ctx, []byte("slow"), "rsa")
		if err == nil && string(res.Document) != "doc:slow" {
			err = fmt.Errorf("document %q", res.Document)
		}
		inflight <- err
	}()
	<-started
	pipelined := make(chan error, 1)
	go func() {
		_, err := busy.Attest(ctx, []byte("second"), "rsa")
		pipelined <- err
	}()

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()

	expectClosed(t, idle) // idle connections are closed at once
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := Dial(ctx, addr); err == nil {
		t.Fatal("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}

	close(release)
	if err := <-inflight; err != nil {
		t.Fatalf("request in flight: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-pipelined; err == nil {
		t.Fatal("the pipelined request was served after shutdown began")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := strings.Count(strings.Join(f.calls, ","), "attest_local"); n != 1 {
		t.Fatalf("attest called %d times, want 1", n)
	}
}

// TestShutdownDeadline: if requests outlast the Shutdown context, the server is closed hard and
// the requests' contexts are cancelled.
func TestShutdownDeadline(t *testing.T) {
	f, started, _ := blockingFake()
	srv := &Server{API: LocalAPI(f), Logger: quietLogger()}
	addr, served := serveUnix(t, srv)
	c := dialT(t, addr)
	res := make(chan error, 1)
	go func() {
		_, err := c.Attest(testCtx(t), []byte("slow"), "rsa")
		res <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	if err := <-res; err == nil {
		t.Fatal("the request survived Close")
	}
	<-served
	if err := srv.Serve(newPipeListener()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

// TestInFlightLimit: with MaxInFlight 1 and the slot held, another request waits for its
// RequestTimeout and gets busy; a service that overruns RequestTimeout gives unavailable.
func TestInFlightLimit(t *testing.T) {
	f := newFake()
	started, release := make(chan struct{}), make(chan struct{})
	f.attestHook = func(ctx context.Context, req LocalAttestRequest) (*AttestResult, error) {
		switch string(req.Nonce) {
		case "hold": // holds the slot, whatever its context says
			close(started)
			<-release
		case "overrun": // honours its context, which ends at RequestTimeout
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return &AttestResult{Document: []byte("d"), PublicKey: []byte("p"), Key: req.Key}, nil
	}
	_, addr := startUnix(t, LocalAPI(f), Limits{MaxInFlight: 1, RequestTimeout: 100 * time.Millisecond})
	ctx := testCtx(t)
	held := make(chan error, 1)
	go func() {
		_, err := dialT(t, addr).Attest(ctx, []byte("hold"), "rsa")
		held <- err
	}()
	<-started
	_, err := dialT(t, addr).Attest(ctx, []byte("fast"), "rsa")
	wantCode(t, err, CodeBusy, "in flight")
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("the request holding the slot: %v", err)
	}
	_, err = dialT(t, addr).Attest(ctx, []byte("overrun"), "rsa")
	wantCode(t, err, CodeUnavailable, "not completed in time")
	if _, err := dialT(t, addr).Attest(ctx, []byte("fast"), "rsa"); err != nil {
		t.Fatalf("after the slot freed: %v", err)
	}
}

// TestResponseTooLarge: a result over MaxResponseSize becomes internal; the connection goes on.
func TestResponseTooLarge(t *testing.T) {
	f := newFake()
	f.attestHook = func(_ context.Context, req LocalAttestRequest) (*AttestResult, error) {
		return &AttestResult{Document: make([]byte, len(req.Nonce)*100), PublicKey: []byte("p"), Key: req.Key}, nil
	}
	_, addr := startUnix(t, LocalAPI(f), Limits{MaxResponseSize: 8 << 10})
	c := dialT(t, addr)
	_, err := c.Attest(testCtx(t), make([]byte, 100), "rsa") // 10,000-byte document
	wantCode(t, err, CodeInternal, "result too large")
	if _, err := c.Attest(testCtx(t), make([]byte, 10), "rsa"); err != nil {
		t.Fatal(err)
	}
}

func TestLimitsValidation(t *testing.T) {
	for _, lim := range []Limits{
		{MaxRequestSize: -1}, {MaxRequestSize: 100}, {MaxRequestSize: maxFrameLimit + 1},
		{MaxResponseSize: 4096}, {MaxConns: -5}, {MaxInFlight: -1}, {IdleTimeout: -time.Second},
	} {
		srv := &Server{API: ParentAPI(newFake()), Limits: lim}
		if err := srv.Serve(newPipeListener()); err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("Limits %+v accepted: %v", lim, err)
		}
	}
	if err := (&Server{}).Serve(newPipeListener()); err == nil || !strings.Contains(err.Error(), "API") {
		t.Errorf("nil API: %v", err)
	}
	got, err := Limits{}.resolve(false)
	want := Limits{DefaultMaxRequestSize, DefaultMaxResponseSize, DefaultMaxConns, DefaultMaxInFlight,
		DefaultIdleTimeout, DefaultReadTimeout, DefaultWriteTimeout, DefaultRequestTimeout}
	if err != nil || got != want {
		t.Fatalf("defaults %+v, %v", got, err)
	}
}

// flakyListener fails Accept with EMFILE a few times, then serves pipes.
type flakyListener struct {
	*pipeListener
	failures, calls atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "pipe", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.pipeListener.Accept()
}

// TestAcceptBackoff: temporary accept errors are retried (with a backoff, not a spin) and then
// connections are served; a permanent error ends Serve.
func TestAcceptBackoff(t *testing.T) {
	l := &flakyListener{pipeListener: newPipeListener()}
	l.failures.Store(3)
	srv := &Server{API: LocalAPI(newFake()), Logger: quietLogger()}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	nc, err := l.dial()
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(nc)
	if _, err := c.Health(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// 3 failures, 1 connection, and maybe the next (blocked) Accept: a spin would be far more.
	if n := l.calls.Load(); n != 4 && n != 5 {
		t.Fatalf("Accept called %d times for 3 failures and 1 connection", n)
	}
	l.pipeListener.Close() // net.ErrClosed: permanent
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve: %v", err)
	}
	srv.Close()
}

// TestNoLeak: 10,000 requests over long-lived and short-lived connections, with some bad
// frames, then Shutdown: goroutines and file descriptors return to where they started.
func TestNoLeak(t *testing.T) {
	// The runtime's network poller opens its descriptors on first use: start it before counting.
	if wl, err := net.Listen("unix", filepath.Join(t.TempDir(), "warmup")); err == nil {
		wl.Close()
	}
	runtime.GC()
	// No garbage collection until the end: finalizers would close descriptors nobody closed and
	// hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	baseG, baseFD := runtime.NumGoroutine(), leaktest.FDs(t)

	srv := &Server{API: LocalAPI(newFake()), Logger: quietLogger()}
	dir, err := os.MkdirTemp("", "vsockrpc-leak")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	addr := "unix://" + filepath.Join(dir, "s")
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var total atomic.Int64
	var wg sync.WaitGroup
	work := func(c *Client, n int) {
		for i := 0; i < n; i++ {
			var err error
			switch i % 3 {
			case 0:
				_, err = c.Attest(ctx, []byte("n"), "rsa")
			case 1:
				_, err = c.Health(ctx)
			case 2:
				_, err = c.Random(ctx, 32)
			}
			if err != nil {
				t.Error(err)
				return
			}
			total.Add(1)
		}
	}
	// 16 long-lived clients, each with 4 goroutines pipelining: 16*4*80 = 5,120 requests.
	for i := 0; i < 16; i++ {
		c, err := Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		var cwg sync.WaitGroup
		for j := 0; j < 4; j++ {
			cwg.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); defer cwg.Done(); work(c, 80) }()
		}
		go func() { cwg.Wait(); c.Close() }()
	}
	// 488 short-lived connections of 10 requests: 4,880 requests.
	sem := make(chan struct{}, 16)
	for i := 0; i < 488; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := Dial(ctx, addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			work(c, 10)
		}()
	}
	// Bad frames and abrupt closes.
	for i := 0; i < 50; i++ {
		a, _ := ParseAddr(addr)
		nc, err := dialAddr(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			nc.Write([]byte{0, 0, 0, 1, 0xff})
		} else {
			nc.Write([]byte{0, 0})
		}
		nc.Close()
	}
	wg.Wait()
	if got := total.Load(); got != 10000 {
		t.Fatalf("%d requests succeeded, want 10000", got)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}

	// Goroutines end asynchronously (client readers): poll, with a generous bound.
	var g, fds int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		g, fds = runtime.NumGoroutine(), leaktest.FDs(t)
		if g <= baseG && fds <= baseFD {
			return
		}
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("leak: %d goroutines (was %d), %d fds (was %d)\n%s", g, baseG, fds, baseFD, buf[:runtime.Stack(buf, true)])
}

// TestShutdownMidFrame: a frame that started arriving before Shutdown is read to its end and
// answered shutting_down (not run), then the connection closes.
func TestShutdownMidFrame(t *testing.T) {
	f := newFake()
	srv := &Server{API: LocalAPI(f), Logger: quietLogger()}
	addr, served := serveUnix(t, srv)
	nc := rawDial(t, addr)
	frame := frameOf(cborOf(t, req(5, "attest", map[string]any{"nonce": []byte("n"), "key": "rsa"})))
	nc.Write(frame[:3])
	// Wait until the server has read the first byte: the connection is no longer idle.
	ctx := testCtx(t)
	for {
		srv.mu.Lock()
		reading := false
		for c := range srv.conns {
			c.mu.Lock()
			reading = reading || !c.idle
			c.mu.Unlock()
		}
		srv.mu.Unlock()
		if reading {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the server never started reading the frame")
		}
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	<-served // the listener is closed: shutdown has begun
	nc.Write(frame[3:])
	id, _, perr := readResponse(t, nc)
	if perr == nil || perr.Code != CodeShuttingDown || id == nil || *id != 5 {
		t.Fatalf("got id %v, %v; want 5, shutting_down", id, perr)
	}
	expectClosed(t, nc)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called during shutdown: %v", f.calls)
	}
}

// TestArm: a deadline is moved only when it would end more than the slack (a second, or half the
// timeout) before the wanted time, or after it.
func TestArm(t *testing.T) {
	var at time.Time
	sets := 0
	set := func(time.Time) error { sets++; return nil }
	arm(&at, set, 10*time.Second) // none armed yet
	first := at
	arm(&at, set, 10*time.Second) // still within the second
	if sets != 1 || at != first {
		t.Fatalf("%d sets, want 1", sets)
	}
	at = time.Now().Add(8 * time.Second) // ends too early
	arm(&at, set, 10*time.Second)
	if sets != 2 || time.Until(at) < 9*time.Second {
		t.Fatalf("early deadline: %d sets, ends in %v", sets, time.Until(at))
	}
	arm(&at, set, time.Second) // a shorter timeout: the deadline ends too late
	if sets != 3 || time.Until(at) > time.Second {
		t.Fatalf("late deadline: %d sets, ends in %v", sets, time.Until(at))
	}
	at = time.Now().Add(30 * time.Millisecond) // 40 ms wanted: slack is 20 ms, half the timeout
	arm(&at, set, 40*time.Millisecond)
	if sets != 3 {
		t.Fatalf("within half of a short timeout: %d sets", sets)
	}
}

// TestRequestContext: requests starting together share one context whose deadline is at least
// RequestTimeout away and at most a margin more; once that margin has passed, a new one is made.
// Close cancels them.
func TestRequestContext(t *testing.T) {
	s := &Server{API: ParentAPI(newFake()), Limits: Limits{RequestTimeout: 10 * time.Second}}
	if err := s.init(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := s.requestContext()
	b := s.requestContext()
	if a != b {
		t.Fatal("two requests in a row got different contexts")
	}
	d, ok := a.Deadline()
	if !ok || d.Before(start.Add(10*time.Second)) || d.After(time.Now().Add(10*time.Second+100*time.Millisecond)) {
		t.Fatalf("deadline %v after start, want 10s..10.1s", d.Sub(start))
	}
	// A deadline that would end too early for a request starting now is not reused.
	s.reqCtx.Store(&requestCtx{ctx: a, deadline: time.Now().Add(9 * time.Second)})
	if c := s.requestContext(); c == a {
		t.Fatal("a context ending too early was shared")
	}
	c := s.requestContext()
	s.Close()
	if c.Err() == nil || a.Err() == nil {
		t.Fatal("Close did not cancel request contexts")
	}
}
