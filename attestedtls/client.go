package attestedtls

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/attestd/attestd/attestation"
)

// DefaultTimeout bounds a client's own requests: the WebPKI mode's document
// fetch and BindSession.
const DefaultTimeout = 10 * time.Second

// cacheSize bounds the verified-document cache (entries).
const cacheSize = 1024

// ClientConfig configures a Client.
type ClientConfig struct {
	// Verify is what a document must satisfy: Root (nil: the AWS root), PCRs
	// (required: a non-empty policy; AnyPCRs is refused, since in
	// self-signed mode the PCRs are the server's identity), AllowDebug,
	// MaxAge, FutureSkew, and Time (zero: now; set, it is the client's clock
	// for every check). Nonce, PublicKey, UserData and AtDocumentTime must be
	// unset: the client sets the bindings per connection.
	Verify attestation.Options
	// WebPKI: the server presents a publicly trusted certificate (checked by
	// crypto/tls against RootCAs and the server name as usual) and serves its
	// document at the endpoint. false: self-signed mode, the document in the
	// certificate.
	WebPKI bool
	// RootCAs are the WebPKI mode's trust anchors (nil: the system's).
	RootCAs *x509.CertPool
	// Timeout bounds the WebPKI document fetch and BindSession (default
	// DefaultTimeout).
	Timeout time.Duration
	// Proxy, if set, returns the HTTP proxy to reach a server through
	// (http://[user:pass@]host:port, tunnelled with CONNECT), or nil for a
	// direct connection; http.ProxyFromEnvironment reads HTTPS_PROXY and
	// NO_PROXY. Every connection the client makes (Dial, HTTPClient, the
	// WebPKI document fetch) uses it. TLS runs end to end through the tunnel,
	// so the checks are the same; nil means no proxy.
	Proxy func(*http.Request) (*url.URL, error)
}

// Client is the relying side of attested TLS. It is safe for concurrent use;
// its cache of verified documents and its TLS session cache are shared by
// every connection it makes.
type Client struct {
	cfg      ClientConfig
	verifier *attestation.Verifier
	maxAge   time.Duration
	timeout  time.Duration
	sessions tls.ClientSessionCache
	cache    docCache
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	o := cfg.Verify
	switch {
	case o.AnyPCRs || len(o.PCRs) == 0:
		return nil, fmt.Errorf("attestedtls: %w: attested TLS needs a PCR policy (the enclave image is the server's identity)", attestation.ErrNoPCRPolicy)
	case o.Nonce != nil || o.PublicKey != nil || o.UserData != nil:
		return nil, errors.New("attestedtls: Verify.Nonce, PublicKey and UserData are set per connection, not in the config")
	case o.AtDocumentTime:
		return nil, errors.New("attestedtls: Verify.AtDocumentTime is for audits, not connections")
	}
	v, err := attestation.NewVerifier(o)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, verifier: v, maxAge: o.MaxAge, timeout: cfg.Timeout,
		sessions: tls.NewLRUClientSessionCache(0)}
	switch c.maxAge {
	case 0:
		c.maxAge = attestation.DefaultMaxAge
	case attestation.NoMaxAge:
		c.maxAge = 0
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.cache.entries = map[[32]byte]cacheEntry{}
	return c, nil
}

func (c *Client) now() time.Time {
	if !c.cfg.Verify.Time.IsZero() {
		return c.cfg.Verify.Time
	}
	return time.Now()
}

// TLSConfig returns a client *tls.Config for the server at addr
// (HOST:PORT): ServerName is HOST, and VerifyConnection checks every
// connection, resumed ones included, before any application byte is sent.
// Use one per server address; it may be used for many connections.
func (c *Client) TLSConfig(addr string) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("attestedtls: address %q is not HOST:PORT", addr)
	}
	cfg := &tls.Config{
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: c.sessions,
		NextProtos:         []string{"http/1.1"},
	}
	if c.cfg.WebPKI {
		cfg.RootCAs = c.cfg.RootCAs
	} else {
		// The self-signed certificate cannot pass the standard chain check;
		// VerifyConnection does every check, hostname included.
		cfg.InsecureSkipVerify = true
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		_, err := c.verify(&cs, host, addr)
		return err
	}
	return cfg, nil
}

// Dial connects to addr and completes a verified handshake.
func (c *Client) Dial(ctx context.Context, network, addr string) (*tls.Conn, error) {
	cfg, err := c.TLSConfig(addr)
	if err != nil {
		return nil, err
	}
	return c.dialTLS(ctx, network, addr, cfg)
}

// HTTPClient returns an *http.Client whose every HTTPS connection is made by
// Dial: nothing is sent to a server that failed the checks. The transport's
// own proxy setting is off (a connection it proxied would bypass Dial); Dial
// uses ClientConfig.Proxy. Plain http:// URLs fail.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.Dial(ctx, network, addr)
		},
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("attestedtls: refusing a plain-text connection")
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// verify checks the peer of a connection and returns its verified document.
// serverName "" skips the hostname check (BindSession: the handshake did it).
func (c *Client) verify(cs *tls.ConnectionState, serverName, addr string) (*attestation.Document, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("%w: the server sent no certificate", ErrCertificate)
	}
	leaf := cs.PeerCertificates[0]
	if !c.cfg.WebPKI {
		if len(cs.PeerCertificates) != 1 {
			return nil, fmt.Errorf("%w: %d certificates, want one self-signed", ErrCertificate, len(cs.PeerCertificates))
		}
		if serverName != "" {
			if err := leaf.VerifyHostname(serverName); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
			}
		}
	}
	now := c.now()
	key := sha256.Sum256(leaf.Raw)
	if d := c.cache.get(key, now); d != nil {
		return d, nil
	}
	var (
		d   *attestation.Document
		err error
	)
	if c.cfg.WebPKI {
		d, err = c.verifyWebPKI(leaf, serverName, addr)
	} else {
		d, err = c.verifySelfSigned(leaf, now)
	}
	if err != nil {
		return nil, err
	}
	expires := d.Timestamp.Add(c.maxAge)
	if c.maxAge == 0 {
		expires = leaf.NotAfter
	}
	for _, ch := range d.Chain {
		expires = minTime(expires, ch.NotAfter)
	}
	c.cache.add(key, cacheEntry{doc: d, notBefore: leaf.NotBefore, expires: minTime(expires, leaf.NotAfter)}, now)
	return d, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// verifySelfSigned checks a self-signed certificate and the document its
// id-pe-cmw extension carries.
func (c *Client) verifySelfSigned(leaf *x509.Certificate, now time.Time) (*attestation.Document, error) {
	i := slices.IndexFunc(leaf.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(OIDCMW) })
	if i < 0 {
		return nil, fmt.Errorf("%w: the certificate has no id-pe-cmw extension", ErrNoEvidence)
	}
	ext := leaf.Extensions[i]
	if ext.Critical {
		return nil, ErrCriticalExtension
	}
	if len(leaf.UnhandledCriticalExtensions) != 0 {
		return nil, fmt.Errorf("%w: unhandled critical extension %v", ErrCertificate, leaf.UnhandledCriticalExtensions[0])
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, fmt.Errorf("%w: not self-signed: %v", ErrCertificate, err)
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: valid %s .. %s, not at %s", ErrCertificate,
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	doc, err := DecodeCMW(ext.Value)
	if err != nil {
		return nil, err
	}
	d, err := c.checkDocument(doc, nil, leaf)
	if err != nil {
		return nil, err
	}
	if leaf.NotAfter.After(d.Timestamp.Add(MaxCertLifetime)) {
		return nil, fmt.Errorf("%w: the certificate outlives its document by more than %v (not after %s, document %s)",
			ErrCertificate, MaxCertLifetime, leaf.NotAfter.Format(time.RFC3339), d.Timestamp.Format(time.RFC3339))
	}
	return d, nil
}

// checkDocument verifies doc (with nonce, if not nil) and that it binds
// leaf's key.
func (c *Client) checkDocument(doc, nonce []byte, leaf *x509.Certificate) (*attestation.Document, error) {
	var (
		d   *attestation.Document
		err error
	)
	if nonce == nil {
		d, err = c.verifier.Verify(doc)
	} else {
		d, err = c.verifier.VerifyNonce(doc, nonce)
	}
	if err != nil {
		if nonce != nil && errors.Is(err, attestation.ErrNonce) {
			return nil, fmt.Errorf("%w: %w: the document does not commit to this connection's TLS exporter", ErrSessionBinding, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrDocument, err)
	}
	if !bytes.Equal(d.PublicKey, leaf.RawSubjectPublicKeyInfo) {
		return nil, fmt.Errorf("%w: its public_key is not the certificate's SubjectPublicKeyInfo", ErrKeyBinding)
	}
	return d, nil
}

// verifyWebPKI fetches the document of a WebPKI server (whose chain and name
// crypto/tls has checked) from its endpoint, on a separate connection that
// carries nothing but that GET, and checks that it binds leaf's key.
func (c *Client) verifyWebPKI(leaf *x509.Certificate, serverName, addr string) (*attestation.Document, error) {
	if serverName == "" {
		return nil, fmt.Errorf("%w: no document verified for this certificate", ErrNoEvidence)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	tc, err := c.dialTLS(ctx, "tcp", addr, &tls.Config{ServerName: serverName, RootCAs: c.cfg.RootCAs,
		MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the document: %v", ErrNoEvidence, err)
	}
	defer tc.Close()
	resp, err := get(ctx, tc, serverName, "")
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the document: %w", ErrNoEvidence, err)
	}
	return c.checkDocument(resp.AttestationDoc, nil, leaf)
}

// BindSession performs the session binding on conn, an open connection made
// with this Client (Dial or TLSConfig): it asks the server, on conn itself,
// for a document whose nonce is SessionNonce(this connection's exporter, a
// fresh random nonce), and checks it. A relay that terminates TLS with the
// server's (stolen) key and forwards the request fails with
// ErrSessionBinding. conn may carry further HTTP/1.1 requests afterwards.
func (c *Client) BindSession(ctx context.Context, conn *tls.Conn) (*attestation.Document, error) {
	cs := conn.ConnectionState()
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("%w: the handshake is not complete", ErrSessionBinding)
	}
	if _, err := c.verify(&cs, "", ""); err != nil { // normally a cache hit: Dial checked it
		return nil, err
	}
	ekm, err := EKM(&cs)
	if err != nil {
		return nil, fmt.Errorf("%w: no TLS exporter on this connection: %v", ErrSessionBinding, err)
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	host := cs.ServerName
	if host == "" {
		host = conn.RemoteAddr().String()
	}
	resp, err := get(ctx, conn, host, "nonce="+hex.EncodeToString(nonce)+"&binding="+BindingTLSExporter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSessionBinding, err)
	}
	return c.checkDocument(resp.AttestationDoc, SessionNonce(ekm, nonce), cs.PeerCertificates[0])
}

// get sends GET WellKnownPath?query on conn (HTTP/1.1) and reads the JSON
// response strictly (bounded, 200, application/json, attestation_doc
// present).
func get(ctx context.Context, conn *tls.Conn, host, query string) (*Response, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: WellKnownPath, RawQuery: query},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Host: host}
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: the endpoint answered %s: %.200s", ErrEvidence, resp.Status, body)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("%w: response over %d bytes", ErrEvidence, maxResponse)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("%w: content type %q, want application/json", ErrEvidence, mt)
	}
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEvidence, err)
	}
	if len(r.AttestationDoc) == 0 {
		return nil, fmt.Errorf("%w: no attestation_doc", ErrEvidence)
	}
	return &r, nil
}

// docCache holds verified documents by certificate (SHA-256 of its DER)
// until the earliest of: the document's max age, the certificate's and the
// document chain's expiry. An entry is valid only while everything Verify
// checks against the time would still pass.
type docCache struct {
	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
}

type cacheEntry struct {
	doc                *attestation.Document
	notBefore, expires time.Time
}

func (dc *docCache) get(key [32]byte, now time.Time) *attestation.Document {
	dc.mu.Lock()
	e, ok := dc.entries[key]
	dc.mu.Unlock()
	if !ok || now.Before(e.notBefore) || !now.Before(e.expires) {
		return nil
	}
	return e.doc
}

func (dc *docCache) add(key [32]byte, e cacheEntry, now time.Time) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.entries) >= cacheSize {
		for k, old := range dc.entries {
			if !now.Before(old.expires) {
				delete(dc.entries, k)
			}
		}
		for k := range dc.entries { // still full: drop any one
			if len(dc.entries) < cacheSize {
				break
			}
			delete(dc.entries, k)
		}
	}
	dc.entries[key] = e
}

// Document returns the verified document of a connection made with this
// Client (from the cache the handshake filled, or verified again).
func (c *Client) Document(cs *tls.ConnectionState) (*attestation.Document, error) {
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("%w: the handshake is not complete", ErrCertificate)
	}
	return c.verify(cs, "", "")
}
