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

	"github.com/attestd/attestd/nsm"
)

// BenchmarkHandshake: full TLS 1.3 handshakes (no resumption) on loopback
// against the same attested server: plain (crypto/tls's own verification,
// the self-signed certificate as the trusted root), attested with a warm
// document cache (a lookup), attested on first sight of the certificate (one
// document verification; the verifier's chain cache is warm), and with a new
// Client each time (nothing cached).
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
	plain := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	attested := func(c *Client) *tls.Config {
		cfg, err := c.TLSConfig(addr)
		if err != nil {
			b.Fatal(err)
		}
		cfg.ClientSessionCache = nil // full handshakes only
		cfg.MinVersion = tls.VersionTLS13
		return cfg
	}
	dial := func(b *testing.B, cfg *tls.Config) {
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			dial(b, plain)
		}
	})
	b.Run("attested-warm", func(b *testing.B) {
		cfg := attested(st.newClient(b, nil))
		dial(b, cfg)
		for b.Loop() {
			dial(b, cfg)
		}
	})
	b.Run("attested-cold-certificate", func(b *testing.B) {
		c := st.newClient(b, nil)
		cfg := attested(c)
		dial(b, cfg)
		for b.Loop() {
			c.cache.mu.Lock()
			clear(c.cache.entries)
			c.cache.mu.Unlock()
			dial(b, cfg)
		}
	})
	b.Run("attested-new-client", func(b *testing.B) {
		for b.Loop() {
			dial(b, attested(st.newClient(b, nil)))
		}
	})
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
