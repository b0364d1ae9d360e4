package vsockrpc

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeService is a LocalService that records what it was asked and answers deterministically.
type fakeService struct {
	mu       sync.Mutex
	userData []byte
	pcrs     map[uint16][]byte
	locked   map[uint16]bool
	calls    []string
	// kmsHandles maps the handles kms_recipient gave out to whether they are still unused.
	kmsHandles map[string]bool

	// hooks for tests
	attestHook func(ctx context.Context, req LocalAttestRequest) (*AttestResult, error)
}

func newFake() *fakeService {
	return &fakeService{pcrs: map[uint16][]byte{}, locked: map[uint16]bool{}}
}

func (f *fakeService) record(name string) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
}

// fakeDocument stands in for a document: it encodes the inputs so tests can check them.
func fakeDocument(req LocalAttestRequest) []byte {
	doc := []byte("doc|" + req.Key + "|")
	doc = append(doc, req.Nonce...)
	doc = append(doc, '|')
	return append(doc, req.UserData...)
}

func (f *fakeService) Attest(ctx context.Context, req AttestRequest) (*AttestResult, error) {
	f.record("attest")
	return f.attest(ctx, LocalAttestRequest{AttestRequest: req})
}

func (f *fakeService) AttestLocal(ctx context.Context, req LocalAttestRequest) (*AttestResult, error) {
	f.record("attest_local")
	return f.attest(ctx, req)
}

func (f *fakeService) attest(ctx context.Context, req LocalAttestRequest) (*AttestResult, error) {
	if f.attestHook != nil {
		return f.attestHook(ctx, req)
	}
	if len(req.Nonce) == 0 {
		return nil, Errorf(CodeNonceRequired, "a nonce is required")
	}
	if req.Key != "hpke" && req.Key != "rsa" {
		return nil, Errorf(CodeUnknownKey, "no key %q", req.Key)
	}
	if req.UserData == nil {
		f.mu.Lock()
		req.UserData = f.userData
		f.mu.Unlock()
	}
	return &AttestResult{Document: fakeDocument(req), PublicKey: []byte("pk-" + req.Key), Key: req.Key}, nil
}

func (f *fakeService) Describe(context.Context) (*Description, error) {
	f.record("describe")
	return &Description{
		AgentVersion: "test",
		ModuleID:     "i-0123-enc0123",
		Keys: []KeyInfo{
			{Name: "hpke", Algorithm: "MLKEM768-X25519", PublicKey: make([]byte, 1216), Binding: "sha256"},
			{Name: "rsa", Algorithm: "RSA-2048", PublicKey: make([]byte, 294), Binding: "spki"},
		},
		Entropy: Entropy{Source: "nsm-hwrng", SeededBytes: 2048, KernelPool: "seeded", LastReseed: 1700000000},
		PCRs:    map[uint16][]byte{0: make([]byte, 48), 16: {1, 2, 3}},
		Nonce:   NonceLimits{Min: 1, Max: 512, Required: true},
	}, nil
}

func (f *fakeService) Health(context.Context) (*Health, error) {
	f.record("health")
	return &Health{Status: "ok"}, nil
}

func (f *fakeService) SetUserData(_ context.Context, data []byte) error {
	f.record("set_user_data")
	f.mu.Lock()
	f.userData = data
	f.mu.Unlock()
	return nil
}

func (f *fakeService) Random(_ context.Context, n int) ([]byte, error) {
	f.record("random")
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b, nil
}

func (f *fakeService) ExtendPCR(_ context.Context, index uint16, data []byte) ([]byte, error) {
	f.record("extend_pcr")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked[index] {
		return nil, &Error{Code: CodeNSMError, Message: "PCR is locked", NSMCode: "ReadOnlyIndex"}
	}
	h := sha256.Sum256(append(append([]byte{}, f.pcrs[index]...), data...))
	f.pcrs[index] = h[:]
	return h[:], nil
}

func (f *fakeService) LockPCR(_ context.Context, index uint16) error {
	f.record("lock_pcr")
	f.mu.Lock()
	f.locked[index] = true
	f.mu.Unlock()
	return nil
}

// quietLogger discards the server's log (panics are logged at Error on purpose in some tests).
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startUnix serves api on a fresh unix socket and returns its address; the server is shut down
// at the end of the test.
func startUnix(t testing.TB, api *API, lim Limits) (*Server, string) {
	t.Helper()
	addr := "unix://" + filepath.Join(t.TempDir(), "s")
	l, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{API: api, Limits: lim, Logger: quietLogger()}
	srv.init() // before Serve's goroutine: tests inspect the server's state
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return srv, addr
}

func dialT(t testing.TB, addr string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// servePipe serves srv on a pipeListener and returns a Client on one connection to it, a Client
// that never redials; both are closed at the end of the test.
func servePipe(t testing.TB, srv *Server) *Client {
	t.Helper()
	l := newPipeListener()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	nc, err := l.dial()
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(nc)
	t.Cleanup(func() { c.Close() })
	return c
}

// pipeListener is a net.Listener whose connections are net.Pipe ends.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
		return nil, io.ErrClosedPipe
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
