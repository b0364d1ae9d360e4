package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/internal/testlog"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/nsm"
)

// events records the start-up steps in the order they happen.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.got = append(e.got, s)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// fakeNSM records what reaches the NSM. Attestation returns the request's
// fields so tests can see exactly what would have been signed.
type fakeNSM struct {
	ev *events

	mu       sync.Mutex
	attests  []nsm.AttestationRequest
	attErr   []error // returned by Attestation in turn
	block    chan struct{}
	inFlight atomic.Int32
	peak     atomic.Int32
	// cancellable records that an Attestation got a context that can end.
	cancellable atomic.Bool
	closed      atomic.Int32
	pcrs        map[uint16][]byte
	locked      map[uint16]bool
}

func newFakeNSM(ev *events) *fakeNSM {
	f := &fakeNSM{ev: ev, pcrs: map[uint16][]byte{}, locked: map[uint16]bool{}}
	for i := range uint16(32) {
		f.pcrs[i] = bytes.Repeat([]byte{byte(i)}, 48)
		f.locked[i] = i < 16
	}
	// PCR0 is the image's measurement, never zero outside debug mode: the
	// agent refuses to start on a zero PCR0.
	f.pcrs[0] = bytes.Repeat([]byte{0xa0}, 48)
	return f
}

func (f *fakeNSM) DescribeNSM(context.Context) (nsm.Description, error) {
	f.ev.add("nsm.DescribeNSM")
	var locked []uint16
	for i := range uint16(32) {
		if f.locked[i] {
			locked = append(locked, i)
		}
	}
	return nsm.Description{VersionMajor: 1, ModuleID: "i-0123456789abcdef0-enc0123456789abcdef", MaxPCRs: 32,
		LockedPCRs: locked, Digest: "SHA384"}, nil
}

func (f *fakeNSM) DescribePCR(_ context.Context, i uint16) (nsm.PCR, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return nsm.PCR{Locked: f.locked[i], Value: bytes.Clone(f.pcrs[i])}, nil
}

func (f *fakeNSM) ExtendPCR(_ context.Context, i uint16, data []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locked[i] {
		return nil, &nsm.Error{Op: "ExtendPCR", Code: nsm.ReadOnlyIndex}
	}
	f.pcrs[i] = append(f.pcrs[i][:0:0], data[:min(len(data), 48)]...)
	return bytes.Clone(f.pcrs[i]), nil
}

func (f *fakeNSM) LockPCR(_ context.Context, i uint16) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.locked[i] = true
	return nil
}

func (f *fakeNSM) Attestation(ctx context.Context, req nsm.AttestationRequest) ([]byte, error) {
	if ctx.Done() != nil {
		f.cancellable.Store(true)
	}
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attests = append(f.attests, nsm.AttestationRequest{
		Nonce: bytes.Clone(req.Nonce), UserData: bytes.Clone(req.UserData), PublicKey: bytes.Clone(req.PublicKey)})
	if len(f.attErr) > 0 {
		err := f.attErr[0]
		f.attErr = f.attErr[1:]
		if err != nil {
			return nil, err
		}
	}
	return []byte(fmt.Sprintf("doc:%x:%x:%x", req.Nonce, req.UserData, req.PublicKey)), nil
}

func (f *fakeNSM) lastAttest(t *testing.T) nsm.AttestationRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.attests) == 0 {
		t.Fatal("no attestation reached the NSM")
	}
	return f.attests[len(f.attests)-1]
}

func (f *fakeNSM) GetRandom(context.Context) ([]byte, error) {
	f.ev.add("nsm.GetRandom")
	return bytes.Repeat([]byte{0xa5}, 256), nil
}

func (f *fakeNSM) Close() error {
	if f.closed.Add(1) > 1 {
		return errors.New("closed twice")
	}
	return nil
}

// recordingSink stands in for the kernel pool.
type recordingSink struct {
	ev    *events
	bytes int
	bits  int
}

func (s *recordingSink) AddEntropy(data []byte, bits int) error {
	s.ev.add("pool.AddEntropy")
	s.bytes += len(data)
	s.bits += bits
	return nil
}

func (s *recordingSink) Ready() error {
	s.ev.add("pool.Ready")
	return nil
}

func fakeSysfs(t *testing.T, current string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, entropy.RNGCurrentPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(current+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// cachedKeys generates one key set for the test binary (RSA generation is slow).
var cachedKeys = mockenclave.Keys

// newTestAgent starts an Agent on a fakeNSM with a recording sink and a fake
// sysfs; mod adjusts the config.
func newTestAgent(t *testing.T, mod func(*Config)) (*Agent, *fakeNSM, *testlog.Buffer) {
	t.Helper()
	f := newFakeNSM(nil)
	logs := &testlog.Buffer{}
	cfg := Config{
		NSM:          f,
		Entropy:      entropy.Config{Sink: &recordingSink{}, SysfsRoot: fakeSysfs(t, entropy.NSMHWRNG)},
		GenerateKeys: cachedKeys,
		KMS:          KMSConfig{GenerateKey: cachedRSAKey}, // tests that need fresh keys set KMS
		Version:      "test",
		Logger:       slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, f, logs
}
