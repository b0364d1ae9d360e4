package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/version"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	pcr0 := strings.Repeat("ab", 48)
	const id = "i-0123456789abcdef0-enc0123456789abcdef"
	code, stdout, stderr := runCLI("init", "--dir", dir, "--pcr", "0="+pcr0, "--module-id", id, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out struct {
		Dir     string `json:"dir"`
		RootPEM string `json:"root_pem"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("output %q: %v", stdout, err)
	}
	if out.Dir != dir || out.RootPEM != filepath.Join(dir, "root.pem") {
		t.Fatalf("output %+v", out)
	}

	// The state is what the flags said.
	n, err := mocknsm.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := nsm.Open(nsm.Options{Device: n.Device()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d, err := s.DescribeNSM(context.Background())
	if err != nil || d.ModuleID != id {
		t.Fatalf("DescribeNSM = %+v, %v", d, err)
	}
	p, err := s.DescribePCR(context.Background(), 0)
	if err != nil || hex.EncodeToString(p.Value) != pcr0 {
		t.Fatalf("PCR0 = %x, %v", p.Value, err)
	}

	// A second init of the same directory fails (exit 1), keeping the state,
	// and says how to start over.
	root, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("init", "--dir", dir); code != 1 || !strings.Contains(stderr, "already holds mock state") ||
		!strings.Contains(stderr, "nsm-mock init --force --dir "+dir) {
		t.Fatalf("second init: exit %d, %q", code, stderr)
	}
	// --force with a bad flag value removes nothing; then it replaces the
	// state (a new root), keeping other files.
	if err := os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCLI("init", "--force", "--dir", dir, "--module-id", "i-1"); code != 1 || !mocknsm.Initialised(dir) {
		t.Fatalf("--force with a bad module id: exit %d, initialised %v", code, mocknsm.Initialised(dir))
	}
	if code, _, stderr := runCLI("init", "--force", "--dir", dir, "--debug"); code != 0 {
		t.Fatalf("--force: exit %d, %q", code, stderr)
	}
	if root2, err := os.ReadFile(filepath.Join(dir, "root.pem")); err != nil || bytes.Equal(root, root2) {
		t.Errorf("--force kept the old root (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mine.txt")); err != nil {
		t.Errorf("--force removed another file: %v", err)
	}
	// The text output names the root certificate.
	other := filepath.Join(t.TempDir(), "other")
	if code, stdout, _ := runCLI("init", "--dir", other); code != 0 || !strings.Contains(stdout, filepath.Join(other, "root.pem")) {
		t.Fatalf("text output: exit %d, %q", code, stdout)
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string // in stderr (stdout for help)
	}{
		{nil, 2, "usage: nsm-mock"},
		{[]string{"-h"}, 0, "commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"init", "-h"}, 0, "--pcr N=HEX"},
		{[]string{"serve", "--help"}, 0, "--mount DIR"},
		{[]string{"init"}, 2, "--dir is required"},
		{[]string{"init", "--dir", dir, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"init", "--dir", dir, "--pcr", "5=" + strings.Repeat("00", 48)}, 2, "only [0 1 2 3 4 8]"},
		{[]string{"init", "--dir", dir, "--pcr", "0=abc"}, 2, "want 48 bytes of hex"},
		{[]string{"init", "--dir", dir, "--pcr", "0"}, 2, "want N=HEX"},
		{[]string{"init", "--dir", dir, "--pcr", "0=" + strings.Repeat("00", 48), "--pcr", "0=" + strings.Repeat("11", 48)}, 2, "PCR0 given twice"},
		{[]string{"init", "--dir", dir, "--no-such-flag"}, 2, "nsm-mock init: unknown flag --no-such-flag\nrun 'nsm-mock init --help' for usage\n"},
		{[]string{"init", "--dir", dir, "-debug=maybe"}, 2, `--debug "maybe"`},
		{[]string{"--version"}, 0, "nsm-mock " + version.Version + " ("},
		{[]string{"init", "--help"}, 0, "  --force\n"},
		{[]string{"init", "--dir", filepath.Join(dir, "x"), "--module-id", "i-123"}, 1, "module id"},
		{[]string{"serve", "--dir", dir}, 2, "--dir and --mount are required"},
		{[]string{"serve", "--dir", dir, "--mount", dir, "--log-level", "loud"}, 2, "log-level"},
		{[]string{"serve", "--dir", filepath.Join(dir, "missing"), "--mount", filepath.Join(dir, "mnt")}, 1, "no such file"},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		out := stderr
		if tc.code == 0 {
			out = stdout
		}
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, output %q; want exit %d and %q", tc.args, code, out, tc.code, tc.want)
		}
		if tc.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 || tc.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") > 1 && !strings.Contains(stderr, "usage: nsm-mock") {
			t.Errorf("%q: the error is not one line: %q", tc.args, stderr)
		}
	}
}
