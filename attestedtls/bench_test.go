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
	plain := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	warmCfg, coldCfg := attested(warm), attested(cold)
	interleave(b, []arm{
		{name: "plain", run: func() { dial(plain) }},
		{name: "warm", run: func() { dial(warmCfg) }},
		{name: "cold", run: func() { dial(coldCfg) }, before: func() {
			cold.cache.mu.Lock()
			clear(cold.cache.entries)
			cold.cache.mu.Unlock()
		}},
	})
}

// arm is one operation of a benchmark that compares several.
type arm struct {
	name   string
	run    func()
	before func() // not timed
	total  time.Duration
}

// interleave runs every arm once per operation, in an order that rotates
// every operation (so load from elsewhere hits them alike), and reports each
// arm's ns per run and its ratio to the first arm.
func interleave(b *testing.B, arms []arm) {
	for _, a := range arms { // warm up
		a.run()
	}
	n := 0
	for b.Loop() {
		for j := range arms {
			a := &arms[(n+j)%len(arms)]
			if a.before != nil {
				a.before()
			}
			t0 := time.Now()
			a.run()
			a.total += time.Since(t0)
		}
		n++
	}
	for i, a := range arms {
		b.ReportMetric(float64(a.total.Nanoseconds())/float64(n), "ns/"+a.name)
		if i > 0 {
			b.ReportMetric(float64(a.total)/float64(arms[0].total), a.name+"/"+arms[0].name)
		}
	}
}

// BenchmarkNonce (arms interleaved): a fresh nonce document through the endpoint (HTTPS GET on a
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
	hc := st.newClient(b, nil).HTTPClient()
	url := "https://" + addr + WellKnownPath + "?nonce=" + hex.EncodeToString(nonce)
	interleave(b, []arm{
		{name: "nsm", run: func() {
			if _, err := st.sess.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce, PublicKey: spki}); err != nil {
				b.Fatal(err)
			}
		}},
		{name: "attestd", run: func() {
			if _, err := st.client.AttestTLSKey(ctx, spki, nonce); err != nil {
				b.Fatal(err)
			}
		}},
		{name: "endpoint", run: func() {
			resp, err := hc.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}},
	})
}
