package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/kmsenvelope"
	"github.com/attestd/attestd/vsockrpc"
)

// fakeClock is a settable clock for handle expiry.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func build(t *testing.T, spki, plaintext []byte) []byte {
	t.Helper()
	env, err := kmsenvelope.Build(spki, plaintext, kmsenvelope.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// wantOpenFailed: the one error, with the one message, whatever the cause.
func wantOpenFailed(t *testing.T, what string, pt []byte, err error) {
	t.Helper()
	var e *vsockrpc.Error
	if pt != nil || !errors.As(err, &e) || e.Code != vsockrpc.CodeOpenFailed || e.Message != vsockrpc.OpenFailedMessage || e.NSMCode != "" {
		t.Fatalf("%s: %q, %v; want open_failed with its one message", what, pt, err)
	}
}

// TestKMSEndToEnd: over the local socket on the software NSM, kms_recipient's document verifies
// against the mock root and binds exactly the returned RSA-2048 key; an envelope made for it (in
// KMS's template) opens once.
func TestKMSEndToEnd(t *testing.T) {
	s := startStack(t, func(c *Config) {
		c.UserData = []byte("configured claims")
		c.KMS = KMSConfig{} // fresh RSA-2048 keys
	})
	local := dial(t, s.local)
	ctx := context.Background()
	r, err := local.KMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	opts := *s.root
	opts.PublicKey = r.PublicKey
	doc, err := attestation.Verify(r.Document, opts)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Nonce != nil || doc.UserData != nil {
		t.Errorf("nonce %x, user_data %q: a KMS document carries neither", doc.Nonce, doc.UserData)
	}
	pub, err := x509.ParsePKIXPublicKey(doc.PublicKey)
	if rk, ok := pub.(*rsa.PublicKey); err != nil || !ok || rk.N.BitLen() != 2048 {
		t.Fatalf("public_key %T, %v: want RSA-2048", pub, err)
	}
	if rsaKey, _ := s.agent.keys.Get(keys.RSA); bytes.Equal(r.PublicKey, rsaKey.PublicKey()) {
		t.Fatal("kms_recipient bound the long-lived rsa key")
	}
	env := build(t, r.PublicKey, []byte("a 32-byte data key from KMS ...."))
	pt, err := local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r.Handle, Ciphertext: env})
	if err != nil || string(pt) != "a 32-byte data key from KMS ...." {
		t.Fatalf("kms_open: %q, %v", pt, err)
	}
	pt, err = local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r.Handle, Ciphertext: env})
	wantOpenFailed(t, "the same handle again", pt, err)

	// Each request gets its own key; an envelope for one does not open with another's handle,
	// and the failed attempt uses that handle up.
	r1, err := local.KMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := local.KMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r1.PublicKey, r2.PublicKey) || bytes.Equal(r1.PublicKey, r.PublicKey) || bytes.Equal(r1.Handle, r2.Handle) {
		t.Fatal("two requests share a key or a handle")
	}
	pt, err = local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r2.Handle, Ciphertext: build(t, r1.PublicKey, []byte("x"))})
	wantOpenFailed(t, "an envelope for another key", pt, err)
	pt, err = local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r2.Handle, Ciphertext: build(t, r2.PublicKey, []byte("x"))})
	wantOpenFailed(t, "the right envelope after a failed attempt", pt, err)
	pt, err = local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r1.Handle, Ciphertext: build(t, r1.PublicKey, []byte("y"))})
	if err != nil || string(pt) != "y" {
		t.Fatalf("r1: %q, %v", pt, err)
	}
}

// TestKMSLongLivedRSAKey: key "rsa" opens envelopes made for the document attest returns for it,
// as often as asked; no other key name does.
func TestKMSLongLivedRSAKey(t *testing.T) {
	s := startStack(t, nil)
	local := dial(t, s.local)
	ctx := context.Background()
	res, err := local.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.RSA}})
	if err != nil {
		t.Fatal(err)
	}
	doc := s.verify(t, res, nil)
	env := build(t, doc.PublicKey, []byte("secret"))
	for range 2 {
		if pt, err := local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Key: keys.RSA, Ciphertext: env}); err != nil || string(pt) != "secret" {
			t.Fatalf("kms_open key rsa: %q, %v", pt, err)
		}
	}
	pt, err := local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Key: keys.RSA, Ciphertext: env[:len(env)-1]})
	wantOpenFailed(t, "a truncated envelope", pt, err)
	_, err = local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Key: keys.HPKE, Ciphertext: env})
	var e *vsockrpc.Error
	if !errors.As(err, &e) || e.Code != vsockrpc.CodeUnknownKey {
		t.Fatalf("key hpke: %v, want unknown_key", err)
	}
}

// TestKMSParentUnknownMethod: the parent reaches neither method, not even with a valid handle.
func TestKMSParentUnknownMethod(t *testing.T) {
	s := startStack(t, nil)
	parent, local := dial(t, s.parent), dial(t, s.local)
	ctx := context.Background()
	r, err := local.KMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := build(t, r.PublicKey, []byte("x"))
	for _, call := range []func() error{
		func() error { _, err := parent.KMSRecipient(ctx); return err },
		func() error {
			_, err := parent.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r.Handle, Ciphertext: env})
			return err
		},
		func() error {
			_, err := parent.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Key: keys.RSA, Ciphertext: env})
			return err
		},
	} {
		var e *vsockrpc.Error
		if err := call(); !errors.As(err, &e) || e.Code != vsockrpc.CodeUnknownMethod {
			t.Fatalf("parent: %v, want unknown_method", err)
		}
	}
	// The parent's attempt did not use the handle up.
	if pt, err := local.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r.Handle, Ciphertext: env}); err != nil || string(pt) != "x" {
		t.Fatalf("local open after the parent's attempts: %q, %v", pt, err)
	}
}

// TestKMSHandleExpiry: an unused handle expires after HandleTTL on the agent's clock; the key is
// gone even though nobody opened with it.
func TestKMSHandleExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	a, _, _ := newTestAgent(t, func(c *Config) { c.KMS = KMSConfig{HandleTTL: time.Minute, Now: clock.Now} })
	ctx := context.Background()
	r1, err := a.NewKMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := a.NewKMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute - time.Nanosecond)
	if pt, err := a.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r1.Handle, Ciphertext: build(t, r1.PublicKey, []byte("in time"))}); err != nil || string(pt) != "in time" {
		t.Fatalf("just before expiry: %q, %v", pt, err)
	}
	clock.advance(time.Nanosecond)
	pt, err := a.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r2.Handle, Ciphertext: build(t, r2.PublicKey, []byte("late"))})
	wantOpenFailed(t, "at expiry", pt, err)
	if n := outstanding(a); n != 0 {
		t.Fatalf("%d handles outstanding", n)
	}
}

// TestKMSHandleSweep: on the real clock, unused handles are dropped and their keys destroyed at
// expiry with no call to prompt it, the second one by the sweeper set again after the first.
func TestKMSHandleSweep(t *testing.T) {
	const ttl = 100 * time.Millisecond
	a, _, _ := newTestAgent(t, func(c *Config) { c.KMS = KMSConfig{HandleTTL: ttl} })
	ctx := context.Background()
	var held []*keys.RecipientKey
	for range 2 {
		r, err := a.NewKMSRecipient(ctx)
		if err != nil {
			t.Fatal(err)
		}
		a.kms.mu.Lock()
		held = append(held, a.kms.handles[string(r.Handle)].key)
		a.kms.mu.Unlock()
		time.Sleep(ttl / 2) // the second expires after the sweeper's first run
	}
	for deadline := time.Now().Add(10 * time.Second); outstanding(a) != 0; time.Sleep(ttl / 4) {
		if time.Now().After(deadline) {
			t.Fatalf("%d handles still outstanding 10 s after they expired", outstanding(a))
		}
	}
	for i, k := range held {
		if _, err := k.Open(build(t, k.PublicKey(), []byte("x"))); !errors.Is(err, kmsenvelope.ErrOpen) {
			t.Errorf("key %d after the sweep: %v", i, err)
		}
	}
}

func outstanding(a *Agent) int {
	a.kms.mu.Lock()
	defer a.kms.mu.Unlock()
	return len(a.kms.handles)
}

// TestKMSBusy: at most MaxHandles outstanding; a slot comes back when a handle is used (whatever
// the outcome) or expires.
func TestKMSBusy(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	a, _, _ := newTestAgent(t, func(c *Config) { c.KMS = KMSConfig{MaxHandles: 2, PoolSize: 1, Now: clock.Now} })
	ctx := context.Background()
	r1, err := a.NewKMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.NewKMSRecipient(ctx); err != nil {
		t.Fatal(err)
	}
	busy := func() {
		t.Helper()
		_, err := a.NewKMSRecipient(ctx)
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != vsockrpc.CodeBusy {
			t.Fatalf("third handle: %v, want busy", err)
		}
	}
	busy()
	pt, err := a.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r1.Handle, Ciphertext: []byte("not an envelope")})
	wantOpenFailed(t, "garbage", pt, err)
	if _, err := a.NewKMSRecipient(ctx); err != nil {
		t.Fatalf("after one handle was used: %v", err)
	}
	busy()
	clock.advance(DefaultKMSHandleTTL)
	if _, err := a.NewKMSRecipient(ctx); err != nil {
		t.Fatalf("after the handles expired: %v", err)
	}
}

// TestKMSRecipientRefillsPool: each kms_recipient asks the pool for a replacement key once its
// attestation is done, so the pool is full again before the next request (the pool itself only
// refills on request or when empty; see keys.RSAPool).
func TestKMSRecipientRefillsPool(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	made := make(chan struct{}, 16)
	a, _, _ := newTestAgent(t, func(c *Config) {
		c.KMS = KMSConfig{PoolSize: 2, GenerateKey: func() (*rsa.PrivateKey, error) { made <- struct{}{}; return key, nil }}
	})
	wait := func(what string) {
		t.Helper()
		select {
		case <-made:
		case <-time.After(5 * time.Second):
			t.Fatalf("no key generated %s", what)
		}
	}
	wait("to fill the pool")
	wait("to fill the pool")
	for i := range 3 {
		if _, err := a.NewKMSRecipient(context.Background()); err != nil {
			t.Fatal(err)
		}
		wait(fmt.Sprintf("after kms_recipient %d", i+1))
	}
}

// TestKMSRecipientFailures: an NSM failure is typed and leaves no handle; after Close nothing opens.
func TestKMSRecipientFailures(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	ctx := context.Background()
	f.mu.Lock()
	f.attErr = []error{errors.New("something new")}
	f.mu.Unlock()
	_, err := a.NewKMSRecipient(ctx)
	var e *vsockrpc.Error
	if !errors.As(err, &e) || e.Code != vsockrpc.CodeInternal {
		t.Fatalf("NSM failure: %v, want internal", err)
	}
	r, err := a.NewKMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.lastAttest(t); !bytes.Equal(got.PublicKey, r.PublicKey) || got.Nonce != nil || got.UserData != nil {
		t.Fatalf("NSM asked for %+v", got)
	}
	if n := outstanding(a); n != 1 {
		t.Fatalf("%d handles outstanding, want 1", n)
	}
	a.Close()
	pt, err := a.OpenKMS(ctx, vsockrpc.KMSOpenRequest{Handle: r.Handle, Ciphertext: build(t, r.PublicKey, []byte("x"))})
	wantOpenFailed(t, "after Close", pt, err)
	if _, err := a.NewKMSRecipient(ctx); !errors.As(err, &e) || e.Code != vsockrpc.CodeShuttingDown {
		t.Fatalf("after Close: %v, want shutting_down", err)
	}
}

// TestKMSBoundsAgree: the protocol's ciphertext bound is the parser's.
func TestKMSBoundsAgree(t *testing.T) {
	if vsockrpc.MaxKMSCiphertextSize != kmsenvelope.MaxSize {
		t.Fatalf("vsockrpc.MaxKMSCiphertextSize %d, kmsenvelope.MaxSize %d", vsockrpc.MaxKMSCiphertextSize, kmsenvelope.MaxSize)
	}
}

func TestKMSConfigRejected(t *testing.T) {
	for _, c := range []KMSConfig{{PoolSize: -1}, {HandleTTL: -time.Second}, {MaxHandles: -2}} {
		if err := c.setDefaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
	rsaKeyErr  error
)

// cachedRSAKey is the KMS pool's generator in the package's test agents: one key for all, so that
// agents whose tests never call kms_recipient spend no CPU on RSA generation. The KMS tests that
// need fresh, distinct keys set KMS themselves.
func cachedRSAKey() (*rsa.PrivateKey, error) {
	rsaKeyOnce.Do(func() { rsaKey, rsaKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	return rsaKey, rsaKeyErr
}
