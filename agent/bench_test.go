package agent

import (
	"context"
	"testing"
	"time"

	"github.com/attestd/attestd/nsm"
)

// BenchmarkAttest compares an attest round trip through the agent (client ->
// unix socket -> server -> agent -> nsm.Session -> software NSM and back) with
// the software NSM's own attestation cost, measured interleaved in the same
// run so that machine load affects both alike. Metrics: ns-nsm/op (direct
// nsm.Session.Attestation), ns-roundtrip/op and roundtrip/nsm (the ratio).
func BenchmarkAttest(b *testing.B) {
	s := startStack(b, nil)
	direct, err := nsm.Open(nsm.Options{Device: s.mock.Device()})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	k, err := s.agent.keys.Get("rsa")
	if err != nil {
		b.Fatal(err)
	}
	spki := k.DocumentPublicKey()
	c := dial(b, s.parent)
	ctx := context.Background()
	nonce := make([]byte, 32)
	var tNSM, tRT time.Duration
	n := 0
	for b.Loop() {
		nonce[0]++
		t0 := time.Now()
		if _, err := direct.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce, PublicKey: spki}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
			b.Fatal(err)
		}
		tRT += time.Since(t1)
		tNSM += t1.Sub(t0)
		n++
	}
	b.ReportMetric(float64(tNSM.Nanoseconds())/float64(n), "ns-nsm/op")
	b.ReportMetric(float64(tRT.Nanoseconds())/float64(n), "ns-roundtrip/op")
	b.ReportMetric(float64(tRT)/float64(tNSM), "roundtrip/nsm")
}
