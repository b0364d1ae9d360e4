package attestedtls

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/attestd/attestd/nsm"
)

// BenchmarkHandshake: full TLS 1.3 handshakes (no resumption) on loopback
// against the same attested server, the arms interleaved in an order that
// rotates every operation so that load from elsewhere hits them alike; each
// arm reports its own ns/handshake:
//
//   - plain: crypto/tls's own verification, the self-signed certificate as
//     the trusted root (same certificate bytes);
//   - warm: attested, the document already verified (a cache lookup);
//   - cold: attested, first sight of the certificate (one document
//     verification; the verifier's chain cache is warm, as it is for a
//     server seen before with another certificate).
func BenchmarkHandshake(b *testing.B) {
	st := startAgent(b, false)
	srv := st.newServer(b, nil)
	addr := serveHTTPS(b, srv.TLSConfig(), appMux(srv))
	cert, err := srv.GetCertificate(nil)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	attested := func(c *Client) *tls.Config {
		cfg, err := c.TLSConfig(addr)
		if err != nil {
			b.Fatal(err)
		}
		cfg.ClientSessionCache = nil // full handshakes only
		cfg.MinVersion = tls.VersionTLS13
		return cfg
	}
	dial := func(cfg *tls.Config) {
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	warm, cold := st.newClient(b, nil), st.newClient(b, nil)
	arms := []struct {
		name   string
		cfg    *tls.Config
		before func()
		total  time.Duration
	}{
		{name: "plain", cfg: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}},
		{name: "warm", cfg: attested(warm)},
		{name: "cold", cfg: attested(cold), before: func() {
			cold.cache.mu.Lock()
			clear(cold.cache.entries)
			cold.cache.mu.Unlock()
		}},
	}
	for _, a := range arms {
		dial(a.cfg)
	}
	n := 0
	for b.Loop() {
		for j := range arms {
			a := &arms[(n+j)%len(arms)]
			if a.before != nil {
				a.before()
			}
			t0 := time.Now()
			dial(a.cfg)
			a.total += time.Since(t0)
		}
		n++
	}
	for _, a := range arms {
		b.ReportMetric(float64(a.total.Nanoseconds())/float64(n), "ns/"+a.name)
	}
	b.ReportMetric(float64(arms[1].total)/float64(arms[0].total), "warm/plain")
	b.ReportMetric(float64(arms[2].total)/float64(arms[0].total), "cold/plain")
}

// BenchmarkNonce: a fresh nonce document through the endpoint (HTTPS GET on a
// kept-alive attested connection, rate limit out of the way) against the
// same document from attestd's local API and from the NSM session directly.
func BenchmarkNonce(b *testing.B) {
	st := startAgent(b, false)
	srv := st.newServer(b, func(c *ServerConfig) { c.NonceRate, c.NonceBurst = 1e9, 1e9 })
	addr := serveHTTPS(b, srv.TLSConfig(), appMux(srv))
	nonce := make([]byte, 32)
	rand.Read(nonce)
	spki := srv.PublicKey()
	ctx := context.Background()
	b.Run("nsm", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.sess.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce, PublicKey: spki}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("attestd", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.client.AttestTLSKey(ctx, spki, nonce); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("endpoint", func(b *testing.B) {
		hc := st.newClient(b, nil).HTTPClient()
		url := "https://" + addr + WellKnownPath + "?nonce=" + hex.EncodeToString(nonce)
		for b.Loop() {
			resp, err := hc.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
	})
}
