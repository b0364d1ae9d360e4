package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/cli"
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
		{"--agent", "", "--listen", "127.0.0.1:0"},
		{"--bogus"},
	} {
		out.Reset()
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 || out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		} else if lines := strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n"); len(lines) != 2 ||
			!strings.HasPrefix(lines[0], "attested-hello: ") || lines[1] != "run 'attested-hello --help' for usage" {
			t.Errorf("%q: stderr %q, want one line and the hint", args, errb.String())
		}
	}
	errb.Reset()
	if run([]string{"--bogus"}, &out, &errb); !strings.Contains(errb.String(), "--bogus") || strings.Contains(errb.String(), " -bogus") {
		t.Errorf("--bogus: %q, want the flag named --bogus", errb.String())
	}
	errb.Reset()
	if run([]string{"--agent", "", "--listen", "127.0.0.1:0"}, &out, &errb); !strings.Contains(errb.String(), "--agent: the value is empty") {
		t.Errorf("--agent \"\": %q", errb.String())
	}
	out.Reset()
	if code := run([]string{"--version"}, &out, &errb); code != 0 || out.String() != cli.VersionLine("attested-hello")+"\n" {
		t.Errorf("--version: exit %d, %q", code, out.String())
	}
}
