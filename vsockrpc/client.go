package vsockrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by the methods of a Client after Close.
var ErrClosed = errors.New("vsockrpc: client closed")

// ErrConnectionLost wraps the error of a connection that broke (closed by the server, reset,
// failed write) before the response arrived.
var ErrConnectionLost = errors.New("vsockrpc: connection lost")

// Dialer holds options for dialing a Client. The zero Dialer is usable.
type Dialer struct {
	// MaxResponseSize bounds a response frame's body (default DefaultLocalMaxResponseSize, the
	// larger of the two APIs' limits); a larger frame breaks the connection.
	MaxResponseSize int
}

// Dial connects to addr (see Addr) with the zero Dialer.
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d Dialer
	return d.Dial(ctx, addr)
}

// Dial connects to addr (see Addr). ctx bounds the connection attempt only. The Client redials
// addr when its connection has broken (for example after the server's idle timeout). A request
// lost with a connection that had served before is sent once more on a new one if repeating it is
// harmless (attest, describe, health, random, set_user_data); otherwise, and for every other
// failure, the error is returned (ErrConnectionLost for a broken connection).
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		nc, err := dialAddr(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("vsockrpc: dial %s: %w", a, err)
		}
		return nc, nil
	}
	nc, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	c := d.newClient(nc)
	c.dial = dial
	return c, nil
}

// NewClient returns a Client on an established connection (for example one end of net.Pipe or
// a vsock connection made elsewhere). It never redials.
func (d *Dialer) NewClient(nc net.Conn) *Client { return d.newClient(nc) }

func (d *Dialer) newClient(nc net.Conn) *Client {
	max := d.MaxResponseSize
	if max <= 0 {
		max = DefaultLocalMaxResponseSize
	}
	c := &Client{maxResp: max}
	c.cc = newClientConn(nc, max)
	return c
}

// Client calls the methods of an agent. It is safe for concurrent use: calls from several
// goroutines are pipelined on one connection and matched to their responses by id. Each call's
// context bounds it; a cancelled call returns ctx.Err() at once and its late response is dropped.
// Protocol errors are returned as *Error (use errors.As or errors.Is).
type Client struct {
	dial    func(context.Context) (net.Conn, error) // nil: no redial
	maxResp int
	nextID  atomic.Uint64

	mu     sync.Mutex
	cc     *clientConn
	closed bool
}

// Close closes the connection; calls in progress fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.cc.fail(ErrClosed)
	return nil
}

// Attest asks for a document binding the agent key named key ("hpke" or "rsa") and nonce. It
// checks that the result names the requested key and holds a document and a public key; the
// document itself must be verified by the caller (package attestation).
func (c *Client) Attest(ctx context.Context, nonce []byte, key string) (*AttestResult, error) {
	return c.attest(ctx, attestParams{Nonce: nonce, Key: key})
}

// AttestLocal is Attest with application user_data (local API only).
func (c *Client) AttestLocal(ctx context.Context, req LocalAttestRequest) (*AttestResult, error) {
	return c.attest(ctx, attestParams{Nonce: req.Nonce, Key: req.Key, UserData: req.UserData})
}

func (c *Client) attest(ctx context.Context, p attestParams) (*AttestResult, error) {
	var r AttestResult
	if err := c.call(ctx, MethodAttest, p, &r); err != nil {
		return nil, err
	}
	if len(r.Document) == 0 || len(r.PublicKey) == 0 || r.Key != p.Key {
		return nil, errors.New("vsockrpc: attest: incomplete result or wrong key")
	}
	return &r, nil
}

// Describe returns the agent's description.
func (c *Client) Describe(ctx context.Context) (*Description, error) {
	var d Description
	if err := c.call(ctx, MethodDescribe, noParams{}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Health returns the agent's health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.call(ctx, MethodHealth, noParams{}, &h); err != nil {
		return nil, err
	}
	if h.Status == "" {
		return nil, errors.New("vsockrpc: health: no status")
	}
	return &h, nil
}

// SetUserData sets the user_data of later documents; empty clears it (local API only).
func (c *Client) SetUserData(ctx context.Context, data []byte) error {
	return c.call(ctx, MethodSetUserData, userDataParams{UserData: data}, &emptyResult{})
}

// Random returns n bytes from the NSM, 1 <= n <= MaxRandomSize (local API only).
func (c *Client) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 1 || n > MaxRandomSize {
		return nil, fmt.Errorf("vsockrpc: random: n = %d not in 1..%d", n, MaxRandomSize)
	}
	var r randomResult
	if err := c.call(ctx, MethodRandom, randomParams{N: uint64(n)}, &r); err != nil {
		return nil, err
	}
	if len(r.Random) != n {
		return nil, fmt.Errorf("vsockrpc: random: got %d bytes, want %d", len(r.Random), n)
	}
	return r.Random, nil
}

// ExtendPCR extends PCR index (MinUserPCR..MaxUserPCR) with data and returns its new value
// (local API only).
func (c *Client) ExtendPCR(ctx context.Context, index uint16, data []byte) ([]byte, error) {
	var r extendResult
	if err := c.call(ctx, MethodExtendPCR, extendParams{Index: uint64(index), Data: data}, &r); err != nil {
		return nil, err
	}
	if len(r.Value) == 0 {
		return nil, errors.New("vsockrpc: extend_pcr: no value")
	}
	return r.Value, nil
}

// LockPCR locks PCR index (MinUserPCR..MaxUserPCR) (local API only).
func (c *Client) LockPCR(ctx context.Context, index uint16) error {
	return c.call(ctx, MethodLockPCR, lockParams{Index: uint64(index)}, &emptyResult{})
}

// retrySafe lists the methods a Client may send again after a connection loss: repeating them
// changes nothing the caller relies on. extend_pcr and lock_pcr are not repeated.
var retrySafe = map[string]bool{
	MethodAttest: true, MethodDescribe: true, MethodHealth: true, MethodRandom: true, MethodSetUserData: true,
}

// call sends one request and decodes its result into out. If the request is lost with a
// connection that had already served responses (typically one the server closed as idle just as
// the request went out) and the method is retry-safe, it is sent once more on a new connection.
func (c *Client) call(ctx context.Context, method string, params encoder, out resultDecoder) error {
	reused, err := c.callOnce(ctx, method, params, out)
	if err != nil && reused && c.dial != nil && retrySafe[method] && ctx.Err() == nil &&
		errors.Is(err, ErrConnectionLost) {
		_, err = c.callOnce(ctx, method, params, out)
	}
	return err
}

// callOnce makes one attempt; reused reports whether the connection had served responses before.
func (c *Client) callOnce(ctx context.Context, method string, params encoder, out resultDecoder) (reused bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	cc, err := c.conn(ctx, !retrySafe[method])
	if err != nil {
		return false, err
	}
	reused = cc.served.Load()
	id := c.nextID.Add(1)
	frame, err := encodeFrame(wireRequest{V: Version, ID: id, Method: method, Params: params})
	if err != nil {
		return reused, fmt.Errorf("vsockrpc: %s: %w", method, err)
	}
	ch := make(chan reply, 2) // a reader's turn and the connection's failure may both arrive
	lead, err := cc.register(id, ch)
	if err != nil {
		putFrame(frame)
		return reused, err
	}
	cc.write(ctx, frame.Bytes()) // a failed write breaks cc, which answers ch
	putFrame(frame)
	t := target{method: method, out: out}
	if lead {
		return reused, cc.lead(ctx, id, t)
	}
	return reused, cc.wait(ctx, id, ch, t)
}

// target is where a call's result goes.
type target struct {
	method string
	out    resultDecoder
}

// decode decodes a result into t.out.
func (t target) decode(result []byte) error {
	if err := t.out.decodeResult(result); err != nil {
		return fmt.Errorf("vsockrpc: %s: malformed result: %w", t.method, err)
	}
	return nil
}

// conn returns a working connection, redialing if the last one broke. With probe, a connection
// nobody is using is first checked for the server having closed it (a system call). A call that is
// safe to repeat skips the check: on such a connection it fails with ErrConnectionLost and is sent
// again on a new one (see call), which costs less than checking before every call.
func (c *Client) conn(ctx context.Context, probe bool) (*clientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.dial == nil {
		return c.cc, nil // register reports a broken connection's error
	}
	if c.cc.broken() == nil && !(probe && c.cc.closedWhileIdle()) {
		return c.cc, nil
	}
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cc = newClientConn(nc, c.maxResp)
	return c.cc, nil
}

// reply is what a call waits for: a raw result, an error, or its turn to read.
type reply struct {
	result []byte
	err    error
	turn   bool // the caller now reads the connection (see clientConn)
}

// clientConn is one connection. Callers take turns reading it: one waiting call at a time holds
// the reader's turn, hands the responses it reads for other calls to them, and on getting its own
// passes the turn to another waiting call. A lone caller thus writes its request and reads its
// response itself, with no hand-off between goroutines (on an idle machine each hand-off wakes a
// sleeping CPU, which costs more than the rest of the round trip). The responses still owed to
// calls that gave up are read by a short-lived goroutine when no call is left to read them, so
// that a server writing them never blocks on a full socket (or an unbuffered pipe).
type clientConn struct {
	nc      net.Conn
	maxResp int
	wmu     sync.Mutex // serialises frames

	served atomic.Bool // a response has been delivered

	mu        sync.Mutex
	pending   map[uint64]chan reply // calls waiting for their response
	abandoned map[uint64]struct{}   // calls that gave up before their response was read
	reading   bool                  // the reader's turn is held (or being handed over)
	err       error                 // set once when the connection breaks
	writeErr  error                 // the first write error, reported if the reader learns nothing better

	fr frameReader // used only by the holder of the reader's turn
}

func newClientConn(nc net.Conn, maxResp int) *clientConn {
	return &clientConn{nc: nc, maxResp: maxResp, pending: map[uint64]chan reply{},
		abandoned: map[uint64]struct{}{}, fr: frameReader{r: nc, max: maxResp}}
}

func (cc *clientConn) broken() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

// closedWhileIdle reports whether the server closed the connection while no call was on it
// (typically at its idle timeout), and if so breaks it. Nobody reads an idle connection, so this
// looks, without reading, for the end of the stream.
func (cc *clientConn) closedWhileIdle() bool {
	cc.mu.Lock()
	idle := !cc.reading && len(cc.pending) == 0
	cc.mu.Unlock()
	if !idle || !peerClosed(cc.nc) {
		return false
	}
	cc.fail(fmt.Errorf("%w: closed by the server", ErrConnectionLost))
	return true
}

// peerClosed reports whether the peer has closed nc (or it has failed), peeking without
// blocking. It reports false for a connection that does not expose its socket.
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = err == nil && n == 0 || err != nil && err != unix.EAGAIN && err != unix.EINTR
	})
	return closed
}

// register adds a call; lead reports that it took the reader's turn, nobody else holding it.
func (cc *clientConn) register(id uint64, ch chan reply) (lead bool, err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return false, cc.err
	}
	cc.pending[id] = ch
	lead = !cc.reading
	cc.reading = true
	return lead, nil
}

// passTurn ends a turn: it goes to a waiting call, else to a drainer while responses are owed to
// calls that gave up, else nobody reads. cc.mu is held.
func (cc *clientConn) passTurn() {
	if cc.err != nil {
		return
	}
	for _, ch := range cc.pending {
		ch <- reply{turn: true}
		return
	}
	if len(cc.abandoned) > 0 {
		go cc.drain()
		return
	}
	cc.reading = false
}

// giveUp removes call id, which gave up (its context ended) before its response was read.
// cc.mu is held.
func (cc *clientConn) giveUp(id uint64) {
	if _, ok := cc.pending[id]; ok {
		delete(cc.pending, id)
		cc.abandoned[id] = struct{}{}
	}
}

// wait waits for the response to call id and decodes it into t, taking the reader's turn if it
// is handed over.
func (cc *clientConn) wait(ctx context.Context, id uint64, ch chan reply, t target) error {
	select {
	case r := <-ch:
		switch {
		case r.turn:
			return cc.lead(ctx, id, t)
		case r.err != nil:
			return r.err
		}
		return t.decode(r.result)
	case <-ctx.Done():
		cc.mu.Lock()
		defer cc.mu.Unlock()
		select {
		case r := <-ch:
			if !r.turn { // answered after all; the answer is dropped
				return ctx.Err()
			}
			cc.giveUp(id)
			cc.passTurn() // handed over as the call gave up: pass it on
		default:
			cc.giveUp(id)
		}
		return ctx.Err()
	}
}

// lead reads responses, holding the reader's turn, until the one for call id arrives (it is
// decoded into t straight from the read buffer), the connection breaks or ctx ends. Responses for
// other calls go to them.
func (cc *clientConn) lead(ctx context.Context, id uint64, t target) error {
	stop, interrupted := interrupt(ctx, cc.nc.SetReadDeadline)
	// leave ends the turn. A deadline set by ctx's end is undone first (the next reader must not
	// inherit it), unless a failed write set one to collect the server's last word.
	leave := func(answered bool) {
		if !stop() {
			<-interrupted
			cc.mu.Lock()
			keep := cc.writeErr != nil
			cc.mu.Unlock()
			if !keep {
				cc.nc.SetReadDeadline(time.Time{})
			}
		}
		cc.mu.Lock()
		if answered {
			delete(cc.pending, id)
		} else {
			cc.giveUp(id)
		}
		cc.passTurn()
		cc.mu.Unlock()
	}
	for {
		rid, r, err := cc.readOne()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil && isTimeout(err) {
				leave(false) // what was read of a frame stays in cc.fr for the next reader
				return cerr
			}
			err = cc.fail(err)
			leave(true)
			return err
		}
		if rid == id {
			if r.err == nil {
				r.err = t.decode(r.result) // before the turn passes: r.result is in cc.fr's buffer
			}
			leave(true)
			return r.err
		}
		cc.deliver(rid, r)
	}
}

// drain holds the reader's turn while responses are owed to calls that gave up, delivering any
// other response it reads, then passes the turn on.
func (cc *clientConn) drain() {
	for {
		cc.mu.Lock()
		if cc.err != nil || len(cc.abandoned) == 0 {
			cc.passTurn()
			cc.mu.Unlock()
			return
		}
		cc.mu.Unlock()
		rid, r, err := cc.readOne()
		if err != nil {
			cc.fail(err)
			return
		}
		cc.deliver(rid, r)
	}
}

// readOne reads the next response; err is a broken connection's error (not yet passed to fail),
// or the read deadline's timeout. The result is valid until the next read.
func (cc *clientConn) readOne() (id uint64, r reply, err error) {
	if err := cc.broken(); err != nil {
		return 0, reply{}, err
	}
	body, err := cc.fr.next()
	if err != nil {
		if isTimeout(err) {
			return 0, reply{}, err
		}
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrEmptyFrame) {
			return 0, reply{}, fmt.Errorf("vsockrpc: bad response frame: %w", err)
		}
		return 0, reply{}, fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	rid, hasID, result, perr, err := decodeResponse(body)
	if err != nil {
		return 0, reply{}, fmt.Errorf("vsockrpc: malformed response: %w", err)
	}
	if !hasID { // the server gave up on the connection (busy, bad frame, ...)
		return 0, reply{}, perr
	}
	cc.served.Store(true)
	if perr != nil {
		return rid, reply{err: perr}, nil
	}
	return rid, reply{result: result}, nil
}

// deliver hands the response for call id to it, or drops it if that call gave up.
func (cc *clientConn) deliver(id uint64, r reply) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.abandoned, id)
	if ch, ok := cc.pending[id]; ok {
		delete(cc.pending, id)
		r.result = bytes.Clone(r.result) // the read buffer is reused by the next read
		ch <- r
	}
}

// interrupt arranges for ctx's end to interrupt blocked I/O by moving its deadline (set) into the
// past. stop undoes that, reporting false if it has already happened, in which case the caller
// waits for interrupted to be closed before touching the deadline again. A context that can never
// end costs nothing.
func interrupt(ctx context.Context, set func(time.Time) error) (stop func() bool, interrupted chan struct{}) {
	if ctx.Done() == nil {
		return func() bool { return true }, nil
	}
	interrupted = make(chan struct{})
	stop = context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(interrupted)
	})
	return stop, interrupted
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// write sends one frame. The context's deadline bounds it and cancelling the context interrupts
// it. On failure the stream may hold a partial frame, so the connection is abandoned: the reader
// gets a short grace to collect a last error the server may have sent (such as busy), then fails
// every pending call.
func (cc *clientConn) write(ctx context.Context, frame []byte) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	broken := cc.err != nil || cc.writeErr != nil
	cc.mu.Unlock()
	if broken {
		return
	}
	deadline, _ := ctx.Deadline()
	cc.nc.SetWriteDeadline(deadline)
	stop, interrupted := interrupt(ctx, cc.nc.SetWriteDeadline)
	_, err := cc.nc.Write(frame)
	if !stop() {
		<-interrupted // let it finish, or its deadline could hit the next write
	}
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	} else {
		err = fmt.Errorf("%w: write: %w", ErrConnectionLost, err)
	}
	cc.mu.Lock()
	cc.writeErr = err
	cc.mu.Unlock()
	cc.nc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
}

// fail breaks the connection with err (the first error wins), answers every pending call and
// returns the error the connection broke with.
func (cc *clientConn) fail(err error) error {
	cc.mu.Lock()
	if cc.err != nil {
		err = cc.err
		cc.mu.Unlock()
		return err
	}
	if cc.writeErr != nil && (isTimeout(err) || !errors.As(err, new(*Error))) {
		err = cc.writeErr
	}
	cc.err = err
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	cc.nc.Close()
	for _, ch := range pending {
		ch <- reply{err: err}
	}
	return err
}

// NewClient returns a Client on an established connection with the zero Dialer; see
// Dialer.NewClient.
func NewClient(nc net.Conn) *Client {
	var d Dialer
	return d.NewClient(nc)
}
