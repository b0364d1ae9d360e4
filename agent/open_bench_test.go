package agent

import (
	"context"
	"testing"
	"time"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

// BenchmarkOpen compares open through the local API on its unix socket (client encode, socket,
// server decode, the agent's open, and back to the client's decoded plaintext) with an in-process
// HPKE open of the same X-Wing envelope by the same key: the difference is the protocol and the
// socket. A third arm, floor, is the same in-process open behind a bare unix socket
// (length-prefixed bytes, one goroutine each side, no protocol, no agent): what moving the
// envelope in and the plaintext out costs any agent on this machine. The arms are interleaved in
// an order that rotates every operation, so machine load (and the garbage one arm leaves to the
// next) affects them alike. Reported per size: wall ns/op of each arm, roundtrip/inprocess (the
// issue's target is <= 1.15), floor/inprocess, roundtrip/floor, and the process CPU time of the
// round trip against the in-process open's (cpu-roundtrip/inprocess).
func BenchmarkOpen(b *testing.B) {
	s := startStack(b, nil)
	k, err := s.agent.keys.Get(keys.HPKE)
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s.local)
	ctx := context.Background()
	floor := bareConn(b, func(env []byte) []byte {
		pt, _, err := k.OpenHPKE(env)
		if err != nil {
			panic(err)
		}
		return pt
	})
	for _, size := range []struct {
		name string
		n    int
	}{{"32B", 32}, {"64KiB", seal.MaxPlaintext}} {
		env, err := seal.SealHPKE(k.DocumentPublicKey(), k.PublicKey(), []byte("aad"), make([]byte, size.n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(size.name, func(b *testing.B) {
			var wallIn, wallRT, wallFloor, cpuIn, cpuRT time.Duration
			arms := []func(){
				timedArm(b, &wallIn, &cpuIn, func() {
					if _, _, err := k.OpenHPKE(env); err != nil {
						b.Fatal(err)
					}
				}),
				timedArm(b, &wallRT, &cpuRT, func() {
					r, err := c.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: env})
					if err != nil || len(r.Plaintext) != size.n {
						b.Fatal(err)
					}
				}),
				timedArm(b, &wallFloor, nil, func() { floor(env) }),
			}
			n := 0
			for b.Loop() {
				for i := range arms {
					arms[(n+i)%len(arms)]()
				}
				n++
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
			b.ReportMetric(per(wallIn), "ns-inprocess/op")
			b.ReportMetric(per(wallRT), "ns-roundtrip/op")
			b.ReportMetric(per(wallFloor), "ns-floor/op")
			b.ReportMetric(float64(wallRT)/float64(wallIn), "roundtrip/inprocess")
			b.ReportMetric(float64(wallFloor)/float64(wallIn), "floor/inprocess")
			b.ReportMetric(float64(wallRT)/float64(wallFloor), "roundtrip/floor")
			b.ReportMetric(float64(cpuRT)/float64(cpuIn), "cpu-roundtrip/inprocess")
		})
	}
}
