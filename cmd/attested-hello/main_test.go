package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsage: --help on stdout (exit 0); missing or contradictory flags are
// usage errors (exit 2) before anything is dialed.
func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: attested-hello") {
		t.Fatalf("--help: exit %d, %q", code, out.String())
	}
	for _, args := range [][]string{
		{},
		{"--listen", "127.0.0.1:0"},
		{"--agent", "unix:///tmp/x.sock"},
		{"--agent", "bogus://x", "--listen", "127.0.0.1:0"},
		{"--agent", "unix:///tmp/x.sock", "--listen", "nohostport"},
		{"--agent", "unix:///tmp/x.sock", "--listen", "0.0.0.0:8443"}, // no name for the certificate
		{"--agent", "unix:///tmp/x.sock", "--listen", "127.0.0.1:0", "--cert", "c.pem"},
		{"--agent", "unix:///tmp/x.sock", "--listen", "127.0.0.1:0", "--host", ""},
		{"--agent", "unix:///tmp/x.sock", "--listen", "127.0.0.1:0", "extra"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 || !strings.HasPrefix(errb.String(), "attested-hello: ") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
}
