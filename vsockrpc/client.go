package vsockrpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// ErrClosed is returned by the methods of a Client after Close.
var ErrClosed = errors.New("vsockrpc: client closed")

// ErrConnectionLost wraps the error of a connection that broke (closed by the server, reset,
// failed write) before the response arrived.
var ErrConnectionLost = errors.New("vsockrpc: connection lost")

// Dialer holds options for dialing a Client. The zero Dialer is usable.
type Dialer struct {
	// MaxResponseSize bounds a response frame's body (default DefaultMaxResponseSize); a larger
	// frame breaks the connection.
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
		max = DefaultMaxResponseSize
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
func (c *Client) call(ctx context.Context, method string, params, out any) error {
	reused, err := c.callOnce(ctx, method, params, out)
	if err != nil && reused && c.dial != nil && retrySafe[method] && ctx.Err() == nil &&
		errors.Is(err, ErrConnectionLost) {
		_, err = c.callOnce(ctx, method, params, out)
	}
	return err
}

// callOnce makes one attempt; reused reports whether the connection had served responses before.
func (c *Client) callOnce(ctx context.Context, method string, params, out any) (reused bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	cc, err := c.conn(ctx)
	if err != nil {
		return false, err
	}
	reused = cc.served.Load()
	id := c.nextID.Add(1)
	frame, err := encodeFrame(wireRequest{V: Version, ID: id, Method: method, Params: params})
	if err != nil {
		return reused, fmt.Errorf("vsockrpc: %s: %w", method, err)
	}
	ch := make(chan reply, 1)
	if err := cc.register(id, ch); err != nil {
		putFrame(frame)
		return reused, err
	}
	cc.write(ctx, frame.Bytes()) // a failed write breaks cc, which answers ch
	putFrame(frame)
	select {
	case r := <-ch:
		if r.err != nil {
			return reused, r.err
		}
		if err := respDec.Unmarshal(r.result, out); err != nil {
			return reused, fmt.Errorf("vsockrpc: %s: malformed result: %w", method, err)
		}
		return reused, nil
	case <-ctx.Done():
		cc.unregister(id)
		return reused, ctx.Err()
	}
}

// conn returns a working connection, redialing if the last one broke.
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if err := c.cc.broken(); err == nil || c.dial == nil {
		return c.cc, nil // register reports a broken connection's error
	}
	nc, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cc = newClientConn(nc, c.maxResp)
	return c.cc, nil
}

// reply is what a call waits for: a raw result or an error.
type reply struct {
	result cbor.RawMessage
	err    error
}

// clientConn is one connection with its reader goroutine.
type clientConn struct {
	nc      net.Conn
	maxResp int
	wmu     sync.Mutex // serialises frames

	served atomic.Bool // a response has been delivered

	mu       sync.Mutex
	pending  map[uint64]chan reply
	err      error // set once when the connection breaks
	writeErr error // the first write error, reported if the reader learns nothing better
}

func newClientConn(nc net.Conn, maxResp int) *clientConn {
	cc := &clientConn{nc: nc, maxResp: maxResp, pending: map[uint64]chan reply{}}
	go cc.readLoop()
	return cc
}

func (cc *clientConn) broken() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err
}

func (cc *clientConn) register(id uint64, ch chan reply) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return cc.err
	}
	cc.pending[id] = ch
	return nil
}

func (cc *clientConn) unregister(id uint64) {
	cc.mu.Lock()
	delete(cc.pending, id)
	cc.mu.Unlock()
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
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		cc.nc.SetWriteDeadline(time.Unix(1, 0))
		close(interrupted)
	})
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

// fail breaks the connection with err (the first error wins) and answers every pending call.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	var ne net.Error
	if cc.writeErr != nil && (errors.As(err, &ne) && ne.Timeout() || !errors.As(err, new(*Error))) {
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
}

// clientReadBuffer is the read buffer of a client connection: an attest response (a ~4.7 KB
// document and a public key) arrives with one read system call and is decoded in place.
const clientReadBuffer = 8 << 10

func (cc *clientConn) readLoop() {
	br := bufio.NewReaderSize(cc.nc, clientReadBuffer)
	var buf []byte // reused: decodeResponse copies what it keeps
	for {
		body, inPlace, err := readFrameBuffered(br, &buf, cc.maxResp)
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrEmptyFrame) {
			cc.fail(fmt.Errorf("vsockrpc: bad response frame: %w", err))
			return
		}
		if err != nil {
			cc.fail(fmt.Errorf("%w: %w", ErrConnectionLost, err))
			return
		}
		id, result, perr, err := decodeResponse(body)
		if inPlace {
			br.Discard(len(body))
		}
		if err != nil {
			cc.fail(fmt.Errorf("vsockrpc: malformed response: %w", err))
			return
		}
		if id == nil { // the server gave up on the connection (busy, bad frame, ...)
			cc.fail(perr)
			return
		}
		cc.mu.Lock()
		ch, ok := cc.pending[*id]
		delete(cc.pending, *id)
		cc.mu.Unlock()
		cc.served.Store(true)
		if ok { // else the call was cancelled
			if perr != nil {
				ch <- reply{err: perr}
			} else {
				ch <- reply{result: result}
			}
		}
	}
}

// wireResponse is a response envelope as the client decodes it: raw fields, present when non-nil.
type wireResponse struct {
	V      cbor.RawMessage `cbor:"v"`
	ID     cbor.RawMessage `cbor:"id"`
	Result cbor.RawMessage `cbor:"result"`
	Error  cbor.RawMessage `cbor:"error"`
}

// decodeResponse decodes a response body: the id (nil when null) and either the raw result or the
// protocol error. err reports a malformed response.
func decodeResponse(body []byte) (id *uint64, result cbor.RawMessage, perr *Error, err error) {
	if major(body) != majorMap {
		return nil, nil, nil, errShape
	}
	var w wireResponse
	if err := respDec.Unmarshal(body, &w); err != nil {
		return nil, nil, nil, err
	}
	var v uint64
	if w.V == nil || decodeUint(w.V, &v) != nil || v != Version {
		return nil, nil, nil, fmt.Errorf("not a version %d response", Version)
	}
	switch {
	case w.ID == nil:
		return nil, nil, nil, errors.New("no id")
	case !bytes.Equal(w.ID, []byte{0xf6}):
		id = new(uint64)
		if err := decodeUint(w.ID, id); err != nil {
			return nil, nil, nil, fmt.Errorf("id: %w", err)
		}
	}
	switch {
	case (w.Result == nil) == (w.Error == nil):
		return nil, nil, nil, errors.New("want exactly one of result and error")
	case w.Error != nil:
		perr = new(Error)
		if major(w.Error) != majorMap {
			return nil, nil, nil, errors.New("error: not a map")
		}
		if err := respDec.Unmarshal(w.Error, perr); err != nil {
			return nil, nil, nil, fmt.Errorf("error: %w", err)
		}
		if perr.Code == "" {
			return nil, nil, nil, errors.New("error: no code")
		}
		return id, nil, perr, nil
	}
	if id == nil {
		return nil, nil, nil, errors.New("result with a null id")
	}
	if major(w.Result) != majorMap {
		return nil, nil, nil, errors.New("result: not a map")
	}
	return id, w.Result, nil, nil
}

// NewClient returns a Client on an established connection with the zero Dialer; see
// Dialer.NewClient.
func NewClient(nc net.Conn) *Client {
	var d Dialer
	return d.NewClient(nc)
}
