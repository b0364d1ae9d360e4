package entropy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/attestd/attestd/internal/testlog"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSysfs writes rng_current under a temporary sysfs root.
func fakeSysfs(t *testing.T, current string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, RNGCurrentPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(current), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// countingSource yields 256-byte chunks of a running byte counter, so the
// test can check exactly which bytes reached the sink.
type countingSource struct {
	mu    sync.Mutex
	next  byte
	calls int
	errs  []error // returned first, one per call
}

func (s *countingSource) GetRandom(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		if err != nil {
			return nil, err
		}
	}
	b := make([]byte, 256)
	for i := range b {
		b[i] = s.next
		s.next++
	}
	return b, nil
}

func (s *countingSource) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type addCall struct {
	data []byte
	bits int
}

// recordingSink records every call instead of touching the kernel pool.
type recordingSink struct {
	mu     sync.Mutex
	adds   []addCall
	addErr error
	ready  []error // returned by Ready in turn; nil when exhausted
	added  chan struct{}
}

func (s *recordingSink) AddEntropy(data []byte, bits int) error {
	s.mu.Lock()
	s.adds = append(s.adds, addCall{bytes.Clone(data), bits})
	err := s.addErr
	s.mu.Unlock()
	if s.added != nil {
		select {
		case s.added <- struct{}{}:
		default:
		}
	}
	return err
}

func (s *recordingSink) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) == 0 {
		return nil
	}
	err := s.ready[0]
	s.ready = s.ready[1:]
	return err
}

func (s *recordingSink) Adds() []addCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]addCall(nil), s.adds...)
}

func testLogger() (*slog.Logger, *testlog.Buffer) {
	var buf testlog.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func counterBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestSeedCreditsBitsNotBytes(t *testing.T) {
	src, sink := &countingSource{}, &recordingSink{}
	log, _ := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng\n"), SeedBytes: 1000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	adds := sink.Adds()
	if len(adds) != 1 {
		t.Fatalf("sink got %d adds, want 1", len(adds))
	}
	if !bytes.Equal(adds[0].data, counterBytes(1000)) {
		t.Errorf("sink got %d bytes that are not the NSM's output in order", len(adds[0].data))
	}
	if adds[0].bits != 8000 {
		t.Errorf("credited %d bits for 1000 bytes, want 8000", adds[0].bits)
	}
	if got := src.Calls(); got != 4 {
		t.Errorf("GetRandom called %d times for 1000 bytes in 256-byte chunks, want 4", got)
	}
	st := s.Status()
	want := Status{Source: "nsm", HWRNG: "nsm-hwrng", HWRNGVerified: true, KernelPoolFed: true,
		SeededBytes: 1000, CreditedBits: 8000, GetrandomReady: true, LastSeed: st.LastSeed}
	if st != want {
		t.Errorf("status = %+v\nwant     %+v", st, want)
	}
	if st.LastSeed.IsZero() {
		t.Error("LastSeed not set")
	}
}

func TestSeedFailsClosedOnOtherHWRNG(t *testing.T) {
	for _, current := range []string{"tpm-rng-0", "", "nsm-hwrng-evil", "none"} {
		src, sink := &countingSource{}, &recordingSink{}
		log, _ := testLogger()
		s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, current+"\n"), Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Seed(context.Background())
		var he *HWRNGError
		if !errors.As(err, &he) || he.Current != current {
			t.Fatalf("%q: err = %v, want HWRNGError{Current: %q}", current, err, current)
		}
		if len(sink.Adds()) != 0 || src.Calls() != 0 {
			t.Errorf("%q: the NSM or the pool was used after a failed hwrng check", current)
		}
		if s.Status().HWRNGVerified {
			t.Errorf("%q: status says verified", current)
		}
	}
}

func TestSeedFailsClosedWithoutRNGCurrent(t *testing.T) {
	src, sink := &countingSource{}, &recordingSink{}
	log, _ := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Seed(context.Background())
	var he *HWRNGError
	if !errors.As(err, &he) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want HWRNGError wrapping ErrNotExist", err)
	}
	if len(sink.Adds()) != 0 {
		t.Error("pool fed after a failed hwrng check")
	}
}

func TestRNGCurrentOverlongRejected(t *testing.T) {
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: &recordingSink{},
		SysfsRoot: fakeSysfs(t, "nsm-hwrng"+strings.Repeat(" ", maxRNGCurrent)), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var he *HWRNGError
	if err := s.Seed(context.Background()); !errors.As(err, &he) || he.Err == nil {
		t.Fatalf("err = %v, want a read error for an overlong rng_current", err)
	}
}

func TestSeedTrimsRNGCurrent(t *testing.T) {
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: &recordingSink{}, SysfsRoot: fakeSysfs(t, " \tnsm-hwrng \n"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSkipHWRNGCheckMixesWithoutCredit(t *testing.T) {
	src, sink := &countingSource{}, &recordingSink{}
	log, logs := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, "virtio_rng.0\n"), SkipHWRNGCheck: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	adds := sink.Adds()
	if len(adds) != 1 || len(adds[0].data) != DefaultSeedBytes || adds[0].bits != 0 {
		t.Fatalf("adds = %d, want one uncredited add of %d bytes", len(adds), DefaultSeedBytes)
	}
	st := s.Status()
	if st.HWRNGVerified || st.HWRNG != "virtio_rng.0" || !st.KernelPoolFed || st.CreditedBits != 0 ||
		!strings.Contains(st.Note, "not nsm-hwrng") {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"INSECURE") {
		t.Errorf("no loud warning in the log:\n%s", logs)
	}
}

func TestNoSinkDoesNotTouchThePool(t *testing.T) {
	src := &countingSource{}
	readyCalls := 0
	log, logs := testLogger()
	s, err := New(Config{Source: src, NoSinkReason: "software NSM", SysfsRoot: fakeSysfs(t, "nsm-hwrng"),
		Ready: func() error { readyCalls++; return nil }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.Calls() != 0 {
		t.Error("NSM random read although nothing is fed")
	}
	if readyCalls != 1 {
		t.Errorf("getrandom readiness checked %d times, want 1", readyCalls)
	}
	st := s.Status()
	if st.KernelPoolFed || st.Source != "none" || st.Note != "kernel pool not touched: software NSM" || !st.GetrandomReady {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(logs.String(), `msg="kernel random pool not touched" component=entropy reason="software NSM"`) {
		t.Errorf("log does not say the pool is not touched:\n%s", logs)
	}
	// Run returns at once: nothing to reseed.
	done := make(chan struct{})
	go func() { s.Run(context.Background()); close(done) }()
	<-done
}

func TestNotCreditedIsReported(t *testing.T) {
	sink := &recordingSink{addErr: fmt.Errorf("%w (RNDADDENTROPY needs CAP_SYS_ADMIN: operation not permitted)", ErrNotCredited)}
	log, logs := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s.Status()
	if !st.KernelPoolFed || st.CreditedBits != 0 || st.SeededBytes != DefaultSeedBytes || !strings.Contains(st.Note, "CAP_SYS_ADMIN") {
		t.Errorf("status = %+v", st)
	}
	if !strings.Contains(logs.String(), "without entropy credit") {
		t.Errorf("log does not report the missing credit:\n%s", logs)
	}
}

func TestSeedFailsOnSinkError(t *testing.T) {
	sink := &recordingSink{addErr: errors.New("EIO")}
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err == nil || !strings.Contains(err.Error(), "EIO") {
		t.Fatalf("err = %v, want the sink's error", err)
	}
	if st := s.Status(); st.KernelPoolFed || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
}

func TestSeedFailsOnSourceError(t *testing.T) {
	nsmErr := errors.New("nsm: InternalError")
	src, sink := &countingSource{errs: []error{nil, nsmErr}}, &recordingSink{}
	log, _ := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); !errors.Is(err, nsmErr) {
		t.Fatalf("err = %v", err)
	}
	if len(sink.Adds()) != 0 {
		t.Error("a partial seed reached the pool")
	}
	if s.Status().LastError == "" {
		t.Error("status has no error")
	}
}

type emptySource struct{}

func (emptySource) GetRandom(context.Context) ([]byte, error) { return []byte{}, nil }

func TestSeedFailsOnEmptyRandom(t *testing.T) {
	sink := &recordingSink{}
	log, _ := testLogger()
	s, err := New(Config{Source: emptySource{}, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err == nil || !strings.Contains(err.Error(), "no bytes") {
		t.Fatalf("err = %v", err)
	}
	if len(sink.Adds()) != 0 {
		t.Error("pool fed with nothing")
	}
}

func TestReadyIsAwaited(t *testing.T) {
	sink := &recordingSink{ready: []error{ErrNotReady, ErrNotReady}}
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.ready) != 0 || !s.Status().GetrandomReady {
		t.Errorf("readiness not polled to success: %d left, status %+v", len(sink.ready), s.Status())
	}
}

func TestReadyTimeoutFailsClosed(t *testing.T) {
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: &recordingSink{}, SysfsRoot: fakeSysfs(t, "nsm-hwrng"),
		Ready: func() error { return ErrNotReady }, ReadyTimeout: 250 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); !errors.Is(err, ErrNotReady) {
		t.Fatalf("err = %v, want ErrNotReady", err)
	}
	if s.Status().GetrandomReady {
		t.Error("status says ready")
	}
}

func TestReadyErrorFailsClosed(t *testing.T) {
	log, _ := testLogger()
	s, err := New(Config{Source: &countingSource{}, Sink: &recordingSink{}, SysfsRoot: fakeSysfs(t, "nsm-hwrng"),
		Ready: func() error { return errors.New("ENOSYS") }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err == nil || !strings.Contains(err.Error(), "ENOSYS") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunReseedsAndStops(t *testing.T) {
	src := &countingSource{}
	sink := &recordingSink{added: make(chan struct{}, 1)}
	log, _ := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), SeedBytes: 256,
		ReseedInterval: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-sink.added // the start-up seed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for range 3 {
		<-sink.added
	}
	cancel()
	<-done
	adds := sink.Adds()
	if len(adds) < 4 {
		t.Fatalf("%d adds, want >= 4", len(adds))
	}
	for i, a := range adds {
		if !bytes.Equal(a.data, counterBytes(256)) || a.bits != 2048 { // the counter wraps every 256 bytes
			t.Errorf("add %d: %d bytes, %d bits", i, len(a.data), a.bits)
		}
	}
	st := s.Status()
	if st.Reseeds < 3 || st.SeededBytes != int64(256*len(adds)) || st.CreditedBits != int64(2048*len(adds)) {
		t.Errorf("status = %+v after %d adds", st, len(adds))
	}
}

func TestRunSurvivesReseedError(t *testing.T) {
	src := &countingSource{}
	sink := &recordingSink{added: make(chan struct{}, 1)}
	log, logs := testLogger()
	s, err := New(Config{Source: src, Sink: sink, SysfsRoot: fakeSysfs(t, "nsm-hwrng"), SeedBytes: 256,
		ReseedInterval: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-sink.added
	src.mu.Lock()
	src.errs = []error{errors.New("nsm busy")}
	src.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-sink.added // a reseed after the failed one
	cancel()
	<-done
	if !strings.Contains(logs.String(), "reseed failed") {
		t.Errorf("failed reseed not logged:\n%s", logs)
	}
	if st := s.Status(); st.LastError != "" || st.Reseeds < 1 {
		t.Errorf("status after recovery = %+v", st)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"sink without source": {Sink: &recordingSink{}},
		"no sink, no reason":  {Source: &countingSource{}},
		"seed too small":      {Source: &countingSource{}, Sink: &recordingSink{}, SeedBytes: 16},
		"seed too large":      {Source: &countingSource{}, Sink: &recordingSink{}, SeedBytes: MaxSeedBytes + 1},
		"negative interval":   {Source: &countingSource{}, Sink: &recordingSink{}, ReseedInterval: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
