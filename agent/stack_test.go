package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/leaktest"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/vsockrpc"
	"github.com/fxamacker/cbor/v2"
)

// stack is the whole agent in-process: the software NSM behind a real
// nsm.Session, the Agent, and the parent and local servers on unix sockets.
type stack struct {
	mock          *mocknsm.NSM
	agent         *Agent
	root          *attestation.Options // the mock root, any PCRs
	parent, local string               // socket addresses
	parentSrv     *vsockrpc.Server
	localSrv      *vsockrpc.Server
}

func startStack(t testing.TB, mod func(*Config)) *stack {
	t.Helper()
	enc := mockenclave.New(t, mocknsm.Config{})
	cfg := Config{
		NSM:          enc.Session,
		Entropy:      mockenclave.Entropy(t),
		GenerateKeys: cachedKeys,
		KMS:          KMSConfig{GenerateKey: cachedRSAKey}, // tests that need fresh keys set KMS
		Version:      "test",
		Mock:         true,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() }) // after both servers shut down
	s := &stack{mock: enc.Mock, agent: a, root: &attestation.Options{Root: enc.Root, AnyPCRs: true}}
	s.parentSrv = &vsockrpc.Server{API: vsockrpc.ParentAPI(a), Limits: vsockrpc.Limits{ReadTimeout: 2 * time.Second}}
	s.localSrv = &vsockrpc.Server{API: vsockrpc.LocalAPI(a)}
	s.parent = mockenclave.Serve(t, s.parentSrv, "p")
	s.local = mockenclave.Serve(t, s.localSrv, "l")
	return s
}

func dial(t testing.TB, addr string) *vsockrpc.Client {
	t.Helper()
	c, err := vsockrpc.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// verify checks a result the way attest fetch does: the document against the
// mock root with the nonce, then the key binding.
func (s *stack) verify(t testing.TB, res *vsockrpc.AttestResult, nonce []byte) *attestation.Document {
	t.Helper()
	opts := *s.root
	opts.Nonce = nonce
	k, err := relyingparty.CheckResult(res, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k.Document()
}

// rawCall sends one frame body on a fresh connection and returns the decoded
// response (or the read error).
func rawCall(t *testing.T, addr string, frame []byte) (map[string]any, error) {
	t.Helper()
	a, _ := vsockrpc.ParseAddr(addr)
	c, err := net.Dial("unix", a.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return nil, err
	}
	body, err := vsockrpc.ReadFrame(c, 1<<20)
	if err != nil {
		return nil, err
	}
	var resp map[string]any
	if err := cbor.Unmarshal(body, &resp); err != nil {
		t.Fatalf("response is not CBOR: %v", err)
	}
	// The server closes the connection after a bad frame; a good one stays open.
	return resp, nil
}

func request(t *testing.T, method string, params map[string]any) []byte {
	t.Helper()
	req := map[string]any{"v": vsockrpc.Version, "id": uint64(1), "method": method}
	if params != nil {
		req["params"] = params
	}
	body, err := cbor.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func errorCode(t *testing.T, resp map[string]any) string {
	t.Helper()
	e, ok := resp["error"].(map[any]any)
	if !ok {
		t.Fatalf("response has no error: %v", resp)
	}
	code, _ := e["code"].(string)
	return code
}

func TestEndToEndDocumentsVerify(t *testing.T) {
	s := startStack(t, func(c *Config) { c.UserData = []byte("configured claims") })
	parent, local := dial(t, s.parent), dial(t, s.local)
	ctx := context.Background()
	for _, key := range []string{"hpke", "rsa"} {
		nonce := []byte("a fresh nonce for " + key)
		res, err := parent.Attest(ctx, nonce, key)
		if err != nil {
			t.Fatal(err)
		}
		doc := s.verify(t, res, nonce)
		if string(doc.UserData) != "configured claims" || len(doc.PCRs) != 16 {
			t.Errorf("%s: user_data %q, %d PCRs", key, doc.UserData, len(doc.PCRs))
		}
	}
	// An in-enclave app sets user_data: the parent's next document carries it.
	if err := local.SetUserData(ctx, []byte("app v2")); err != nil {
		t.Fatal(err)
	}
	res, err := parent.Attest(ctx, []byte("n2"), "rsa")
	if err != nil {
		t.Fatal(err)
	}
	if doc := s.verify(t, res, []byte("n2")); string(doc.UserData) != "app v2" {
		t.Errorf("user_data = %q", doc.UserData)
	}
	// The local API may ask without a nonce and with its own user_data.
	res, err = local.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: "rsa"}, UserData: []byte("once")})
	if err != nil {
		t.Fatal(err)
	}
	if doc := s.verify(t, res, nil); string(doc.UserData) != "once" || doc.Nonce != nil {
		t.Errorf("local document: user_data %q, nonce %x", doc.UserData, doc.Nonce)
	}
	// describe reports what the documents carry.
	d, err := parent.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts := *s.root
	opts.AnyPCRs, opts.PCRs = false, map[int][][]byte{}
	for i, v := range d.PCRs {
		opts.PCRs[int(i)] = [][]byte{v}
	}
	if _, err := attestation.Verify(res.Document, opts); err != nil {
		t.Errorf("document does not match describe's PCRs: %v", err)
	}
}

func TestParentCannotChooseKeyOrUserData(t *testing.T) {
	s := startStack(t, nil)
	for _, c := range []struct {
		name, addr, method string
		params             map[string]any
		code               string
	}{
		{"public_key", s.parent, "attest", map[string]any{"nonce": []byte("n"), "key": "rsa", "public_key": []byte("parent key")}, vsockrpc.CodeForbiddenField},
		{"user_data", s.parent, "attest", map[string]any{"nonce": []byte("n"), "key": "rsa", "user_data": []byte("parent data")}, vsockrpc.CodeForbiddenField},
		{"both", s.parent, "attest", map[string]any{"nonce": []byte("n"), "key": "rsa", "public_key": []byte("k"), "user_data": []byte("u")}, vsockrpc.CodeForbiddenField},
		{"key as bytes", s.parent, "attest", map[string]any{"nonce": []byte("n"), "key": []byte("rsa")}, vsockrpc.CodeBadRequest},
		{"unknown key", s.parent, "attest", map[string]any{"nonce": []byte("n"), "key": "parent"}, vsockrpc.CodeUnknownKey},
		{"set_user_data", s.parent, "set_user_data", map[string]any{"user_data": []byte("x")}, vsockrpc.CodeUnknownMethod},
		{"extend_pcr", s.parent, "extend_pcr", map[string]any{"index": 16, "data": []byte("x")}, vsockrpc.CodeUnknownMethod},
		{"random", s.parent, "random", map[string]any{"n": 16}, vsockrpc.CodeUnknownMethod},
		{"local public_key", s.local, "attest", map[string]any{"key": "rsa", "public_key": []byte("k")}, vsockrpc.CodeForbiddenField},
	} {
		resp, err := rawCall(t, c.addr, request(t, c.method, c.params))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := errorCode(t, resp); got != c.code {
			t.Errorf("%s: code %q, want %q", c.name, got, c.code)
		}
	}
}

func TestNonceErrors(t *testing.T) {
	s := startStack(t, func(c *Config) { c.NonceMax = 64 })
	parent := dial(t, s.parent)
	for _, c := range []struct {
		n    int
		code string
	}{{0, vsockrpc.CodeNonceRequired}, {65, vsockrpc.CodeNonceTooLarge}, {513, vsockrpc.CodeNonceTooLarge}, {100000, ""}} {
		_, err := parent.Attest(context.Background(), make([]byte, c.n), "rsa")
		var e *vsockrpc.Error
		if c.code == "" { // over the frame limit: the client or server refuses it
			if err == nil {
				t.Errorf("%d-byte nonce accepted", c.n)
			}
			continue
		}
		if !errors.As(err, &e) || e.Code != c.code {
			t.Errorf("%d-byte nonce: %v, want %s", c.n, err, c.code)
		} else if e.Message == "" {
			t.Errorf("%d-byte nonce: no message", c.n)
		}
	}
	// Raw: a nonce that is not a byte string, and an empty one.
	for name, nonce := range map[string]any{"text": "abc", "int": 5, "empty": []byte{}} {
		resp, err := rawCall(t, s.parent, request(t, "attest", map[string]any{"nonce": nonce, "key": "rsa"}))
		if err != nil {
			t.Fatal(err)
		}
		want := vsockrpc.CodeBadRequest
		if name == "empty" {
			want = vsockrpc.CodeNonceRequired
		}
		if got := errorCode(t, resp); got != want {
			t.Errorf("%s nonce: %s, want %s", name, got, want)
		}
	}
}

// TestBadFramesDoNotDisturbOthers sends malformed, truncated and oversized
// frames while a well-behaved client keeps attesting.
func TestBadFramesDoNotDisturbOthers(t *testing.T) {
	s := startStack(t, nil)
	good := dial(t, s.parent)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				if n == 0 {
					done <- errors.New("no request completed")
				}
				done <- nil
				return
			default:
			}
			nonce := []byte{byte(n), byte(n >> 8), 1}
			res, err := good.Attest(context.Background(), nonce, "hpke")
			if err != nil {
				done <- err
				return
			}
			opts := *s.root
			opts.Nonce = nonce
			if _, err := attestation.Verify(res.Document, opts); err != nil {
				done <- err
				return
			}
			n++
		}
	}()

	valid := request(t, "health", nil)
	body := valid[4:]
	withLen := func(n uint32, b []byte) []byte { return append(binary.BigEndian.AppendUint32(nil, n), b...) }
	wrongVersion, _ := cbor.Marshal(map[string]any{"v": 99, "id": uint64(1), "method": "health"})
	cases := []struct {
		name  string
		bytes []byte
		code  string // "" : the server may just close
	}{
		{"not CBOR", withLen(4, []byte{0xff, 0xff, 0xff, 0xff}), vsockrpc.CodeBadRequest},
		{"CBOR but not a request", withLen(1, []byte{0x01}), vsockrpc.CodeBadRequest},
		{"trailing bytes", withLen(uint32(len(body)+1), append(append([]byte{}, body...), 0x00)), vsockrpc.CodeBadRequest},
		{"oversized length", withLen(0xffffffff, nil), vsockrpc.CodeFrameTooLarge},
		{"just over the limit", withLen(vsockrpc.DefaultMaxRequestSize+1, nil), vsockrpc.CodeFrameTooLarge},
		{"empty frame", withLen(0, nil), vsockrpc.CodeBadRequest},
		{"truncated body", withLen(100, body[:10]), ""},
		{"truncated header", []byte{0, 0}, ""},
		{"wrong version", withLen(uint32(len(wrongVersion)), wrongVersion), vsockrpc.CodeUnsupportedVersion},
	}

	for range 3 {
		for _, c := range cases {
			a, _ := vsockrpc.ParseAddr(s.parent)
			conn, err := net.Dial("unix", a.Path)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			conn.Write(c.bytes)
			if c.code == "" {
				// Truncated: half-close; the server must answer or close, not hang.
				conn.(*net.UnixConn).CloseWrite()
			}
			b, err := vsockrpc.ReadFrame(conn, 1<<20)
			if c.code != "" {
				var resp map[string]any
				if err != nil {
					t.Errorf("%s: no error response: %v", c.name, err)
				} else if cbor.Unmarshal(b, &resp) != nil || errorCode(t, resp) != c.code {
					t.Errorf("%s: response %v, want %s", c.name, resp, c.code)
				}
				// Then the connection is closed (a well-framed request of another
				// version may leave it open).
				if c.code == vsockrpc.CodeUnsupportedVersion {
					conn.Close()
					continue
				}
				if _, err := vsockrpc.ReadFrame(conn, 1<<20); !errors.Is(err, io.EOF) {
					t.Errorf("%s: connection not closed after the error: %v", c.name, err)
				}
			} else if err == nil {
				var resp map[string]any
				cbor.Unmarshal(b, &resp)
				if _, ok := resp["error"]; !ok {
					t.Errorf("%s: a truncated frame got a result: %v", c.name, resp)
				}
			}
			conn.Close()
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the well-behaved client was disturbed: %v", err)
	}
}

func TestInjectedFaultsAreTyped(t *testing.T) {
	s := startStack(t, nil)
	parent := dial(t, s.parent)
	ctx := context.Background()
	for _, c := range []struct {
		fault         mocknsm.Fault
		code, nsmCode string
	}{
		{mocknsm.Fault{Error: nsm.InternalError}, vsockrpc.CodeNSMError, "InternalError"},
		{mocknsm.Fault{Error: nsm.InvalidArgument}, vsockrpc.CodeNSMError, "InvalidArgument"},
		{mocknsm.Fault{Errno: 5 /* EIO */}, vsockrpc.CodeUnavailable, ""},
		{mocknsm.Fault{Errno: 12 /* ENOMEM */}, vsockrpc.CodeUnavailable, ""},
		{mocknsm.Fault{Malformed: mocknsm.Garbage}, vsockrpc.CodeUnavailable, ""},
		{mocknsm.Fault{Malformed: mocknsm.Truncated}, vsockrpc.CodeUnavailable, ""},
		{mocknsm.Fault{Malformed: mocknsm.WrongVariant}, vsockrpc.CodeUnavailable, ""},
	} {
		if err := s.mock.SetFaults(mocknsm.Faults{"Attestation": c.fault}); err != nil {
			t.Fatal(err)
		}
		_, err := parent.Attest(ctx, []byte("n"), "rsa")
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != c.code || e.NSMCode != c.nsmCode {
			t.Errorf("fault %+v: err = %v, want %s/%s", c.fault, err, c.code, c.nsmCode)
		}
		// Other methods and, once the fault is gone, attest keep working.
		if _, err := parent.Health(ctx); err != nil {
			t.Errorf("health during fault %+v: %v", c.fault, err)
		}
		if err := s.mock.SetFaults(nil); err != nil {
			t.Fatal(err)
		}
		res, err := parent.Attest(ctx, []byte("n"), "rsa")
		if err != nil {
			t.Fatalf("after fault %+v: %v", c.fault, err)
		}
		s.verify(t, res, []byte("n"))
	}
}

// TestNoLeakAfter10000Requests sends 10,000 requests over connections that
// come and go, then checks that goroutines and file descriptors are back to
// where they started.
func TestNoLeakAfter10000Requests(t *testing.T) {
	s := startStack(t, nil)
	ctx := context.Background()
	// Warm up: one connection of each kind, so lazily started goroutines exist.
	warm := dial(t, s.parent)
	if _, err := warm.Attest(ctx, []byte("warm"), "rsa"); err != nil {
		t.Fatal(err)
	}
	warm.Close()
	time.Sleep(50 * time.Millisecond)
	g0, fd0 := runtime.NumGoroutine(), leaktest.FDs(t)

	const workers, total, perConn = 8, 10000, 250
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			var c *vsockrpc.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := range total / workers {
				if i%perConn == 0 {
					if c != nil {
						c.Close()
					}
					var err error
					if c, err = vsockrpc.Dial(ctx, s.parent); err != nil {
						errc <- err
						return
					}
				}
				var err error
				// A quarter are attestations (the NSM signs each, serialised),
				// the rest exercise the same connection and dispatch paths.
				switch i % 8 {
				case 0:
					_, err = c.Attest(ctx, []byte{byte(w), byte(i), byte(i >> 8)}, "hpke")
				case 4:
					_, err = c.Attest(ctx, []byte{byte(w), byte(i), byte(i >> 8)}, "rsa")
				case 2:
					_, err = c.Describe(ctx)
				default:
					_, err = c.Health(ctx)
				}
				if err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	// The server notices closed connections asynchronously: wait (bounded).
	var g, fd int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if g, fd = runtime.NumGoroutine(), leaktest.FDs(t); g <= g0 && fd <= fd0 {
			return
		}
	}
	t.Fatalf("after 10,000 requests: %d goroutines (was %d), %d fds (was %d)", g, g0, fd, fd0)
}
