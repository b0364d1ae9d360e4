package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/attestedtls"
	"github.com/attestd/attestd/internal/testproxy"
	"github.com/attestd/attestd/vsockrpc"
)

// TestTLSCheckUsage: what cannot be an attested TLS check is a usage error
// (exit 2); a server that cannot be reached is a failure (exit 1) with a
// JSON error object naming the connect check.
func TestTLSCheckUsage(t *testing.T) {
	pcr := "--pcr=0=" + strings.Repeat("ab", 48)
	for _, args := range [][]string{
		{"tls-check", pcr},
		{"tls-check", "http://127.0.0.1:1", pcr},
		{"tls-check", "127.0.0.1", pcr},
		{"tls-check", "127.0.0.1:1"},
		{"tls-check", "127.0.0.1:1", "--any-pcrs"},
		{"tls-check", "127.0.0.1:1", pcr, "--nonce", "00"},
		{"tls-check", "127.0.0.1:1", pcr, "--at-doc-time"},
		{"tls-check", "127.0.0.1:1", pcr, "--ca", "x.pem"},
		{"tls-check", "127.0.0.1:1", pcr, "--proxy", "https://proxy.example:3128"},
		{"tls-check", "127.0.0.1:1", pcr, "--proxy", "http://"},
		{"tls-check", "127.0.0.1:1", pcr, "--proxy", "proxy.example:3128"},
		{"tls-check", "127.0.0.1:1", pcr, "--proxy", ""},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"tls-check", "https://" + addr + "/x", pcr, "--json"}, &out, &errb); code != 1 {
		t.Fatalf("closed port: exit %d, want 1 (%s)", code, errb.String())
	}
	var j struct {
		Error struct{ Check string } `json:"error"`
	}
	if err := json.Unmarshal(out.Bytes(), &j); err != nil || j.Error.Check != checkConnect {
		t.Fatalf("--json error %q: %v", out.String(), err)
	}
}

// agentTLSKey adapts the agent to attestedtls.Attester.
type agentTLSKey struct{ a *agent.Agent }

func (g agentTLSKey) AttestTLSKey(ctx context.Context, spki, nonce []byte) ([]byte, error) {
	r, err := g.a.AttestTLSKey(ctx, vsockrpc.TLSKeyRequest{PublicKey: spki, Nonce: nonce})
	if err != nil {
		return nil, err
	}
	return r.Document, nil
}

// TestTLSCheckVerifies: tls-check against an attested server on the
// software NSM: exit 0 with the PCRs pinned (text and --json, with and
// without --bind-session), exit 1 naming the pcr-policy check with another
// PCR0.
func TestTLSCheckVerifies(t *testing.T) {
	ta := startFetchAgent(t, nil)
	srv, err := attestedtls.NewServer(context.Background(), attestedtls.ServerConfig{
		Attester: agentTLSKey{ta.agent}, Hosts: []string{"127.0.0.1"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler(), TLSConfig: srv.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0)}
	go hs.ServeTLS(l, "", "")
	defer hs.Close()
	url := "https://" + l.Addr().String()
	flags := []string{"--root", ta.root}
	for _, i := range []uint16{0, 1, 2} {
		flags = append(flags, "--pcr", fmt.Sprintf("%d=%x", i, ta.pcrs[i]))
	}
	tlsCheck := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"tls-check"}, args...), &out, &errb); code != want {
			t.Fatalf("tls-check %q: exit %d, want %d\n%s%s", args, code, want, out.String(), errb.String())
		}
		return out.String()
	}
	out := tlsCheck(0, append([]string{url}, flags...)...)
	if !strings.Contains(out, "attested TLS server verified") || !strings.Contains(out, "session      not bound") {
		t.Fatalf("output:\n%s", out)
	}
	out = tlsCheck(0, append([]string{url, "--bind-session", "--json"}, flags...)...)
	var j struct {
		SessionBinding bool `json:"session_binding"`
		Certificate    struct {
			SPKI string `json:"spki"`
		} `json:"certificate"`
		Document struct {
			PublicKey string `json:"public_key"`
			Nonce     string `json:"nonce"`
		} `json:"document"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || !j.SessionBinding || j.Document.PublicKey != j.Certificate.SPKI ||
		j.Document.PublicKey != fmt.Sprintf("%x", srv.PublicKey()) || len(j.Document.Nonce) != 64 {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	// Through an HTTP proxy: verified end to end; the proxy saw the CONNECT and ciphertext only.
	p := testproxy.Start(t)
	out = tlsCheck(0, append([]string{url, "--bind-session", "--proxy", p.URL.String()}, flags...)...)
	targets, _, relayed := p.Seen()
	if !strings.Contains(out, "attested TLS server verified") || len(targets) == 0 || targets[0] != strings.TrimPrefix(url, "https://") ||
		bytes.Contains(relayed, []byte(attestedtls.WellKnownPath)) {
		t.Fatalf("through the proxy: targets %q\n%s", targets, out)
	}
	p.Refuse("403 Forbidden")
	if out = tlsCheck(1, append([]string{url, "--proxy", p.URL.String()}, flags...)...); out != "" {
		t.Fatalf("a refusing proxy printed %q on stdout", out)
	}

	wrong := append([]string{url, "--json"}, flags...)
	wrong[len(wrong)-1] = "2=" + strings.Repeat("00", 47) + "01"
	out = tlsCheck(1, wrong...)
	var e struct {
		Error struct{ Check string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Error.Check != "pcr-policy" {
		t.Fatalf("wrong PCR2: %v %s", err, out)
	}
}
