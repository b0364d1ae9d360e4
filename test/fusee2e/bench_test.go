//go:build linux

package fusee2e

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"

	"github.com/attestd/attestd/mocknsm"
)

// The per-request cost of the FUSE transport: the same request answered by
//
//   - process: (*mocknsm.NSM).Process on encoded bytes, in this process;
//   - in-process: hf/nsm-style Send (encode, Process, decode) through
//     mocknsm's in-process device, no kernel;
//   - device: hf/nsm's Session.Send, a real ioctl on the FUSE file served by
//     a helper process.
//
// Besides the mean (ns/op), each reports its median (p50-ns), which a loaded
// machine disturbs much less; the device line reports the ratios of the
// medians to the other two (x-process, x-in-process).

func BenchmarkGetRandom(b *testing.B) { benchRequest(b, &request.GetRandom{}) }

func BenchmarkAttestation(b *testing.B) {
	benchRequest(b, &request.Attestation{Nonce: make([]byte, 32), PublicKey: make([]byte, 32)})
}

// timed runs op in a b.Loop, timing every call, and reports and returns the median.
func timed(b *testing.B, op func() error) float64 {
	var d []time.Duration
	for b.Loop() {
		t0 := time.Now()
		err := op()
		d = append(d, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(d)
	p50 := float64(d[len(d)/2].Nanoseconds())
	b.ReportMetric(p50, "p50-ns")
	return p50
}

func benchRequest(b *testing.B, req request.Request) {
	dir, path := startDevice(b, "")
	n, err := mocknsm.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := cbor.Marshal(req.Encoded())
	if err != nil {
		b.Fatal(err)
	}
	var process, inProcess float64

	b.Run("process", func(b *testing.B) {
		process = timed(b, func() error {
			if _, errno := n.Process(enc); errno != 0 {
				return errno
			}
			return nil
		})
	})
	b.Run("in-process", func(b *testing.B) {
		dev := n.Device()
		inProcess = timed(b, func() error {
			_, err := dev.Send(req)
			return err
		})
	})
	b.Run("device", func(b *testing.B) {
		sess, err := hfnsm.OpenSession(hfnsm.Options{
			Open:    func() (hfnsm.FileDescriptor, error) { return os.Open(path) },
			Syscall: syscall.Syscall,
		})
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		device := timed(b, func() error {
			_, err := sess.Send(req)
			return err
		})
		if process > 0 && inProcess > 0 {
			b.ReportMetric(device/process, "x-process")
			b.ReportMetric(device/inProcess, "x-in-process")
		}
	})
}
