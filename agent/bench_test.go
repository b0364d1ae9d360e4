package agent

import (
	"context"
	"syscall"
	"testing"
	"time"

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
// inside the NSM. Both are interleaved in the same run so that machine load
// affects them alike. It reports wall time and process CPU time (client,
// server, agent and NSM all run in this process) per operation of each, and
// their ratios: roundtrip/nsm (wall) and cpu-roundtrip/nsm (CPU, which other
// processes' load disturbs less). The target is roundtrip/nsm <= 1.10.
func BenchmarkAttest(b *testing.B) {
	s := startStack(b, nil)
	k, err := s.agent.keys.Get("rsa")
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s.parent)
	ctx := context.Background()
	nonce := make([]byte, 32)
	nsmReq := nsmrequest.Attestation{Nonce: nonce, PublicKey: k.DocumentPublicKey()}
	var wallNSM, wallRT, cpuNSM, cpuRT time.Duration
	n := 0
	for b.Loop() {
		nonce[0]++
		raw, err := cbor.Marshal(nsmReq.Encoded()) // as nsm.Session sends it; not timed
		if err != nil {
			b.Fatal(err)
		}
		c0, t0 := cpuTime(b), time.Now()
		if _, errno := s.mock.Process(raw); errno != 0 {
			b.Fatal(errno)
		}
		c1, t1 := cpuTime(b), time.Now()
		if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
			b.Fatal(err)
		}
		c2, t2 := cpuTime(b), time.Now()
		wallNSM += t1.Sub(t0)
		wallRT += t2.Sub(t1)
		cpuNSM += c1 - c0
		cpuRT += c2 - c1
		n++
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	b.ReportMetric(per(wallNSM), "ns-nsm/op")
	b.ReportMetric(per(wallRT), "ns-roundtrip/op")
	b.ReportMetric(float64(wallRT)/float64(wallNSM), "roundtrip/nsm")
	b.ReportMetric(per(cpuNSM), "cpu-ns-nsm/op")
	b.ReportMetric(per(cpuRT), "cpu-ns-roundtrip/op")
	b.ReportMetric(float64(cpuRT)/float64(cpuNSM), "cpu-roundtrip/nsm")
}
