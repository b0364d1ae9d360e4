package attestedtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// agentStack is attestd in-process: the software NSM behind a real
// nsm.Session, the agent, and its local API on a unix socket.
type agentStack struct {
	dir    string // mock state
	addr   string // local API address
	root   *x509.Certificate
	pcrs   map[int][][]byte // the mock enclave's PCR0, 1, 2
	sess   *nsm.Session
	srv    *vsockrpc.Server
	ag     *agent.Agent
	client *vsockrpc.Client // dialed to addr; redials after a restart
}

// startAgent initialises a mock enclave (debug: a debug-mode one) and serves
// attestd's local API for it until the test ends.
func startAgent(t testing.TB, debug bool) *agentStack {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "attls") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	s := &agentStack{dir: filepath.Join(t.TempDir(), "mock"), addr: "unix://" + filepath.Join(sockDir, "local")}
	if err := mocknsm.Init(s.dir, mocknsm.Config{Debug: debug}); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	c, err := vsockrpc.Dial(context.Background(), s.addr)
	if err != nil {
		t.Fatal(err)
	}
	s.client = c
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.pcrs = map[int][][]byte{}
	for _, i := range []uint16{0, 1, 2} {
		s.pcrs[int(i)] = [][]byte{d.PCRs[i]}
	}
	t.Cleanup(func() { c.Close(); s.stop() })
	return s
}

// start boots the agent on the mock state and serves its local API.
func (s *agentStack) start(t testing.TB) {
	t.Helper()
	m, err := mocknsm.Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.root, err = attestation.ParseRootPEM(m.RootPEM()); err != nil {
		t.Fatal(err)
	}
	if s.sess, err = nsm.Open(nsm.Options{Device: m.Device()}); err != nil {
		t.Fatal(err)
	}
	s.ag, err = agent.New(context.Background(), agent.Config{
		NSM:            s.sess,
		Entropy:        mockenclave.Entropy(t),
		GenerateKeys:   mockenclave.Keys,
		SkipDebugCheck: true,
		Version:        "test",
		Mock:           true,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = &vsockrpc.Server{API: vsockrpc.LocalAPI(s.ag), Logger: slog.New(slog.DiscardHandler)}
	l, err := vsockrpc.Listen(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	go s.srv.Serve(l)
}

// stop shuts attestd down (the socket goes away).
func (s *agentStack) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	s.ag.Close()
}

// options are verification options trusting the mock root and pinning its PCRs.
func (s *agentStack) options() attestation.Options {
	return attestation.Options{Root: s.root, PCRs: s.pcrs}
}

func (s *agentStack) newClient(t testing.TB, mod func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Verify: s.options()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *agentStack) newServer(t testing.TB, mod func(*ServerConfig)) *Server {
	t.Helper()
	cfg := ServerConfig{Attester: s.client, Hosts: []string{"127.0.0.1", "localhost"}, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// serveHTTPS serves h over TLS with cfg on 127.0.0.1 until the test ends and
// returns the address.
func serveHTTPS(t testing.TB, cfg *tls.Config, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, TLSConfig: cfg, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(tls.NewListener(l, cfg))
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}

// appMux is the example application: /hello and the attestation endpoint.
func appMux(s *Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(WellKnownPath, s.Handler())
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the enclave\n") })
	return mux
}

// rawServer completes TLS handshakes with cert and counts the application
// bytes it receives afterwards.
type rawServer struct {
	addr     string
	appBytes atomic.Int64
	done     chan error // one per connection: the handshake's error
}

func serveCert(t testing.TB, cert *tls.Certificate) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{addr: l.Addr().String(), done: make(chan error, 16)}
	cfg := &tls.Config{Certificates: []tls.Certificate{*cert}}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				tc := tls.Server(nc, cfg)
				herr := tc.Handshake()
				n, _ := io.Copy(io.Discard, tc)
				rs.appBytes.Add(n)
				rs.done <- herr
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return rs
}

func wantErr(t testing.TB, err error, kinds ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kinds)
	}
	for _, k := range kinds {
		if !errors.Is(err, k) {
			t.Fatalf("got %v, want %v", err, k)
		}
	}
}
