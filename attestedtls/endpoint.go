package attestedtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// The endpoint and the session binding (docs/attested-tls.md).
const (
	// WellKnownPath is the endpoint's path.
	WellKnownPath = "/.well-known/attestation"
	// MinNonceSize and MaxNonceSize bound the endpoint's nonce (bytes).
	MinNonceSize = 16
	MaxNonceSize = 64
	// BindingTLSExporter is the binding parameter's one value.
	BindingTLSExporter = "tls-exporter"
	// ExporterLabel is the TLS exporter label of the session binding (no
	// context, ExporterLength bytes).
	ExporterLabel  = "EXPORTER-attestd-attestation"
	ExporterLength = 32
	// exporterDomain prefixes the hash that becomes the document's nonce.
	exporterDomain = "attestd-tls-exporter-v1"
	// maxResponse bounds an endpoint response a client reads.
	maxResponse = 64 << 10
)

// SessionNonce is the document nonce of the session binding:
// SHA-256("attestd-tls-exporter-v1" || ekm || nonce).
func SessionNonce(ekm, nonce []byte) []byte {
	h := sha256.New()
	h.Write([]byte(exporterDomain))
	h.Write(ekm)
	h.Write(nonce)
	return h.Sum(nil)
}

// EKM returns the session binding's exporter value of a connection.
func EKM(cs *tls.ConnectionState) ([]byte, error) {
	return cs.ExportKeyingMaterial(ExporterLabel, nil, ExporterLength)
}

// Response is the endpoint's JSON body.
type Response struct {
	// AttestationDoc is the COSE_Sign1 document (standard base64); the name
	// is the one Evervault's clients read.
	AttestationDoc []byte `json:"attestation_doc"`
	// MediaType is MediaType.
	MediaType string `json:"media_type"`
	// Binding says how the document binds the TLS key: "public_key" (its
	// public_key is the certificate's SubjectPublicKeyInfo).
	Binding string `json:"binding"`
	// Nonce says what the document's nonce is: "none", "nonce" (the
	// request's) or "tls-exporter" (SessionNonce of this connection).
	Nonce string `json:"nonce"`
	// Timestamp is the document's timestamp, RFC 3339 (a hint: the
	// document is authoritative).
	Timestamp string `json:"timestamp"`
}

// Handler serves GET /.well-known/attestation (docs/attested-tls.md):
// without a query the current document; with ?nonce=HEX a fresh document
// carrying it; with ?nonce=HEX&binding=tls-exporter a fresh document whose
// nonce is SessionNonce of the connection the request came on. Fresh
// documents are rate limited (429). Any other path is 404.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != WellKnownPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	nonce, binding, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	var (
		doc  []byte
		ts   time.Time
		kind = "none"
	)
	if nonce == nil {
		c, err := s.renewIfOlder(r.Context(), s.maxAge)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, "no fresh attestation document")
			return
		}
		doc, ts = c.doc, c.ts
	} else {
		kind = "nonce"
		if binding == BindingTLSExporter {
			if r.TLS == nil {
				httpError(w, http.StatusBadRequest, "binding=tls-exporter needs the request to come over TLS")
				return
			}
			ekm, err := EKM(r.TLS)
			if err != nil {
				httpError(w, http.StatusBadRequest, "this connection has no TLS exporter (TLS 1.3, or 1.2 with extended master secret, is needed)")
				return
			}
			nonce, kind = SessionNonce(ekm, nonce), BindingTLSExporter
		}
		if wait, ok := s.limiter.take(); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			httpError(w, http.StatusTooManyRequests, "too many fresh-document requests")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), attestTimeout)
		defer cancel()
		d, u, err := s.attest(ctx, nonce)
		if err != nil {
			s.log.Warn("attested TLS: fresh document failed", "error", err.Error())
			httpError(w, http.StatusServiceUnavailable, "attestd did not answer")
			return
		}
		doc, ts = d, u.Timestamp
	}
	body, err := json.Marshal(Response{AttestationDoc: doc, MediaType: MediaType, Binding: "public_key",
		Nonce: kind, Timestamp: ts.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		httpError(w, http.StatusInternalServerError, "encoding failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

// parseQuery reads the endpoint's query strictly: only nonce (16..64 bytes
// of hex) and binding (only with a nonce, only "tls-exporter"), each at most
// once.
func parseQuery(raw string) (nonce []byte, binding string, err error) {
	if raw == "" {
		return nil, "", nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, "", fmt.Errorf("malformed query: %v", err)
	}
	for k, v := range q {
		if k != "nonce" && k != "binding" {
			return nil, "", fmt.Errorf("unknown parameter %.32q", k)
		}
		if len(v) != 1 {
			return nil, "", fmt.Errorf("parameter %s given %d times", k, len(v))
		}
	}
	if h, ok := q["nonce"]; ok {
		if nonce, err = hex.DecodeString(h[0]); err != nil {
			return nil, "", errors.New("nonce: not hex")
		}
		if len(nonce) < MinNonceSize || len(nonce) > MaxNonceSize {
			return nil, "", fmt.Errorf("nonce: %d bytes, want %d..%d", len(nonce), MinNonceSize, MaxNonceSize)
		}
	}
	if b, ok := q["binding"]; ok {
		if nonce == nil {
			return nil, "", errors.New("binding needs a nonce")
		}
		if b[0] != BindingTLSExporter {
			return nil, "", fmt.Errorf("binding %.32q: want %q", b[0], BindingTLSExporter)
		}
		binding = b[0]
	}
	return nonce, binding, nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Write(append(b, '\n'))
}

// limiter is a token bucket: rate tokens a second, at most burst.
type limiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, tokens: float64(burst), last: now()}
}

// take takes a token, or says how long until one is there.
func (l *limiter) take() (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if d := now.Sub(l.last); d > 0 {
		l.tokens = math.Min(l.burst, l.tokens+d.Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return 0, true
	}
	if l.rate == 0 {
		return time.Hour, false
	}
	return time.Duration((1 - l.tokens) / l.rate * float64(time.Second)), false
}
