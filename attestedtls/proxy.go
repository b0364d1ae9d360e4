package attestedtls

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// dialTCP opens the TCP connection to addr (HOST:PORT) that a TLS handshake then runs over:
// directly, or, when ClientConfig.Proxy names a proxy for addr, through an HTTP proxy's CONNECT
// tunnel. The proxy relays bytes; TLS, and every check, is still between the client and the
// server, so a proxy sees the server name (SNI) and ciphertext and can refuse or cut the tunnel,
// but cannot make a client accept a server it should not.
func (c *Client) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	var proxy *url.URL
	if c.cfg.Proxy != nil {
		var err error
		proxy, err = c.cfg.Proxy(&http.Request{Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: addr}, Host: addr, Header: http.Header{}})
		if err != nil {
			return nil, fmt.Errorf("attestedtls: proxy for %s: %w", addr, err)
		}
	}
	if proxy == nil {
		return d.DialContext(ctx, network, addr)
	}
	if proxy.Scheme != "http" {
		return nil, fmt.Errorf("attestedtls: proxy %s: only http:// proxies (CONNECT) are supported", proxy.Redacted())
	}
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		proxyAddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	nc, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("attestedtls: proxy %s: %w", proxy.Redacted(), err)
	}
	if err := connect(ctx, nc, proxy, addr); err != nil {
		nc.Close()
		return nil, fmt.Errorf("attestedtls: proxy %s: %w", proxy.Redacted(), err)
	}
	return nc, nil
}

// dialTLS is dialTCP and a TLS handshake with cfg over it, within ctx.
func (c *Client) dialTLS(ctx context.Context, network, addr string, cfg *tls.Config) (*tls.Conn, error) {
	nc, err := c.dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return tc, nil
}

// maxProxyResponse bounds the proxy's answer to CONNECT.
const maxProxyResponse = 16 << 10

// connect asks the proxy on nc for a tunnel to addr and reads its answer, which must be 2xx and
// followed by nothing until the client speaks.
func connect(ctx context.Context, nc net.Conn, proxy *url.URL, addr string) error {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pass)))
	}
	if err := req.Write(nc); err != nil {
		return err
	}
	br := bufio.NewReaderSize(&limitedConn{nc, maxProxyResponse}, 4096)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("reading its answer to CONNECT: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("CONNECT %s: %s", addr, resp.Status)
	}
	if br.Buffered() != 0 {
		return fmt.Errorf("CONNECT %s: the proxy sent %d bytes before the server could have", addr, br.Buffered())
	}
	return nil
}

// limitedConn reads at most n bytes from a connection.
type limitedConn struct {
	net.Conn
	n int
}

func (l *limitedConn) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("the answer to CONNECT is over %d bytes", maxProxyResponse)
	}
	b = b[:min(len(b), l.n)]
	n, err := l.Conn.Read(b)
	l.n -= n
	return n, err
}
