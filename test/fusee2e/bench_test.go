//go:build linux

package fusee2e

import (
	"os"
	"syscall"
	"testing"

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
// The device line also reports its ratios to the other two (x-process,
// x-in-process).

func BenchmarkGetRandom(b *testing.B) { benchRequest(b, &request.GetRandom{}) }

func BenchmarkAttestation(b *testing.B) {
	benchRequest(b, &request.Attestation{Nonce: make([]byte, 32), PublicKey: make([]byte, 32)})
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
	perOp := func(b *testing.B) float64 { return float64(b.Elapsed().Nanoseconds()) / float64(b.N) }
	var process, inProcess float64

	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			if _, errno := n.Process(enc); errno != 0 {
				b.Fatal(errno)
			}
		}
		process = perOp(b)
	})
	b.Run("in-process", func(b *testing.B) {
		dev := n.Device()
		for b.Loop() {
			if res, err := dev.Send(req); err != nil || res.Error != "" {
				b.Fatal(err, res.Error)
			}
		}
		inProcess = perOp(b)
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
		for b.Loop() {
			if res, err := sess.Send(req); err != nil || res.Error != "" {
				b.Fatal(err, res.Error)
			}
		}
		device := perOp(b)
		if process > 0 && inProcess > 0 {
			b.ReportMetric(device/process, "x-process")
			b.ReportMetric(device/inProcess, "x-in-process")
		}
	})
}
