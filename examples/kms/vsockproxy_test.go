package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/attestd/attestd/kmsrecipient"
)

// selfSigned is a CA certificate for host, and the pool that trusts it.
func selfSigned(t *testing.T, host string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// proxy stands in for the parent's vsock-proxy: dialVsock connects to it, and it relays bytes to the
// KMS-shaped server, keeping what went each way.
type proxy struct {
	mu      sync.Mutex
	dialled []string
	seen    bytes.Buffer // every byte relayed, both directions
}

type recordingConn struct {
	net.Conn
	p *proxy
}

func (c recordingConn) Write(b []byte) (int, error) { c.p.record(b); return c.Conn.Write(b) }
func (c recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.p.record(b[:n])
	return n, err
}

func (p *proxy) record(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen.Write(b)
}

// TestVsockProxy runs the flow an enclave runs: the SDK addresses https://kms.us-east-1.amazonaws.com,
// every connection goes to the vsock-proxy's CID:PORT, and TLS is end to end with a server that holds a
// certificate for kms.us-east-1.amazonaws.com: the proxy relays only ciphertext. A server with a
// certificate for another name is refused. (This machine has no vsock peer, so dialVsock is replaced by
// a TCP connection to the server; the transport, the addressing and TLS are the program's own.)
func TestVsockProxy(t *testing.T) {
	a := startAttestd(t)
	srv, _ := kmsServer(t, a.root, a.pcr0)
	const kmsHost = "kms." + region + ".amazonaws.com"
	orig := dialVsock
	for _, tc := range []struct {
		certHost string
		ok       bool
	}{{kmsHost, true}, {"kms.eu-west-1.amazonaws.com", false}} {
		cert, roots := selfSigned(t, tc.certHost)
		ts := httptest.NewUnstartedServer(srv)
		ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
		ts.StartTLS()
		t.Cleanup(ts.Close)

		p := &proxy{}
		dialVsock = func(cid, port uint32) (net.Conn, error) {
			p.mu.Lock()
			p.dialled = append(p.dialled, fmt.Sprintf("%d:%d", cid, port))
			p.mu.Unlock()
			nc, err := net.Dial("tcp", ts.Listener.Addr().String())
			return recordingConn{nc, p}, err
		}
		t.Cleanup(func() { dialVsock = orig })
		hc, err := transport("3:8000", roots)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := kmsrecipient.Dial(context.Background(), a.local)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		e := &Enclave{
			KMS: kms.New(kms.Options{ // no endpoint: the SDK's own https://kms.us-east-1.amazonaws.com
				Region:      region,
				Credentials: credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
				HTTPClient:  hc,
			}),
			Recipients: rc,
		}
		var out bytes.Buffer
		err = demo(context.Background(), e, srv.KeyARN(keyID), &out)
		if !tc.ok {
			var herr x509.HostnameError
			if !errors.As(err, &herr) || herr.Host != kmsHost {
				t.Fatalf("a server certificate for %s: %v, want a hostname error for %s", tc.certHost, err, kmsHost)
			}
			if len(srv.Issued()) != 4 {
				t.Fatalf("the refused server was reached: %d issued", len(srv.Issued()))
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(srv.Issued()) != 4 || !strings.Contains(out.String(), "GenerateRandom: 32 bytes") {
			t.Fatalf("issued %d, output %q", len(srv.Issued()), out.String())
		}
		p.mu.Lock()
		dialled, seen := p.dialled, p.seen.Bytes()
		p.mu.Unlock()
		if len(dialled) == 0 {
			t.Fatal("nothing went through the proxy")
		}
		for _, d := range dialled {
			if d != "3:8000" {
				t.Fatalf("dialled %s, want 3:8000", d)
			}
		}
		// The proxy saw the TLS handshake (SNI in the clear) and ciphertext, never the KMS request.
		for _, s := range []string{"TrentService", "X-Amz-Target", "Recipient", "CiphertextForRecipient", accessKey} {
			if bytes.Contains(seen, []byte(s)) {
				t.Fatalf("the proxy saw %q in the clear", s)
			}
		}
		if !bytes.Contains(seen, []byte(kmsHost)) {
			t.Fatalf("no SNI %s in the %d bytes relayed: the TLS server name is not KMS's", kmsHost, len(seen))
		}
	}
}
