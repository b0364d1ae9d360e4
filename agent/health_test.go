package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/testlog"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

func health(t *testing.T, a *Agent) *vsockrpc.Health {
	t.Helper()
	h, err := a.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHealthReflectsAttestations: health is ok until the NSM fails an attestation, reports
// nsm_failing (with what and when) while failures follow, and ok again after a success. Requests
// refused before the NSM do not count.
func TestHealthReflectsAttestations(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	ctx := context.Background()
	if h := health(t, a); h.Status != vsockrpc.HealthOK || h.Attest != (vsockrpc.AttestHealth{}) {
		t.Fatalf("at start: %+v", h)
	}
	f.attErr = []error{&nsm.Error{Op: "Attestation", Code: nsm.InternalError}, &nsm.Error{Op: "Attestation", Code: nsm.InternalError}}
	for i := uint64(1); i <= 2; i++ {
		if _, err := a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: "rsa"}); err == nil {
			t.Fatal("attest succeeded despite the fault")
		}
		h := health(t, a)
		if h.Status != vsockrpc.HealthNSMFailing || h.Attest.Failed != i || h.Attest.ConsecutiveFailures != i ||
			h.Attest.Succeeded != 0 || h.Attest.LastFailure == 0 || h.Attest.LastSuccess != 0 ||
			!strings.Contains(h.Attest.LastError, "InternalError") {
			t.Errorf("after %d failures: %+v", i, h)
		}
	}
	// Refused before the NSM: no NSM outcome.
	a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: "nope"})
	a.Attest(ctx, vsockrpc.AttestRequest{Key: "rsa"})
	if h := health(t, a); h.Attest.Failed != 2 || h.Status != vsockrpc.HealthNSMFailing {
		t.Errorf("after refused requests: %+v", h)
	}
	if _, err := a.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: "hpke"}}); err != nil {
		t.Fatal(err)
	}
	h := health(t, a)
	if h.Status != vsockrpc.HealthOK || h.Attest.Succeeded != 1 || h.Attest.Failed != 2 || h.Attest.ConsecutiveFailures != 0 ||
		h.Attest.LastSuccess == 0 || h.Attest.LastError == "" {
		t.Errorf("after a success: %+v", h)
	}
}

// TestHealthWithInjectedFaults: through the real NSM session on the mock NSM and the parent API,
// every injected attestation fault makes health nsm_failing, and a success makes it ok again.
func TestHealthWithInjectedFaults(t *testing.T) {
	s := startStack(t, nil)
	parent := dial(t, s.parent)
	ctx := context.Background()
	for _, fault := range []mocknsm.Fault{
		{Error: nsm.InternalError},
		{Errno: 5 /* EIO */},
		{Malformed: mocknsm.Garbage},
	} {
		if err := s.mock.SetFaults(mocknsm.Faults{"Attestation": fault}); err != nil {
			t.Fatal(err)
		}
		if _, err := parent.Attest(ctx, []byte("n"), "rsa"); err == nil {
			t.Fatalf("fault %+v: attest succeeded", fault)
		}
		h, err := parent.Health(ctx)
		if err != nil || h.Status != vsockrpc.HealthNSMFailing || h.Attest.ConsecutiveFailures != 1 || h.Attest.LastError == "" {
			t.Errorf("fault %+v: health %+v, %v", fault, h, err)
		}
		if err := s.mock.SetFaults(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := parent.Attest(ctx, []byte("n"), "rsa"); err != nil {
			t.Fatal(err)
		}
		if h, err := parent.Health(ctx); err != nil || h.Status != vsockrpc.HealthOK {
			t.Errorf("after fault %+v cleared: health %+v, %v", fault, h, err)
		}
	}
}

// TestHealthAndDescribeDoNotQueueBehindNSM: a slow NSM (blocked) holds one attest and every other
// request slot fills with attests waiting for it; health and describe are still answered at once,
// from their own slots.
func TestHealthAndDescribeDoNotQueueBehindNSM(t *testing.T) {
	logs := &testlog.Buffer{}
	a, f, _ := newTestAgent(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f.block = make(chan struct{})
	sockDir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	addr := "unix://" + filepath.Join(sockDir, "p")
	l, err := vsockrpc.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	// RequestTimeout only bounds how long the test takes to fail without the fix (busy).
	srv := &vsockrpc.Server{API: vsockrpc.ParentAPI(a), Logger: slog.New(slog.DiscardHandler),
		Limits: vsockrpc.Limits{RequestTimeout: 5 * time.Second}}
	go srv.Serve(l)
	defer srv.Close()

	ctx := context.Background()
	var wg sync.WaitGroup
	for range vsockrpc.DefaultMaxInFlight + 1 { // one more than there are slots
		c := dial(t, addr)
		wg.Go(func() { c.Attest(ctx, []byte("n"), "rsa") })
	}
	// Every slot is taken once DefaultMaxInFlight attests reached the agent (it logs each).
	for strings.Count(logs.String(), `"msg":"attest"`) < vsockrpc.DefaultMaxInFlight || f.inFlight.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	c := dial(t, addr)
	h, err := c.Health(ctx)
	if err != nil || h.Status != vsockrpc.HealthOK {
		t.Errorf("health behind a slow NSM: %+v, %v", h, err)
	}
	if _, err := c.Describe(ctx); err != nil {
		t.Errorf("describe behind a slow NSM: %v", err)
	}
	close(f.block)
	wg.Wait()
	if h, err := c.Health(ctx); err != nil || h.Attest.Succeeded == 0 {
		t.Errorf("health after the NSM answered: %+v, %v", h, err)
	}
	if _, err := c.Attest(ctx, []byte("n"), "rsa"); err != nil {
		t.Errorf("attest after: %v", err)
	}
}
