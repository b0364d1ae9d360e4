package agent

import (
	"context"
	"testing"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

// BenchmarkOpen compares open through the local API on its unix socket with an in-process
// HPKE open of the same X-Wing envelope by the same key: the difference is the protocol and the
// socket. The two alternate within each -count round, so load from elsewhere hits both alike.
func BenchmarkOpen(b *testing.B) {
	s := startStack(b, nil)
	k, err := s.agent.keys.Get(keys.HPKE)
	if err != nil {
		b.Fatal(err)
	}
	c := dial(b, s.local)
	ctx := context.Background()
	for _, size := range []struct {
		name string
		n    int
	}{{"32B", 32}, {"64KiB", seal.MaxPlaintext}} {
		env, err := seal.SealHPKE(k.DocumentPublicKey(), k.PublicKey(), []byte("aad"), make([]byte, size.n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(size.name+"/in-process", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := k.OpenHPKE(env); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(size.name+"/local-socket", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: env}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
