package attestedtls

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
)

// TestEndpointErrors: methods other than GET and HEAD are 405 with Allow, other paths 404, a
// session binding asked over plain HTTP 400, and a fresh document attestd cannot give 503; every
// error is application/json {"error": ...}.
func TestEndpointErrors(t *testing.T) {
	st := startAgent(t, false)
	att := &flakyAttester{Attester: st.client}
	srv := st.newServer(t, func(c *ServerConfig) { c.Attester = att })
	plain := httptest.NewServer(srv.Handler()) // no TLS: no exporter
	t.Cleanup(plain.Close)
	nonce := hex.EncodeToString(make([]byte, 16))
	do := func(method, url string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := plain.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	wantError := func(method, path string, status int) *http.Response {
		t.Helper()
		resp, body := do(method, plain.URL+path)
		var e struct{ Error string }
		if resp.StatusCode != status {
			t.Fatalf("%s %s: %d %q, want %d", method, path, resp.StatusCode, body, status)
		}
		if status != http.StatusNotFound && (resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &e) != nil || e.Error == "") {
			t.Fatalf("%s %s: %q (%s), want a JSON error", method, path, body, resp.Header.Get("Content-Type"))
		}
		return resp
	}
	if resp := wantError(http.MethodPost, WellKnownPath, http.StatusMethodNotAllowed); resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", resp.Header.Get("Allow"))
	}
	wantError(http.MethodGet, "/.well-known/other", http.StatusNotFound)
	wantError(http.MethodGet, WellKnownPath+"?nonce="+nonce+"&binding=tls-exporter", http.StatusBadRequest)
	if resp, _ := do(http.MethodHead, plain.URL+WellKnownPath); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}

	att.fail.Store(true)
	wantError(http.MethodGet, WellKnownPath+"?nonce="+nonce, http.StatusServiceUnavailable)
	if resp, _ := do(http.MethodGet, plain.URL+WellKnownPath); resp.StatusCode != http.StatusOK {
		t.Errorf("the current document while attestd is down: %d, want 200 (it is still fresh)", resp.StatusCode)
	}
}

// TestClientDocument: Document gives a connection's verified document (from the cache the
// handshake filled) and refuses a connection whose handshake is not complete.
func TestClientDocument(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	c := st.newClient(t, nil)
	conn, err := c.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	d, err := c.Document(&cs)
	if err != nil || string(d.PublicKey) != string(srv.PublicKey()) {
		t.Fatalf("Document: %v", err)
	}
	if _, err := c.Document(&tls.ConnectionState{}); !errors.Is(err, ErrCertificate) {
		t.Fatalf("an incomplete handshake: %v", err)
	}
}

// TestDocCacheBound: the cache never holds more than cacheSize entries; when full it drops the
// expired ones first, then any one.
func TestDocCacheBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dc := docCache{entries: map[[32]byte]cacheEntry{}}
	key := func(i int) (k [32]byte) { k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16); return }
	live := cacheEntry{doc: &attestation.Document{}, notBefore: now.Add(-time.Minute), expires: now.Add(time.Hour)}
	expired := cacheEntry{doc: &attestation.Document{}, notBefore: now.Add(-time.Hour), expires: now.Add(-time.Second)}
	for i := range cacheSize {
		e := live
		if i%2 == 0 {
			e = expired
		}
		dc.add(key(i), e, now)
	}
	if len(dc.entries) != cacheSize {
		t.Fatalf("%d entries, want %d", len(dc.entries), cacheSize)
	}
	dc.add(key(cacheSize), live, now) // full: the expired half goes
	if len(dc.entries) != cacheSize/2+1 {
		t.Fatalf("after adding to a full cache with expired entries: %d entries, want %d", len(dc.entries), cacheSize/2+1)
	}
	for i := cacheSize + 1; len(dc.entries) < cacheSize; i++ {
		dc.add(key(i), live, now)
	}
	dc.add(key(1<<20), live, now) // full of live entries: one goes
	if len(dc.entries) != cacheSize {
		t.Fatalf("%d entries, want %d", len(dc.entries), cacheSize)
	}
	if _, ok := dc.entries[key(1<<20)]; !ok {
		t.Fatal("the new entry was not kept")
	}
	if dc.get(key(1<<20), now) == nil || dc.get(key(1<<20), now.Add(2*time.Hour)) != nil || dc.get(key(1<<20), now.Add(-2*time.Minute)) != nil {
		t.Fatal("get: a live entry not served, or served outside its window")
	}
	if dc.get(key(0), now) != nil {
		t.Fatal("an expired entry was served")
	}
}
