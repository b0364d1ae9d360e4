package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestUsage: --help on stdout (exit 0); a usage error is one line and the hint on stderr (exit 2),
// before anything is read or dialed.
func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "usage: open-local") ||
		!strings.Contains(out.String(), "--oaep-hash") || errb.Len() != 0 {
		t.Fatalf("--help: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "unknown flag --bogus"},
		{[]string{"--key", "x25519"}, `--key "x25519": want hpke or rsa`},
		{[]string{"--oaep-hash", "sha1"}, "--oaep-hash applies to --key rsa only"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--addr", ""}, "--addr and --in must not be empty"},
	} {
		out.Reset()
		errb.Reset()
		code := run(c.args, strings.NewReader(""), &out, &errb)
		if want := "open-local: " + c.want + "\nrun 'open-local --help' for usage\n"; code != 2 || errb.String() != want || out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2, %q", c.args, code, errb.String(), want)
		}
	}
}
