package agent

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	nsmrequest "github.com/hf/nsm/request"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAttest compares an attest round trip through the agent (client
// encode -> unix socket -> server decode -> agent -> nsm.Session -> software
// NSM and back to the client's decoded result) with the software NSM's own
// attestation cost: mocknsm's Process of the same encoded Attestation request
// (same nonce length, the same agent public key), i.e. what the ioctl costs
// inside the NSM. Two more arms say what any agent pays at least on this
// machine: floor is the same Process behind a bare unix socket
// (length-prefixed bytes, one goroutine each side, no protocol, no agent), and
// floor-session is that socket serving through nsm.Session's Attestation (the
// request encoding and response decoding hf/nsm does around the real ioctl,
// which the in-process device repeats). The four are interleaved in the same
// run, in an order that rotates every operation, so that machine load (and
// the garbage one arm leaves to the next) affects them alike. It reports wall time per
// operation of each, the ratios roundtrip/nsm (the target is <= 1.10),
// floor/nsm, floor-session/nsm and roundtrip/floor, and the process CPU time
// of the round trip against the NSM's (cpu-roundtrip/nsm; other processes'
// load disturbs it less).
func BenchmarkAttest(b *testing.B) {
	s := startStack(b, nil)
	k, err := s.agent.keys.Get("rsa")
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s.parent)
	floor := bareConn(b, func(req []byte) []byte {
		resp, _ := s.mock.Process(req)
		return resp
	})
	ctx := context.Background()
	nonce := make([]byte, 32)
	floorSession := bareConn(b, func([]byte) []byte {
		doc, err := s.agent.nsm.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce, PublicKey: k.DocumentPublicKey()})
		if err != nil {
			panic(err)
		}
		return doc
	})
	nsmReq := nsmrequest.Attestation{Nonce: nonce, PublicKey: k.DocumentPublicKey()}
	var raw []byte
	var wallNSM, wallFloor, wallFloorSession, wallRT, cpuNSM, cpuRT time.Duration
	arms := []func(){
		timedArm(b, &wallNSM, &cpuNSM, func() {
			if _, errno := s.mock.Process(raw); errno != 0 {
				b.Fatal(errno)
			}
		}),
		timedArm(b, &wallRT, &cpuRT, func() {
			if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
				b.Fatal(err)
			}
		}),
		timedArm(b, &wallFloor, nil, func() { floor(raw) }),
		timedArm(b, &wallFloorSession, nil, func() { floorSession(raw) }),
	}
	n := 0
	for b.Loop() {
		nonce[0]++
		if raw, err = cbor.Marshal(nsmReq.Encoded()); err != nil { // as nsm.Session sends it; not timed
			b.Fatal(err)
		}
		for i := range arms { // each arm follows each other arm equally often
			arms[(n+i)%len(arms)]()
		}
		n++
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(wallNSM), "ns-nsm/op")
	b.ReportMetric(per(wallFloor), "ns-floor/op")
	b.ReportMetric(per(wallFloorSession), "ns-floor-session/op")
	b.ReportMetric(per(wallRT), "ns-roundtrip/op")
	b.ReportMetric(float64(wallRT)/float64(wallNSM), "roundtrip/nsm")
	b.ReportMetric(float64(wallFloor)/float64(wallNSM), "floor/nsm")
	b.ReportMetric(float64(wallFloorSession)/float64(wallNSM), "floor-session/nsm")
	b.ReportMetric(float64(wallRT)/float64(wallFloor), "roundtrip/floor")
	b.ReportMetric(float64(cpuRT)/float64(cpuNSM), "cpu-roundtrip/nsm")
}

// timedArm returns f wrapped to add its wall time to *wall and, if cpu is not nil, the process's
// CPU time to *cpu.
func timedArm(b *testing.B, wall, cpu *time.Duration, f func()) func() {
	return func() {
		var c0 time.Duration
		if cpu != nil {
			c0 = cpuTime(b)
		}
		t0 := time.Now()
		f()
		*wall += time.Since(t0)
		if cpu != nil {
			*cpu += cpuTime(b) - c0
		}
	}
}

// bareConnMax bounds what a bareConn carries each way: an open of a 64 KiB envelope fits.
const bareConnMax = 80 << 10

// bareConn serves handle behind a bare unix socket: a 4-byte length, the
// request, and the same back (each at most bareConnMax bytes). The returned
// function makes one exchange.
func bareConn(b *testing.B, handle func(req []byte) []byte) func(req []byte) {
	l, err := net.Listen("unix", filepath.Join(b.TempDir(), "floor"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		buf := make([]byte, 4+bareConnMax)
		for {
			if _, err := io.ReadFull(nc, buf[:4]); err != nil {
				return
			}
			req := buf[4 : 4+binary.BigEndian.Uint32(buf)]
			if _, err := io.ReadFull(nc, req); err != nil {
				return
			}
			resp := handle(req)
			if err := writeFramed(nc, resp); err != nil {
				return
			}
		}
	}()
	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	resp := make([]byte, 4+bareConnMax)
	return func(req []byte) {
		if err := writeFramed(nc, req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, resp[:4]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, resp[:binary.BigEndian.Uint32(resp)]); err != nil {
			b.Fatal(err)
		}
	}
}

// writeFramed writes a 4-byte length and b in one writev, copying nothing.
func writeFramed(nc net.Conn, b []byte) error {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	bufs := net.Buffers{hdr[:], b}
	_, err := bufs.WriteTo(nc)
	return err
}
