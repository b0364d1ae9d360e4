package mocknsm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/leaktest"
	"github.com/attestd/attestd/nsm"
	"github.com/hf/nsm/request"
)

// TestSession drives the mock through the nsm package, as attestd does with "--nsm mock:DIR".
func TestSession(t *testing.T) {
	ctx := context.Background()
	n, dir := newTestNSMShared(t)
	s := openSession(t, n)

	d, err := s.DescribeNSM(ctx)
	if err != nil || d.ModuleID != testModuleID || d.MaxPCRs != 32 || d.Digest != "SHA384" || len(d.LockedPCRs) != 16 ||
		d.VersionMajor != 1 || d.VersionMinor != 0 || d.VersionPatch != 0 {
		t.Fatalf("DescribeNSM = %+v, %v", d, err)
	}
	p, err := s.DescribePCR(ctx, 4)
	if err != nil || !p.Locked || !bytes.Equal(p.Value, sha384(make([]byte, 48), []byte("i-0123456789abcdef0"))) {
		t.Fatalf("DescribePCR(4) = %+v, %v", p, err)
	}
	v, err := s.ExtendPCR(ctx, 16, nil)
	if err != nil || !bytes.Equal(v, sha384(make([]byte, 48))) {
		t.Fatalf("ExtendPCR(16, nil) = %x, %v", v, err)
	}
	if err := s.LockPCR(ctx, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExtendPCR(ctx, 16, []byte("x")); !errors.Is(err, nsm.ReadOnlyIndex) {
		t.Fatalf("extend locked: %v", err)
	}
	if _, err := s.DescribePCR(ctx, 32); !errors.Is(err, nsm.InvalidIndex) {
		t.Fatalf("DescribePCR(32): %v", err)
	}
	if err := s.LockPCRs(ctx, 33); !errors.Is(err, nsm.InvalidIndex) {
		t.Fatalf("LockPCRs(33): %v", err)
	}
	if _, err := s.ExtendPCR(ctx, 17, make([]byte, 5000)); !errors.Is(err, nsm.ErrRequestTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	doc, err := s.Attestation(ctx, nsm.AttestationRequest{Nonce: []byte("nonce"), UserData: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := os.ReadFile(dir + "/root.pem")
	pd, err := verifyIndependently(doc, rootPEM, time.Now())
	if err != nil || string(pd.Nonce) != "nonce" || pd.UserData == nil || len(pd.UserData) != 0 || pd.PublicKey != nil ||
		len(pd.PCRs) != 17 {
		t.Fatalf("document: %+v, %v", pd, err)
	}
	r, err := s.GetRandom(ctx)
	if err != nil || len(r) != 256 {
		t.Fatalf("GetRandom = %d bytes, %v", len(r), err)
	}
	buf := make([]byte, 1000)
	if k, err := s.Read(buf); k != 1000 || err != nil || bytes.Count(buf, []byte{0}) > 50 {
		t.Fatalf("Read = %d, %v", k, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoLeak10000: 10,000 requests of every type (through nsm.Session on the in-process device, some from
// callers that give up) leave no goroutine and no descriptor behind.
func TestNoLeak10000(t *testing.T) {
	n, _ := newTestNSMShared(t)
	goroutines, fds := runtime.NumGoroutine(), leaktest.FDs(t)
	s, err := nsm.Open(nsm.Options{Device: n.Device()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 10000 {
		var err error
		switch i % 10 {
		case 0:
			_, err = s.DescribeNSM(ctx)
		case 1:
			_, err = s.DescribePCR(ctx, uint16(i%32))
		case 2:
			_, err = s.ExtendPCR(ctx, 16+uint16(i%16), []byte{byte(i)})
		case 3:
			if err = s.LockPCR(ctx, 3); errors.Is(err, nsm.ReadOnlyIndex) {
				err = nil
			}
		case 4:
			if i%2500 == 4 { // signing dominates (and is slow under -race): a few documents
				_, err = s.Attestation(ctx, nsm.AttestationRequest{Nonce: []byte{byte(i)}})
			}
		case 5:
			if _, err = s.GetRandom(cancelled); errors.Is(err, context.Canceled) {
				err = nil
			}
		case 6:
			err = s.LockPCRs(ctx, 16)
		default:
			_, err = s.GetRandom(ctx)
		}
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	leaktest.WaitGoroutines(t, goroutines)
	if after := leaktest.FDs(t); after > fds {
		t.Fatalf("%d descriptors before, %d after", fds, after)
	}
}

// TestConcurrent runs every request type from several goroutines at once, on Process directly (as the FUSE
// device does) and through a session; -race checks the locking.
func TestConcurrent(t *testing.T) {
	n, dir := newTestNSMShared(t)
	rootPEM, _ := os.ReadFile(dir + "/root.pem")
	s := openSession(t, n)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 7 {
				op := []string{DescribeNSM, DescribePCR, ExtendPCR, LockPCR, LockPCRs, Attestation, GetRandom}[(g+i)%7]
				if g%2 == 0 {
					if resp, errno := n.Process(enc(t, requestsByType[op])); errno != 0 || len(resp) == 0 {
						t.Errorf("%s: errno %v", op, errno)
					}
					continue
				}
				if op == Attestation {
					doc, err := s.Attestation(context.Background(), nsm.AttestationRequest{})
					if err == nil {
						_, err = verifyIndependently(doc, rootPEM, time.Now())
					}
					if err != nil {
						t.Error(err)
					}
				} else if err := call(context.Background(), s, op); err != nil && !errors.Is(err, nsm.ReadOnlyIndex) {
					t.Errorf("%s: %v", op, err)
				}
			}
		}()
	}
	wg.Wait()
}

func benchProcess(b *testing.B, req request.Request) {
	n, _ := newTestNSMShared(b)
	r := enc(b, req)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, errno := n.Process(r); errno != 0 {
			b.Fatal(errno)
		}
	}
}

// BenchmarkProcessAttestation: one document (payload encoding + ES384 signature), in-process.
func BenchmarkProcessAttestation(b *testing.B) {
	benchProcess(b, &request.Attestation{Nonce: make([]byte, 32), PublicKey: make([]byte, 1184)})
}

// BenchmarkAttestationPayload: everything an attestation costs except the signature (PCR snapshot, cached
// chain, payload encoding), to compare with BenchmarkProcessAttestation.
func BenchmarkAttestationPayload(b *testing.B) {
	n, _ := newTestNSMShared(b)
	r := decoded{op: Attestation, nonce: make([]byte, 32), publicKey: make([]byte, 1184)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := n.payload(r, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessGetRandom: decode, 256 random bytes, encode.
func BenchmarkProcessGetRandom(b *testing.B) { benchProcess(b, &request.GetRandom{}) }

// BenchmarkProcessDescribePCR: the cheapest stateful request.
func BenchmarkProcessDescribePCR(b *testing.B) { benchProcess(b, &request.DescribePCR{Index: 4}) }

// BenchmarkProcessExtendPCR: decode, SHA-384, encode.
func BenchmarkProcessExtendPCR(b *testing.B) {
	benchProcess(b, &request.ExtendPCR{Index: 16, Data: make([]byte, 32)})
}

// BenchmarkSessionGetRandom: nsm.Session (size check, worker hand-off, validation) on the in-process device.
func BenchmarkSessionGetRandom(b *testing.B) {
	n, _ := newTestNSMShared(b)
	s := openSession(b, n)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.GetRandom(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionAttestation: a document through nsm.Session on the in-process device.
func BenchmarkSessionAttestation(b *testing.B) {
	n, _ := newTestNSMShared(b)
	s := openSession(b, n)
	ctx := context.Background()
	req := nsm.AttestationRequest{Nonce: make([]byte, 32), PublicKey: make([]byte, 1184)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Attestation(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
