// Package testproxy is an HTTP CONNECT proxy for tests of clients that tunnel TLS through one: it
// answers CONNECT (and nothing else), relays the tunnel, and keeps what it saw, so a test can
// check what crossed the proxy in the clear. It stops when the test ends.
package testproxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a running CONNECT proxy.
type Proxy struct {
	// URL is the proxy's address, http://127.0.0.1:PORT.
	URL *url.URL

	mu      sync.Mutex
	targets []string // the CONNECT targets, in order
	auth    []string // their Proxy-Authorization headers
	relayed bytes.Buffer
	refuse  string // if set, the status line sent instead of 200
}

// Start starts a proxy on 127.0.0.1 until t ends.
func Start(t testing.TB) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &Proxy{URL: &url.URL{Scheme: "http", Host: l.Addr().String()}}
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(nc)
		}
	}()
	return p
}

// Refuse makes the proxy answer every later CONNECT with status (for example "407 Proxy
// Authentication Required") instead of opening the tunnel.
func (p *Proxy) Refuse(status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = status
}

// Seen returns the CONNECT targets so far, their Proxy-Authorization headers, and every byte
// relayed in either direction.
func (p *Proxy) Seen() (targets, auth []string, relayed []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auth...), bytes.Clone(p.relayed.Bytes())
}

func (p *Proxy) serve(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		io.WriteString(nc, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auth = append(p.auth, req.Header.Get("Proxy-Authorization"))
	refuse := p.refuse
	p.mu.Unlock()
	if refuse != "" {
		io.WriteString(nc, "HTTP/1.1 "+refuse+"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		io.WriteString(nc, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(nc, "HTTP/1.1 200 Connection Established\r\n\r\n")
	go func() {
		io.Copy(&recorder{p, up}, br) // client to server
		up.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(&recorder{p, nc}, up) // server to client; then both close
}

// recorder writes to w, keeping a copy of what the proxy relayed.
type recorder struct {
	p *Proxy
	w io.Writer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.p.mu.Lock()
	r.p.relayed.Write(b)
	r.p.mu.Unlock()
	return r.w.Write(b)
}
