// Package mockenclave is the test set-up shared by the tests that run attestd's pieces on the
// software NSM: a mock enclave behind a real nsm.Session and the root its documents chain to
// (New), the entropy configuration of an agent on it (Entropy), one key set for a test binary
// (Keys), and a vsockrpc server on a unix socket short enough for the kernel's limit (Serve).
//
// It is for tests only, and does not import package agent, so agent's own tests can use it; the
// caller starts the agent (or its own fake) with these pieces. Everything it starts stops when
// the test ends.
package mockenclave

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// Enclave is a mock enclave initialised for one test.
type Enclave struct {
	Dir     string            // the mock's state directory (mocknsm.Init)
	Mock    *mocknsm.NSM      // the software NSM, for fault injection (SetFaults)
	Session *nsm.Session      // a session on Mock; closed when the test ends
	Root    *x509.Certificate // the mock PKI's root, which its documents chain to
}

// New initialises a mock enclave described by cfg in a temporary directory and opens a
// session on its software NSM.
func New(t testing.TB, cfg mocknsm.Config) *Enclave {
	t.Helper()
	e := &Enclave{Dir: filepath.Join(t.TempDir(), "mock")}
	if err := mocknsm.Init(e.Dir, cfg); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.Mock, err = mocknsm.Open(e.Dir); err != nil {
		t.Fatal(err)
	}
	if e.Root, err = attestation.ParseRootPEM(e.Mock.RootPEM()); err != nil {
		t.Fatal(err)
	}
	if e.Session, err = nsm.Open(nsm.Options{Device: e.Mock.Device()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Session.Close() }) // idempotent: an agent may have closed it
	return e
}

// PCR returns the value of PCR i.
func (e *Enclave) PCR(t testing.TB, i uint16) []byte {
	t.Helper()
	p, err := e.Session.DescribePCR(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	return p.Value
}

// Entropy is the entropy configuration of an agent on the software NSM, as attestd's
// --nsm mock:DIR sets it up: the kernel pool untouched, the hwrng gate relaxed, an empty sysfs.
func Entropy(t testing.TB) entropy.Config {
	return entropy.Config{NoSinkReason: "software NSM", SysfsRoot: t.TempDir(), SkipHWRNGCheck: true,
		Ready: func() error { return nil }}
}

var keySet = sync.OnceValues(func() (*keys.Set, error) { return keys.Generate(keys.Config{}) })

// Keys is an agent.Config.GenerateKeys that generates the default key set once per test
// binary (RSA generation is slow under -race) and any other configuration afresh.
func Keys(c keys.Config) (*keys.Set, error) {
	if c != (keys.Config{}) {
		return keys.Generate(c)
	}
	return keySet()
}

// Serve serves srv (its API set; a nil Logger discards) on a unix socket named name in a fresh
// short directory, and returns the socket's address ("unix://..."). When the test ends it
// shuts the server down and removes the directory; register the cleanup of what srv serves
// (an agent's Close) before calling Serve, so that it runs after the shutdown.
func Serve(t testing.TB, srv *vsockrpc.Server, name string) string {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "mockenclave")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := "unix://" + filepath.Join(dir, name)
	l, err := vsockrpc.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.DiscardHandler)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return addr
}
