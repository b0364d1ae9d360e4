package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
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
