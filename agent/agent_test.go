package agent

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/platform"
	"github.com/attestd/attestd/vsockrpc"
)

// TestStartupOrder checks the order: the NSM is described (and PCR0 passes the
// not-debug gate) first; the kernel pool is fed from the NSM and getrandom is
// confirmed ready before any key is generated.
func TestStartupOrder(t *testing.T) {
	ev := &events{}
	f := newFakeNSM(ev)
	sink := &recordingSink{ev: ev}
	a, err := New(context.Background(), Config{
		NSM:     f,
		Entropy: entropy.Config{Sink: sink, SysfsRoot: fakeSysfs(t, entropy.NSMHWRNG), SeedBytes: 512},
		GenerateKeys: func(c keys.Config) (*keys.Set, error) {
			ev.add("keys.Generate")
			return cachedKeys(c)
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := []string{"nsm.DescribeNSM", "nsm.GetRandom", "nsm.GetRandom", "pool.AddEntropy", "pool.Ready", "keys.Generate"}
	if got := ev.list(); !slices.Equal(got, want) {
		t.Fatalf("start-up events:\n got %v\nwant %v", got, want)
	}
	if sink.bytes != 512 || sink.bits != 4096 {
		t.Errorf("pool got %d bytes, %d bits; want 512, 4096", sink.bytes, sink.bits)
	}
}

// TestStartupFailsClosed: without nsm-hwrng no key is ever generated, and the
// NSM is closed.
func TestStartupFailsClosed(t *testing.T) {
	ev := &events{}
	f := newFakeNSM(ev)
	_, err := New(context.Background(), Config{
		NSM:     f,
		Entropy: entropy.Config{Sink: &recordingSink{ev: ev}, SysfsRoot: fakeSysfs(t, "tpm-rng-0")},
		GenerateKeys: func(c keys.Config) (*keys.Set, error) {
			ev.add("keys.Generate")
			return cachedKeys(c)
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	var he *entropy.HWRNGError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want an HWRNGError", err)
	}
	if got := ev.list(); !slices.Equal(got, []string{"nsm.DescribeNSM"}) {
		t.Errorf("events after a failed hwrng check: %v", got)
	}
	if f.closed.Load() != 1 {
		t.Error("NSM not closed after a failed start-up")
	}
}

// TestStartupRefusesDebugEnclave: with PCR0 all zeros (a debug-mode enclave)
// or not locked, the agent takes no entropy, generates no key, closes the NSM
// and says why in one line.
func TestStartupRefusesDebugEnclave(t *testing.T) {
	for name, c := range map[string]struct {
		mod  func(*fakeNSM)
		want string
	}{
		"PCR0 all zeros":  {func(f *fakeNSM) { f.pcrs[0] = make([]byte, 48) }, "PCR0 is all zeros: the enclave runs in debug mode"},
		"PCR0 not locked": {func(f *fakeNSM) { f.locked[0] = false }, "PCR0 is not locked"},
		"PCR0 short":      {func(f *fakeNSM) { f.pcrs[0] = f.pcrs[0][:32] }, "PCR0 is 32 bytes, want 48"},
	} {
		ev := &events{}
		f := newFakeNSM(ev)
		c.mod(f)
		_, err := New(context.Background(), Config{
			NSM:     f,
			Entropy: entropy.Config{Sink: &recordingSink{ev: ev}, SysfsRoot: fakeSysfs(t, entropy.NSMHWRNG)},
			GenerateKeys: func(c keys.Config) (*keys.Set, error) {
				ev.add("keys.Generate")
				return cachedKeys(c)
			},
			Logger: slog.New(slog.DiscardHandler),
		})
		var de *platform.DebugCheckError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want a DebugCheckError saying %q", name, err, c.want)
		}
		if got := ev.list(); !slices.Equal(got, []string{"nsm.DescribeNSM"}) {
			t.Errorf("%s: events after a failed not-debug check: %v", name, got)
		}
		if f.closed.Load() != 1 {
			t.Errorf("%s: NSM not closed after a failed start-up", name)
		}
	}
}

// TestSkipDebugCheck: relaxed, a debug-mode enclave starts and serves, and
// the log says INSECURE; a production PCR0 is logged and warns of nothing.
func TestSkipDebugCheck(t *testing.T) {
	debug := newFakeNSM(nil)
	debug.pcrs[0] = make([]byte, 48)
	a, _, logs := newTestAgent(t, func(c *Config) { c.NSM, c.SkipDebugCheck = debug, true })
	if _, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.RSA}); err != nil {
		t.Fatal(err)
	}
	want := `"level":"WARN","msg":"INSECURE: the not-debug self-check failed and is skipped (development only): no verifier should accept this enclave's documents","error":"platform: PCR0 is all zeros`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}

	_, _, logs = newTestAgent(t, func(c *Config) { c.SkipDebugCheck = true })
	want = `"level":"INFO","msg":"not a debug-mode enclave: PCR0 is locked and not zero","pcr0":"` + strings.Repeat("a0", 48) + `"`
	if !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), "INSECURE") {
		t.Errorf("log lacks %s, or warns:\n%s", want, logs)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mod := range map[string]func(*Config){
		"nonce max over 512": func(c *Config) { c.NonceMax = 513 },
		"nonce min over max": func(c *Config) { c.NonceMin, c.NonceMax = 64, 32 },
		"negative nonce min": func(c *Config) { c.NonceMin = -1 },
		"user data too long": func(c *Config) { c.UserData = make([]byte, 513) },
		"no NSM":             func(c *Config) { c.NSM = nil },
	} {
		cfg := Config{NSM: newFakeNSM(nil), Entropy: entropy.Config{Sink: &recordingSink{}, SysfsRoot: fakeSysfs(t, entropy.NSMHWRNG)},
			GenerateKeys: cachedKeys, Logger: slog.New(slog.DiscardHandler)}
		mod(&cfg)
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *vsockrpc.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
}

func TestAttestBindsOnlyAgentKeys(t *testing.T) {
	a, f, _ := newTestAgent(t, func(c *Config) { c.UserData = []byte("configured") })
	ks, _ := cachedKeys(keys.Config{})
	for _, name := range []string{keys.HPKE, keys.RSA} {
		nonce := []byte("nonce-" + name)
		res, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: nonce, Key: name})
		if err != nil {
			t.Fatal(err)
		}
		k, _ := ks.Get(name)
		got := f.lastAttest(t)
		if !bytes.Equal(got.PublicKey, k.DocumentPublicKey()) || !bytes.Equal(got.Nonce, nonce) ||
			string(got.UserData) != "configured" {
			t.Errorf("%s: NSM got %+v", name, got)
		}
		if res.Key != name || !bytes.Equal(res.PublicKey, k.PublicKey()) || len(res.Document) == 0 {
			t.Errorf("%s: result key %s, %d-byte public key", name, res.Key, len(res.PublicKey))
		}
		if err := keys.CheckBinding(name, got.PublicKey, res.PublicKey); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: "parent-key"})
	wantCode(t, err, vsockrpc.CodeUnknownKey)
}

func TestNonceBounds(t *testing.T) {
	a, _, _ := newTestAgent(t, func(c *Config) { c.NonceMin, c.NonceMax = 16, 64 })
	for _, c := range []struct {
		n    int
		nil  bool
		code string
	}{
		{nil: true, code: vsockrpc.CodeNonceRequired},
		{n: 15, code: vsockrpc.CodeBadRequest},
		{n: 16},
		{n: 64},
		{n: 65, code: vsockrpc.CodeNonceTooLarge},
		{n: 512, code: vsockrpc.CodeNonceTooLarge},
	} {
		var nonce []byte
		if !c.nil {
			nonce = make([]byte, c.n)
		}
		_, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: nonce, Key: keys.RSA})
		if c.code == "" {
			if err != nil {
				t.Errorf("%d bytes: %v", c.n, err)
			}
			continue
		}
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Message, "nonce") {
			t.Errorf("%d bytes (nil %v): err = %v, want %s", c.n, c.nil, err, c.code)
		}
	}
	// The local API may omit the nonce (KMS Recipient flow) but not break the bounds.
	if _, err := a.AttestLocal(context.Background(), vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.RSA}}); err != nil {
		t.Errorf("local, no nonce: %v", err)
	}
	_, err := a.AttestLocal(context.Background(), vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.RSA, Nonce: make([]byte, 65)}})
	wantCode(t, err, vsockrpc.CodeNonceTooLarge)
}

func TestAllowNoNonce(t *testing.T) {
	a, f, _ := newTestAgent(t, func(c *Config) { c.AllowNoNonce = true })
	if _, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Key: keys.HPKE}); err != nil {
		t.Fatal(err)
	}
	if got := f.lastAttest(t); got.Nonce != nil {
		t.Errorf("nonce = %x", got.Nonce)
	}
	d, _ := a.Describe(context.Background())
	if d.Nonce.Required {
		t.Error("describe says a nonce is required")
	}
}

func TestUserDataComesFromInsideOnly(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	ctx := context.Background()
	parent := func() []byte {
		t.Helper()
		if _, err := a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.HPKE}); err != nil {
			t.Fatal(err)
		}
		return f.lastAttest(t).UserData
	}
	if ud := parent(); ud != nil {
		t.Errorf("user_data without configuration = %q", ud)
	}
	if err := a.SetUserData(ctx, []byte("app claims v1")); err != nil {
		t.Fatal(err)
	}
	if ud := parent(); string(ud) != "app claims v1" {
		t.Errorf("user_data = %q", ud)
	}
	// A per-request value on the local API does not change the stored one.
	if _, err := a.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.HPKE}, UserData: []byte("once")}); err != nil {
		t.Fatal(err)
	}
	if ud := f.lastAttest(t).UserData; string(ud) != "once" {
		t.Errorf("local user_data = %q", ud)
	}
	if ud := parent(); string(ud) != "app claims v1" {
		t.Errorf("user_data after a local attest = %q", ud)
	}
	if err := a.SetUserData(ctx, make([]byte, 513)); err == nil {
		t.Error("513 bytes of user_data accepted")
	}
	_, err := a.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.HPKE}, UserData: make([]byte, 513)})
	wantCode(t, err, vsockrpc.CodeBadRequest)
	// An explicitly empty per-request value means none in that document.
	if _, err := a.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: keys.HPKE}, UserData: []byte{}}); err != nil {
		t.Fatal(err)
	}
	if ud := f.lastAttest(t).UserData; ud != nil {
		t.Errorf("local user_data sent empty = %q, want absent", ud)
	}
	// Clearing, with nil or empty, makes user_data absent (never an empty byte string).
	for _, clearWith := range [][]byte{nil, {}} {
		if err := a.SetUserData(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := a.SetUserData(ctx, clearWith); err != nil {
			t.Fatal(err)
		}
		if ud := parent(); ud != nil {
			t.Errorf("user_data after clearing with %#v = %#v", clearWith, ud)
		}
	}
}

func TestNSMErrorsAreTyped(t *testing.T) {
	a, f, logs := newTestAgent(t, nil)
	f.attErr = []error{
		&nsm.Error{Op: "Attestation", Code: nsm.InternalError},
		&nsm.IoctlError{Op: "Attestation", Errno: syscall.EIO},
		fmt.Errorf("%w: Attestation: wrong response variant", nsm.ErrInvalidResponse),
		nsm.ErrRequestTooLarge,
		nsm.ErrClosed,
		context.DeadlineExceeded,
		errors.New("something new"),
	}
	want := []struct{ code, nsmCode string }{
		{vsockrpc.CodeNSMError, "InternalError"},
		{vsockrpc.CodeUnavailable, ""},
		{vsockrpc.CodeUnavailable, ""},
		{vsockrpc.CodeNSMError, "InputTooLarge"},
		{vsockrpc.CodeShuttingDown, ""},
		{vsockrpc.CodeUnavailable, ""},
		{vsockrpc.CodeInternal, ""},
	}
	for i, w := range want {
		_, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.RSA})
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != w.code || e.NSMCode != w.nsmCode {
			t.Errorf("fault %d: err = %v, want %s/%s", i, err, w.code, w.nsmCode)
		}
	}
	// The agent keeps serving.
	if _, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.RSA}); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
	if !strings.Contains(logs.String(), `"nsm_code":"InternalError"`) {
		t.Error("NSM failure not logged")
	}
}

// TestOneNSMCallInFlight: the driver serialises NSM calls, so the agent makes
// one at a time; the others queue.
func TestOneNSMCallInFlight(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	f.block = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.HPKE})
			errs <- err
		})
	}
	for f.inFlight.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // give a second caller the chance to slip through, if it could
	close(f.block)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if p := f.peak.Load(); p != 1 {
		t.Errorf("peak NSM calls in flight = %d, want 1", p)
	}
}

// TestStartedNSMCallIsNotAbandoned: the request's context bounds the wait for
// the NSM, not a call once started; that one gets a context that cannot end
// and its result is returned.
func TestStartedNSMCallIsNotAbandoned(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	f.block = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	type out struct {
		res *vsockrpc.AttestResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.RSA})
		done <- out{res, err}
	}()
	for f.inFlight.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case o := <-done:
		t.Fatalf("returned while the NSM call was in flight: %v", o.err)
	case <-time.After(20 * time.Millisecond):
	}
	close(f.block)
	if o := <-done; o.err != nil || len(o.res.Document) == 0 {
		t.Fatalf("started call: %v", o.err)
	}
	if f.cancellable.Load() {
		t.Error("the NSM call got a context that can end")
	}
}

func TestWaitingForNSMHonoursContext(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	f.block = make(chan struct{})
	defer close(f.block)
	go a.Attest(context.Background(), vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.HPKE})
	for f.inFlight.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: keys.HPKE})
	wantCode(t, err, vsockrpc.CodeUnavailable)
}

func TestDescribe(t *testing.T) {
	a, _, _ := newTestAgent(t, func(c *Config) {
		c.NonceMin, c.NonceMax = 8, 128
		c.Version = "v9.9.9"
		c.Platform = Platform{KernelRelease: "6.6.38-amzn", ClockSource: "kvm-clock"}
	})
	d, err := a.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.AgentVersion != "v9.9.9" || d.ModuleID != "i-0123456789abcdef0-enc0123456789abcdef" {
		t.Errorf("describe = %+v", d)
	}
	if len(d.Keys) != 2 || d.Keys[0].Name != keys.HPKE || d.Keys[0].Binding != keys.BindingDigest ||
		len(d.Keys[0].PublicKey) != 1216 || d.Keys[1].Name != keys.RSA || d.Keys[1].Binding != keys.BindingWhole {
		t.Errorf("keys = %+v", d.Keys)
	}
	if len(d.PCRs) != 16 || !bytes.Equal(d.PCRs[4], bytes.Repeat([]byte{4}, 48)) {
		t.Errorf("%d PCRs described", len(d.PCRs))
	}
	if d.Nonce != (vsockrpc.NonceLimits{Min: 8, Max: 128, Required: true}) {
		t.Errorf("nonce = %+v", d.Nonce)
	}
	e := d.Entropy
	if e.Source != "hwrng nsm-hwrng + NSM GetRandom" || e.SeededBytes != entropy.DefaultSeedBytes ||
		e.KernelPool != "fed: 8192 bits credited" || e.LastReseed == 0 {
		t.Errorf("entropy = %+v", e)
	}
	// Every gate enforced: an empty list, not nil (it is sent as []).
	if p := d.Platform; p.KernelRelease != "6.6.38-amzn" || p.ClockSource != "kvm-clock" || p.Relaxed == nil || len(p.Relaxed) != 0 {
		t.Errorf("platform = %#v", p)
	}
}

// TestDescribeRelaxedGates: describe lists exactly the gates whose skip is
// set, each once and in start-up order, whichever component runs the gate.
func TestDescribeRelaxedGates(t *testing.T) {
	sets := map[string]func(*Config){
		vsockrpc.GateKernel:      func(c *Config) { c.Platform.SkipKernelCheck = true },
		vsockrpc.GateClockSource: func(c *Config) { c.Platform.SkipClockSourceCheck = true },
		vsockrpc.GateDebug:       func(c *Config) { c.SkipDebugCheck = true },
		vsockrpc.GateHWRNG:       func(c *Config) { c.Entropy.SkipHWRNGCheck = true },
	}
	for name, set := range sets {
		a, _, _ := newTestAgent(t, set)
		d, _ := a.Describe(context.Background())
		if !slices.Equal(d.Platform.Relaxed, []string{name}) {
			t.Errorf("only %s relaxed: relaxed = %q", name, d.Platform.Relaxed)
		}
	}
	a, _, _ := newTestAgent(t, func(c *Config) {
		for _, set := range sets {
			set(c)
		}
	})
	d, _ := a.Describe(context.Background())
	if want := []string{"kernel", "clocksource", "debug", "hwrng"}; !slices.Equal(d.Platform.Relaxed, want) {
		t.Errorf("all relaxed: relaxed = %q, want %q", d.Platform.Relaxed, want)
	}
}

// TestDescribePlatformOverTheWire: the parent reads the platform report the
// caller injected, and the mock-mode hwrng skip, through a real client.
func TestDescribePlatformOverTheWire(t *testing.T) {
	s := startStack(t, func(c *Config) {
		c.Platform = Platform{KernelRelease: "6.1.0-27-amd64", ClockSource: "tsc", SkipClockSourceCheck: true}
	})
	d, err := dial(t, s.parent).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := vsockrpc.Platform{KernelRelease: "6.1.0-27-amd64", ClockSource: "tsc", Relaxed: []string{"clocksource", "hwrng"}}
	if !reflect.DeepEqual(d.Platform, want) {
		t.Errorf("platform = %#v, want %#v", d.Platform, want)
	}
}

func TestDescribeSaysPoolNotTouched(t *testing.T) {
	a, _, logs := newTestAgent(t, func(c *Config) {
		c.Mock = true
		c.Entropy = entropy.Config{NoSinkReason: "software NSM (mock mode)", SysfsRoot: fakeSysfs(t, "virtio_rng.0"),
			SkipHWRNGCheck: true, Ready: func() error { return nil }}
	})
	d, _ := a.Describe(context.Background())
	e := d.Entropy
	if e.KernelPool != "not fed; kernel pool not touched: software NSM (mock mode)" || e.SeededBytes != 0 ||
		e.Source != "hwrng virtio_rng.0 (not nsm-hwrng: check skipped); software NSM" {
		t.Errorf("entropy = %+v", e)
	}
	if !strings.Contains(logs.String(), "kernel random pool not touched") {
		t.Error("the log does not say the pool is not touched")
	}
}

func TestLocalPCRs(t *testing.T) {
	a, _, _ := newTestAgent(t, nil)
	ctx := context.Background()
	for _, i := range []uint16{0, 15, 32, 100} {
		if _, err := a.ExtendPCR(ctx, i, []byte("x")); err == nil {
			t.Errorf("extend PCR%d accepted", i)
		}
		if err := a.LockPCR(ctx, i); err == nil {
			t.Errorf("lock PCR%d accepted", i)
		}
	}
	v, err := a.ExtendPCR(ctx, 16, []byte("app"))
	if err != nil || string(v) != "app" {
		t.Fatalf("extend = %q, %v", v, err)
	}
	if err := a.LockPCR(ctx, 16); err != nil {
		t.Fatal(err)
	}
	d, _ := a.Describe(ctx)
	if string(d.PCRs[16]) != "app" || len(d.PCRs) != 17 {
		t.Errorf("describe after locking PCR16: %d PCRs, PCR16 %q", len(d.PCRs), d.PCRs[16])
	}
	_, err = a.ExtendPCR(ctx, 16, []byte("more"))
	var e *vsockrpc.Error
	if !errors.As(err, &e) || e.Code != vsockrpc.CodeNSMError || e.NSMCode != "ReadOnlyIndex" {
		t.Errorf("extend a locked PCR: %v", err)
	}
}

func TestRandom(t *testing.T) {
	a, _, _ := newTestAgent(t, nil)
	for _, n := range []int{1, 255, 256, 257, 4096} {
		b, err := a.Random(context.Background(), n)
		if err != nil || len(b) != n {
			t.Errorf("Random(%d) = %d bytes, %v", n, len(b), err)
		}
	}
	for _, n := range []int{0, -1, 4097} {
		if _, err := a.Random(context.Background(), n); err == nil {
			t.Errorf("Random(%d) accepted", n)
		}
	}
}

func TestCloseClosesNSMOnce(t *testing.T) {
	a, f, _ := newTestAgent(t, nil)
	a.Close()
	a.Close()
	if f.closed.Load() != 1 {
		t.Errorf("NSM closed %d times", f.closed.Load())
	}
}

// TestPrivateKeysNeverLeak runs the agent with keys generated under a fixed
// seed, regenerates the same private keys in the test, and checks that no
// private byte appears in the log or in describe, however it is encoded.
func TestPrivateKeysNeverLeak(t *testing.T) {
	const seed = 7
	cryptotest.SetGlobalRandom(t, seed)
	hk, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a, _, logs := newTestAgent(t, func(c *Config) {
		c.GenerateKeys = func(kc keys.Config) (*keys.Set, error) {
			cryptotest.SetGlobalRandom(t, seed) // the same stream as above
			return keys.Generate(kc)
		}
	})
	ctx := context.Background()
	d, err := a.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if !bytes.Equal(d.Keys[0].PublicKey, hk.PublicKey().Bytes()) || !bytes.Equal(d.Keys[1].PublicKey, spki) {
		t.Fatal("the test did not reproduce the agent's keys; the leak check would be void")
	}
	for _, k := range []string{keys.HPKE, keys.RSA, "nope"} {
		a.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("n"), Key: k})
	}

	var out bytes.Buffer
	out.WriteString(logs.String())
	fmt.Fprintf(&out, "%+v\n%#v\n", d, d)
	js, _ := json.Marshal(d)
	out.Write(js)
	cb, _ := cbor.Marshal(d)
	out.Write(cb)
	text := out.String()

	hpriv, _ := hk.Bytes()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(rk)
	secrets := [][]byte{hpriv, rk.D.Bytes(), rk.Primes[0].Bytes(), rk.Primes[1].Bytes(), pkcs8[len(pkcs8)-64:]}
	for _, s := range secrets {
		s = s[:16]
		for _, form := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s)[:20], fmt.Sprint(s[:8])[1:20]} {
			if strings.Contains(text, form) {
				t.Fatalf("private key material %q in the log or describe output", form)
			}
		}
	}
	for _, n := range []*big.Int{rk.D, rk.Primes[0], rk.Primes[1]} {
		if strings.Contains(text, n.String()[:30]) {
			t.Fatal("an RSA private value in decimal in the log or describe output")
		}
	}
	if !strings.Contains(text, `"msg":"key generated"`) || !strings.Contains(text, string(spki)) {
		t.Fatal("the checked output lacks the key log or the public keys: the check proves nothing")
	}
}
