package attestedtls

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// webPKICert issues, from a new CA, a certificate for 127.0.0.1 with a new
// P-256 key; it returns the certificate and a pool trusting the CA.
func webPKICert(t testing.TB) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	caKey, _ := newKey(t)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := newKey(t)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestWebPKI: the application's own certificate is served and checked as
// usual, the document comes from the endpoint and must bind that
// certificate's key; a server whose endpoint serves another key's document
// is refused, and so is a certificate from an untrusted CA.
func TestWebPKI(t *testing.T) {
	st := startAgent(t, false)
	cert, pool := webPKICert(t)
	srv := st.newServer(t, func(c *ServerConfig) { c.Certificate, c.Hosts = cert, nil })
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	c := st.newClient(t, func(c *ClientConfig) { c.WebPKI, c.RootCAs = true, pool })
	resp, err := c.HTTPClient().Get("https://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	conn, err := c.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.BindSession(context.Background(), conn); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// The same certificate in front of another key's endpoint.
	other, _ := webPKICert(t)
	otherSrv := st.newServer(t, func(c *ServerConfig) { c.Certificate, c.Hosts = other, nil })
	bad := serveHTTPS(t, &tls.Config{Certificates: []tls.Certificate{*cert}}, appMux(otherSrv))
	_, err = st.newClient(t, func(c *ClientConfig) { c.WebPKI, c.RootCAs = true, pool }).Dial(context.Background(), "tcp", bad)
	wantErr(t, err, ErrKeyBinding)

	// A client that does not trust the CA never gets to the document.
	_, err = st.newClient(t, func(c *ClientConfig) { c.WebPKI = true; c.RootCAs = x509.NewCertPool() }).Dial(context.Background(), "tcp", addr)
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("untrusted CA: %v", err)
	}
}
