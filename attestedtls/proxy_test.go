package attestedtls

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/testproxy"
)

// TestProxy: through an HTTP CONNECT proxy, HTTPClient and Dial reach the attested server with every
// check in place (the proxy relays the handshake and ciphertext, never the request or the answer),
// the session binding holds end to end, a server that fails the policy is refused with nothing sent,
// credentials go in Proxy-Authorization, and a proxy that refuses the tunnel, or an https:// proxy,
// is an error.
func TestProxy(t *testing.T) {
	st := startAgent(t, false)
	srv := st.newServer(t, nil)
	var posted atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/", appMux(srv))
	mux.HandleFunc("/secret", func(http.ResponseWriter, *http.Request) { posted.Add(1) })
	addr := serveHTTPS(t, srv.TLSConfig(), mux)
	p := testproxy.Start(t)
	c := st.newClient(t, func(c *ClientConfig) { c.Proxy = http.ProxyURL(p.URL) })

	resp, err := c.HTTPClient().Get("https://" + addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from the enclave\n" {
		t.Fatalf("%s %q", resp.Status, body)
	}
	conn, err := c.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.BindSession(context.Background(), conn); err != nil || !bytes.Equal(d.PublicKey, srv.PublicKey()) {
		t.Fatalf("session binding through the proxy: %v", err)
	}
	conn.Close()
	targets, auth, relayed := p.Seen()
	if len(targets) < 2 || targets[0] != addr || auth[0] != "" {
		t.Fatalf("CONNECT targets %q (authorization %q), want %s", targets, auth, addr)
	}
	for _, s := range []string{"hello from the enclave", "GET /hello", WellKnownPath} {
		if bytes.Contains(relayed, []byte(s)) {
			t.Fatalf("the proxy saw %q in the clear", s)
		}
	}

	// A client whose policy the server does not meet, through the same proxy: refused, nothing sent.
	o := st.options()
	o.PCRs = map[int][][]byte{0: {bytes.Repeat([]byte{1}, 48)}}
	strict := st.newClient(t, func(c *ClientConfig) { c.Verify, c.Proxy = o, http.ProxyURL(p.URL) })
	_, err = strict.HTTPClient().Post("https://"+addr+"/secret", "text/plain", strings.NewReader("secret request body"))
	wantErr(t, err, ErrDocument, attestation.ErrPCRPolicy)
	if _, _, relayed := p.Seen(); posted.Load() != 0 || bytes.Contains(relayed, []byte("secret request body")) {
		t.Fatal("the request reached the server or crossed the proxy in the clear")
	}

	// Credentials in the proxy URL go in Proxy-Authorization.
	withAuth := *p.URL
	withAuth.User = url.UserPassword("alice", "s3cret")
	authed := st.newClient(t, func(c *ClientConfig) { c.Proxy = http.ProxyURL(&withAuth) })
	if conn, err := authed.Dial(context.Background(), "tcp", addr); err != nil {
		t.Fatal(err)
	} else {
		conn.Close()
	}
	if _, auth, _ := p.Seen(); auth[len(auth)-1] != "Basic YWxpY2U6czNjcmV0" { // alice:s3cret
		t.Fatalf("Proxy-Authorization %q", auth[len(auth)-1])
	}

	// A proxy that refuses the tunnel, an https:// proxy and a Proxy function's error are errors.
	p.Refuse("407 Proxy Authentication Required")
	if _, err := c.Dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "407") {
		t.Fatalf("a refused CONNECT: %v", err)
	}
	httpsProxy := st.newClient(t, func(c *ClientConfig) { c.Proxy = http.ProxyURL(&url.URL{Scheme: "https", Host: p.URL.Host}) })
	if _, err := httpsProxy.Dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "only http://") {
		t.Fatalf("an https:// proxy: %v", err)
	}
	failing := st.newClient(t, func(c *ClientConfig) {
		c.Proxy = func(*http.Request) (*url.URL, error) { return nil, errors.New("no proxy configuration") }
	})
	if _, err := failing.Dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "no proxy configuration") {
		t.Fatalf("a Proxy error: %v", err)
	}
	direct := st.newClient(t, func(c *ClientConfig) { c.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil } })
	if conn, err := direct.Dial(context.Background(), "tcp", addr); err != nil {
		t.Fatalf("Proxy answering nil (direct): %v", err)
	} else {
		conn.Close()
	}
}

// TestProxyWebPKI: in WebPKI mode the document fetch goes through the proxy too.
func TestProxyWebPKI(t *testing.T) {
	st := startAgent(t, false)
	cert, pool := webPKICert(t)
	srv := st.newServer(t, func(c *ServerConfig) { c.Certificate, c.Hosts = cert, nil })
	addr := serveHTTPS(t, srv.TLSConfig(), appMux(srv))
	p := testproxy.Start(t)
	c := st.newClient(t, func(c *ClientConfig) { c.WebPKI, c.RootCAs, c.Proxy = true, pool, http.ProxyURL(p.URL) })
	conn, err := c.Dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if targets, _, _ := p.Seen(); len(targets) != 2 || targets[0] != addr || targets[1] != addr {
		t.Fatalf("CONNECT targets %q: want the connection and the document fetch", targets)
	}
}
