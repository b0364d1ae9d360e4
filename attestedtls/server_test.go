package attestedtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
)

// flakyAttester fails while fail is set, and counts calls.
type flakyAttester struct {
	Attester
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *flakyAttester) AttestTLSKey(ctx context.Context, spki, nonce []byte) ([]byte, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return nil, errors.New("attestd is down")
	}
	return f.Attester.AttestTLSKey(ctx, spki, nonce)
}

// TestRenewalFakeClock: the server renews at half MaxDocumentAge, renews
// before serving a document older than MaxDocumentAge, fails handshakes
// rather than serve one, and reports failed renewals.
func TestRenewalFakeClock(t *testing.T) {
	st := startAgent(t, false)
	fa := &flakyAttester{Attester: st.client}
	var offset atomic.Int64 // the fake clock runs ahead of the real one by this
	var reported atomic.Int64
	srv := st.newServer(t, func(c *ServerConfig) {
		c.Attester = fa
		c.now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		c.OnRenewError = func(error) { reported.Add(1) }
	})
	ctx := context.Background()
	doc0, ts0 := srv.Document()
	if _, err := srv.renewIfOlder(ctx, srv.maxAge/2); err != nil || fa.calls.Load() != 1 {
		t.Fatalf("fresh document renewed: %v, %d calls", err, fa.calls.Load())
	}
	offset.Store(int64(61 * time.Second)) // past half of the default 2 minutes
	if _, err := srv.renewIfOlder(ctx, srv.maxAge/2); err != nil || fa.calls.Load() != 2 {
		t.Fatalf("half-aged document not renewed: %v, %d calls", err, fa.calls.Load())
	}
	doc1, ts1 := srv.Document()
	if bytes.Equal(doc0, doc1) || ts1.Before(ts0) {
		t.Fatal("the document did not change")
	}
	offset.Store(int64(3 * time.Minute)) // older than MaxDocumentAge: GetCertificate renews first
	cert, err := srv.GetCertificate(nil)
	if err != nil || fa.calls.Load() != 3 {
		t.Fatalf("GetCertificate: %v, %d calls", err, fa.calls.Load())
	}
	doc2, ts2 := srv.Document()
	if !cert.Leaf.NotAfter.Equal(ts2.Add(MaxCertLifetime).Truncate(time.Second)) && cert.Leaf.NotAfter.After(ts2.Add(MaxCertLifetime)) {
		t.Fatalf("not after %v, document %v", cert.Leaf.NotAfter, ts2)
	}
	ext, _ := EncodeCMW(doc2)
	if !bytes.Contains(cert.Leaf.Raw, ext) {
		t.Fatal("the certificate does not carry the current document")
	}
	fa.fail.Store(true)
	if _, err := srv.GetCertificate(nil); err == nil || srv.Err() == nil || reported.Load() != 1 {
		t.Fatalf("stale document served: %v, Err %v, reported %d", err, srv.Err(), reported.Load())
	}
	fa.fail.Store(false)
	if _, err := srv.GetCertificate(nil); err != nil || srv.Err() != nil {
		t.Fatalf("after recovery: %v, Err %v", err, srv.Err())
	}
}

// TestRunRenewsAcrossAttestdRestart: Run keeps renewing; attestd restarting
// (its socket gone, then back) is a reported failure, then renewals resume.
func TestRunRenewsAcrossAttestdRestart(t *testing.T) {
	st := startAgent(t, false)
	errs := make(chan error, 100)
	srv := st.newServer(t, func(c *ServerConfig) {
		c.MaxDocumentAge = 400 * time.Millisecond
		c.OnRenewError = func(err error) { errs <- err }
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	waitNewDoc := func() {
		_, ts := srv.Document()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, ts2 := srv.Document(); ts2.After(ts) {
				return
			}
		}
		t.Fatal("no renewal")
	}
	waitNewDoc()
	st.stop()
	select {
	case <-errs:
	case <-time.After(30 * time.Second):
		t.Fatal("no renewal failure reported while attestd was down")
	}
	st.start(t)
	waitNewDoc()
	if srv.Err() != nil {
		t.Fatal(srv.Err())
	}
}

func getJSON(t testing.TB, c *http.Client, url string) (int, *Response, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r Response
	if resp.StatusCode == 200 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, &r, resp.Header
}

// TestEndpoint: the current document, a fresh one with a nonce, the strict
// query, and the rate limit.
func TestEndpoint(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, func(c *ServerConfig) { c.NonceRate, c.NonceBurst = 0.001, 2 })
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	hc := st.newClient(t, nil).HTTPClient()
	base := "https://" + addr + WellKnownPath
	v, err := attestation.NewVerifier(st.options())
	if err != nil {
		t.Fatal(err)
	}
	code, r, _ := getJSON(t, hc, base)
	cur, _ := srv.Document()
	if code != 200 || !bytes.Equal(r.AttestationDoc, cur) || r.Nonce != "none" || r.MediaType != MediaType {
		t.Fatalf("GET: %d %+v", code, r)
	}
	nonce := bytes.Repeat([]byte{0xab}, 16)
	code, r, _ = getJSON(t, hc, base+"?nonce="+hex.EncodeToString(nonce))
	if code != 200 || r.Nonce != "nonce" {
		t.Fatalf("nonce: %d", code)
	}
	d, err := v.VerifyNonce(r.AttestationDoc, nonce)
	if err != nil || !bytes.Equal(d.PublicKey, srv.PublicKey()) {
		t.Fatalf("nonce document: %v", err)
	}
	for _, q := range []string{"?nonce=" + hex.EncodeToString(make([]byte, 15)), "?nonce=" + hex.EncodeToString(make([]byte, 65)),
		"?nonce=zz", "?binding=tls-exporter", "?nonce=" + hex.EncodeToString(nonce) + "&binding=other",
		"?nonce=" + hex.EncodeToString(nonce) + "&nonce=" + hex.EncodeToString(nonce), "?x=1"} {
		if code, _, _ := getJSON(t, hc, base+q); code != 400 {
			t.Fatalf("%s: %d, want 400", q, code)
		}
	}
	code, _, _ = getJSON(t, hc, base+"?nonce="+hex.EncodeToString(nonce)) // the burst's second
	if code != 200 {
		t.Fatalf("second nonce: %d", code)
	}
	code, _, h := getJSON(t, hc, base+"?nonce="+hex.EncodeToString(nonce))
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d, Retry-After %q", code, h.Get("Retry-After"))
	}
	if code, _, _ := getJSON(t, hc, base); code != 200 { // the cached document is not rate limited
		t.Fatalf("GET after 429: %d", code)
	}
}

// TestRelayRefusedBySessionBinding: a relay holding the server's stolen key
// terminates the client's TLS with the genuine certificate and forwards the
// bytes to the real server. The handshake check cannot tell (the certificate
// and document are genuine); the session binding can.
func TestRelayRefusedBySessionBinding(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	cert, err := srv.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	stolen := &tls.Certificate{Certificate: cert.Certificate, PrivateKey: srv.key}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				client := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{*stolen}})
				defer client.Close()
				up, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, client)
				io.Copy(client, up)
			}()
		}
	}()
	c := st.newClient(t, nil)
	conn, err := c.Dial(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("the relay's handshake: %v", err)
	}
	defer conn.Close()
	if r := httpGet(t, conn, "/hello"); r.StatusCode != 200 {
		t.Fatalf("through the relay: %s", r.Status)
	}
	_, err = c.BindSession(context.Background(), conn)
	wantErr(t, err, ErrSessionBinding, attestation.ErrNonce)
}
