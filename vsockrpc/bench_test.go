package vsockrpc

import (
	"context"
	"runtime"
	"testing"
)

// benchService is a trivial ParentService: fixed answers, no work.
type benchService struct{ doc []byte }

func (b benchService) Attest(_ context.Context, req AttestRequest) (*AttestResult, error) {
	return &AttestResult{Document: b.doc, PublicKey: make([]byte, 294), Key: req.Key}, nil
}
func (benchService) Describe(context.Context) (*Description, error) { return &Description{}, nil }
func (benchService) Health(context.Context) (*Health, error)        { return &Health{Status: "ok"}, nil }

// BenchmarkRoundTripUnix measures one request and its response over a unix socket with a
// trivial service: health (the smallest exchange) and attest with a 4,600-byte document (the
// size of a real one) and a 32-byte nonce, sequential and from parallel callers sharing one
// client (pipelined).
func BenchmarkRoundTripUnix(b *testing.B) {
	_, addr := startUnix(b, ParentAPI(benchService{doc: make([]byte, 4600)}), Limits{})
	c := dialT(b, addr)
	ctx := context.Background()
	nonce := make([]byte, 32)
	b.Run("health", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Health(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("attest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("attest-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkDecodeRequest measures the server's decoding of an attest request frame body.
func BenchmarkDecodeRequest(b *testing.B) {
	body := cborOf(b, req(1, "attest", map[string]any{"nonce": make([]byte, 32), "key": "rsa"}))
	m := ParentAPI(benchService{}).methods[MethodAttest]
	b.ReportAllocs()
	for b.Loop() {
		r, _, e := decodeRequest(body)
		if e != nil {
			b.Fatal(e)
		}
		if _, e := m.decode(r.params); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkIdleConns holds 1,000 idle connections (each served once), reports the memory they
// cost the process (both ends: server goroutine and buffers, two sockets' Go structures), then
// measures a health round trip of another client meanwhile.
func BenchmarkIdleConns(b *testing.B) {
	const n = 1000
	_, addr := startUnix(b, ParentAPI(benchService{}), Limits{})
	ping := frameOf(cborOf(b, req(1, "health", nil)))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		nc := rawDial(b, addr)
		nc.Write(ping)
		if _, _, perr := readResponse(b, nc); perr != nil {
			b.Fatal(perr)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := (after.StackInuse + after.HeapInuse) - (before.StackInuse + before.HeapInuse)
	c := dialT(b, addr)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Health(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(used)/n, "B/idle-conn")
}
