package vsockrpc

import (
	"context"
	"testing"
	"time"
)

// TestQuickMethodsDoNotQueue: with every slot of NSM-bound requests held (a slow NSM), describe,
// health and set_user_data are still answered, from their own slots, while an NSM-bound request
// (random) waits its RequestTimeout and gets busy. Before the methods had their own slots, the
// first three got busy too.
func TestQuickMethodsDoNotQueue(t *testing.T) {
	f := newFake()
	started, release := make(chan struct{}), make(chan struct{})
	f.attestHook = func(_ context.Context, req LocalAttestRequest) (*AttestResult, error) {
		close(started)
		<-release // a slow NSM: holds the slot whatever its context says
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
	c := dialT(t, addr)
	if _, err := c.Health(ctx); err != nil {
		t.Errorf("health behind a held NSM slot: %v", err)
	}
	if _, err := c.Describe(ctx); err != nil {
		t.Errorf("describe behind a held NSM slot: %v", err)
	}
	if err := c.SetUserData(ctx, []byte("x")); err != nil {
		t.Errorf("set_user_data behind a held NSM slot: %v", err)
	}
	_, err := c.Random(ctx, 8)
	wantCode(t, err, CodeBusy, "in flight")
	close(release)
	if err := <-held; err != nil {
		t.Fatalf("the request holding the slot: %v", err)
	}
}

// TestQuickMethods: the methods that never wait on the NSM are marked quick; those that call it
// are not (a method takes an NSM slot unless marked).
func TestQuickMethods(t *testing.T) {
	quick := map[string]bool{MethodDescribe: true, MethodHealth: true, MethodSetUserData: true,
		MethodAttest: false, MethodRandom: false, MethodExtendPCR: false, MethodLockPCR: false}
	for _, api := range []*API{ParentAPI(newFake()), LocalAPI(newFake())} {
		for name, m := range api.methods {
			if want, known := quick[name]; known && m.quick != want {
				t.Errorf("local=%v %s: quick %v, want %v", api.local, name, m.quick, want)
			}
		}
	}
}
