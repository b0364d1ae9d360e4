package attestedtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/vsockrpc"
)

// Defaults and bounds of the server.
const (
	// DefaultMaxDocumentAge is how old a served document may get: the
	// server renews at half of it and never serves one older.
	DefaultMaxDocumentAge = 2 * time.Minute
	// MaxCertLifetime is how long after its document's timestamp a
	// self-signed certificate expires: evidence never outlives its freshness.
	MaxCertLifetime = 5 * time.Minute
	// certBackdate is how long before its document's timestamp a certificate
	// becomes valid, for clients whose clock is behind.
	certBackdate = time.Minute
	// DefaultNonceRate and DefaultNonceBurst bound the endpoint's nonce
	// requests (each is an NSM call), per second and at once.
	DefaultNonceRate  = 10
	DefaultNonceBurst = 20
	// attestTimeout bounds one call to attestd.
	attestTimeout = 30 * time.Second
)

// Attester gets documents binding a TLS key: attestd's local API
// (*vsockrpc.Client implements it).
type Attester interface {
	AttestTLSKey(ctx context.Context, spki, nonce []byte) ([]byte, error)
}

var _ Attester = (*vsockrpc.Client)(nil)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Attester is attestd's local API, for example a *vsockrpc.Client dialed
	// to its unix socket (which redials when attestd restarts). Required.
	Attester Attester
	// Hosts are the DNS names and IP addresses a self-signed certificate
	// names (at least one in self-signed mode; clients check them).
	Hosts []string
	// Certificate, if set, is WebPKI mode: the application's own certificate
	// chain and key (for example from ACME), served as is; documents bind its
	// key and are served only by the endpoint. The key must be ECDSA P-256 or
	// P-384 or Ed25519. nil: self-signed mode, with a P-256 key generated in
	// this process.
	Certificate *tls.Certificate
	// MaxDocumentAge is the oldest a served document may be (default
	// DefaultMaxDocumentAge; at most MaxCertLifetime).
	MaxDocumentAge time.Duration
	// NonceRate and NonceBurst bound the endpoint's fresh-document requests
	// (defaults DefaultNonceRate per second, DefaultNonceBurst at once); over
	// it the endpoint answers 429.
	NonceRate  float64
	NonceBurst int
	// OnRenewError, if set, is told of every failed renewal (also logged).
	OnRenewError func(error)
	// Logger receives renewal reports; nil: slog.Default().
	Logger *slog.Logger

	now func() time.Time // tests: a fake clock
}

// Server is the enclave side of attested TLS. It is safe for concurrent use.
type Server struct {
	cfg     ServerConfig
	log     *slog.Logger
	now     func() time.Time
	key     crypto.Signer
	spki    []byte
	maxAge  time.Duration
	limiter *limiter

	cur     atomic.Pointer[current]
	renewMu sync.Mutex // one renewal at a time
	lastErr atomic.Pointer[renewError]
}

type renewError struct{ err error }

// current is what the server serves now: a document and its certificate.
type current struct {
	doc  []byte
	ts   time.Time // the document's timestamp
	cert *tls.Certificate
}

// NewServer makes the server's key (self-signed mode) and gets its first
// document and certificate; it fails if attestd cannot be reached. Call Run
// to keep them fresh.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if cfg.Attester == nil {
		return nil, errors.New("attestedtls: ServerConfig.Attester is required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.now, maxAge: cfg.MaxDocumentAge}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.maxAge == 0:
		s.maxAge = DefaultMaxDocumentAge
	case s.maxAge < 0 || s.maxAge > MaxCertLifetime:
		return nil, fmt.Errorf("attestedtls: MaxDocumentAge %v not in (0, %v]", s.maxAge, MaxCertLifetime)
	}
	rate, burst := cfg.NonceRate, cfg.NonceBurst
	if rate == 0 {
		rate = DefaultNonceRate
	}
	if burst == 0 {
		burst = DefaultNonceBurst
	}
	if rate < 0 || burst < 0 {
		return nil, errors.New("attestedtls: negative NonceRate or NonceBurst")
	}
	s.limiter = newLimiter(rate, burst, s.now)
	if c := cfg.Certificate; c != nil {
		if len(c.Certificate) == 0 || c.PrivateKey == nil {
			return nil, errors.New("attestedtls: ServerConfig.Certificate has no certificate or key")
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("attestedtls: ServerConfig.Certificate: %w", err)
		}
		signer, ok := c.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, errors.New("attestedtls: ServerConfig.Certificate's key is not a crypto.Signer")
		}
		pub, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil || !bytes.Equal(pub, leaf.RawSubjectPublicKeyInfo) {
			return nil, errors.New("attestedtls: ServerConfig.Certificate's key does not match its certificate")
		}
		s.key, s.spki = signer, leaf.RawSubjectPublicKeyInfo
	} else {
		if len(cfg.Hosts) == 0 {
			return nil, errors.New("attestedtls: self-signed mode needs ServerConfig.Hosts (the names clients connect to)")
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		s.key = k
		if s.spki, err = x509.MarshalPKIXPublicKey(&k.PublicKey); err != nil {
			return nil, err
		}
	}
	if err := vsockrpc.CheckTLSKey(s.spki); err != nil {
		return nil, fmt.Errorf("attestedtls: the TLS key cannot be attested: %w", err)
	}
	if _, err := s.renew(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// PublicKey returns the TLS key's DER SubjectPublicKeyInfo, what documents
// bind.
func (s *Server) PublicKey() []byte { return bytes.Clone(s.spki) }

// Err returns the last renewal's error, nil if it succeeded.
func (s *Server) Err() error {
	if e := s.lastErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// Document returns the document served now and its timestamp.
func (s *Server) Document() ([]byte, time.Time) {
	c := s.cur.Load()
	return c.doc, c.ts
}

// Run renews the document (and certificate) whenever it is half
// MaxDocumentAge old, until ctx ends. A failed renewal is logged, passed to
// OnRenewError and retried at the next tick; once the document is older than
// MaxDocumentAge, handshakes fail until a renewal succeeds (see
// GetCertificate).
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.maxAge / 8)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.renewIfOlder(ctx, s.maxAge/2)
		}
	}
}

// renewIfOlder renews when the current document is at least age old, and
// returns what is current then.
func (s *Server) renewIfOlder(ctx context.Context, age time.Duration) (*current, error) {
	if c := s.cur.Load(); s.now().Sub(c.ts) < age {
		return c, nil
	}
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	if c := s.cur.Load(); s.now().Sub(c.ts) < age { // renewed while we waited
		return c, nil
	}
	return s.renewLocked(ctx)
}

func (s *Server) renew(ctx context.Context) (*current, error) {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	return s.renewLocked(ctx)
}

func (s *Server) renewLocked(ctx context.Context) (*current, error) {
	c, err := s.issue(ctx)
	if err != nil {
		err = fmt.Errorf("attestedtls: renewing the attestation document: %w", err)
		s.lastErr.Store(&renewError{err})
		s.log.Error("attested TLS renewal failed", "error", err.Error())
		if s.cfg.OnRenewError != nil {
			s.cfg.OnRenewError(err)
		}
		return nil, err
	}
	s.lastErr.Store(nil)
	s.cur.Store(c)
	s.log.Debug("attested TLS document renewed", "timestamp", c.ts)
	return c, nil
}

// issue gets a new document for the key and, in self-signed mode, a
// certificate carrying it.
func (s *Server) issue(ctx context.Context) (*current, error) {
	ctx, cancel := context.WithTimeout(ctx, attestTimeout)
	defer cancel()
	doc, u, err := s.attest(ctx, nil)
	if err != nil {
		return nil, err
	}
	c := &current{doc: doc, ts: u.Timestamp, cert: s.cfg.Certificate}
	if c.cert == nil {
		if c.cert, err = s.selfSigned(doc, u.Timestamp); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// attest asks attestd for a document binding the key with nonce, and checks
// it binds exactly the key (attestd is trusted, but a mix-up must not be
// served).
func (s *Server) attest(ctx context.Context, nonce []byte) ([]byte, *attestation.Unverified, error) {
	doc, err := s.cfg.Attester.AttestTLSKey(ctx, s.spki, nonce)
	if err != nil {
		return nil, nil, err
	}
	u, err := attestation.Inspect(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("attestd returned an unreadable document: %w", err)
	}
	if !bytes.Equal(u.PublicKey, s.spki) || !bytes.Equal(u.Nonce, nonce) {
		return nil, nil, errors.New("attestd returned a document for another key or nonce")
	}
	return doc, u, nil
}

// selfSigned makes the certificate for doc: self-signed by the TLS key,
// naming Hosts, valid from ts-certBackdate to ts+MaxCertLifetime, with the
// document in a non-critical id-pe-cmw extension.
func (s *Server) selfSigned(doc []byte, ts time.Time) (*tls.Certificate, error) {
	ext, err := EncodeCMW(doc)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cfg.Hosts[0]},
		NotBefore:             ts.Add(-certBackdate),
		NotAfter:              ts.Add(MaxCertLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: OIDCMW, Critical: false, Value: ext}},
	}
	for _, h := range s.cfg.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.key.Public(), s.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: s.key, Leaf: leaf}, nil
}

// GetCertificate is for tls.Config.GetCertificate: the current certificate,
// renewed first if its document is older than MaxDocumentAge. If that
// renewal fails the handshake fails: an older document is never served.
func (s *Server) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ctx := context.Background()
	if hello != nil {
		ctx = hello.Context()
	}
	c, err := s.renewIfOlder(ctx, s.maxAge)
	if err != nil {
		return nil, err
	}
	return c.cert, nil
}

// TLSConfig returns a server *tls.Config serving the attested certificate
// (TLS 1.2 or later; 1.2 only with extended master secret, which Go always
// negotiates).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate}
}
