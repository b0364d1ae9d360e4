package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/version"
)

// hexJSON decodes a JSON hex string (or null), as attest prints every byte string.
type hexJSON []byte

func (h *hexJSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// writeTestFile writes b to dir/name and returns the path.
func writeTestFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func isHexString(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && s != ""
}

// jsonErrorOf decodes the one JSON error object a command run with --json
// prints on stdout when it fails, strictly.
func jsonErrorOf(t *testing.T, stdout string) jsonErrorField {
	t.Helper()
	var j struct {
		Error *jsonErrorField `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || j.Error == nil || dec.More() {
		t.Fatalf("stdout is not one JSON error object (%v): %q", err, stdout)
	}
	return *j.Error
}

// commandLines are the commands whose flags the CLI tests walk.
var commandLines = [][]string{{"verify"}, {"fetch"}, {"describe"}, {"health"}, {"pcr"}, {"inspect"}, {"eif", "describe"}, {"eif", "build"}}

// helpFlags returns the flags `attest CMD --help` lists, and whether each takes a value.
func helpFlags(t *testing.T, cmd []string) map[string]bool {
	t.Helper()
	code, out, errOut := runAttest(t, append(cmd, "--help")...)
	if code != 0 || errOut != "" {
		t.Fatalf("%q --help: exit %d, stderr %q", cmd, code, errOut)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if f, ok := strings.CutPrefix(line, "  --"); ok {
			name, arg, _ := strings.Cut(f, " ")
			flags[name] = arg != ""
		}
	}
	if len(flags) == 0 {
		t.Fatalf("%q --help lists no flag:\n%s", cmd, out)
	}
	return flags
}

// TestEmptyFlagValues: an empty value is never "no requirement" (issue 10
// item 1: --nonce "" turned the nonce check off). Every flag of every command,
// as --flag= and as --flag "", is a usage error saying the value is empty.
func TestEmptyFlagValues(t *testing.T) {
	for _, cmd := range commandLines {
		for name, takesValue := range helpFlags(t, cmd) {
			forms := [][]string{{"--" + name + "="}}
			if takesValue {
				forms = append(forms, []string{"--" + name, ""})
			}
			for _, form := range forms {
				args := append(append([]string{}, cmd...), form...)
				code, out, errOut := runAttest(t, args...)
				if code != 2 || out != "" || !strings.Contains(errOut, "--"+name+": the value is empty") {
					t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
				}
			}
		}
	}
	// The case that was fail-open: a document with another nonce is no longer accepted.
	wantExit(t, 2, "--nonce: the value is empty", "verify", "--at-doc-time", "--any-pcrs", "--nonce", "", prodDoc)
	// attest pcr --role-arn "" says so, instead of "give at least one of ..." (item 11).
	wantExit(t, 2, "--role-arn: the value is empty", "pcr", "--role-arn", "")
}

// singleDash matches a flag named -flag, where the docs say --flag.
var singleDash = regexp.MustCompile(`(^|[\s:"])-[a-z]`)

// TestHelpAndUsageErrors (item 8): --help once, on stdout, exit 0; a usage
// error is one line naming the flag as --flag plus a hint, exit 2.
func TestHelpAndUsageErrors(t *testing.T) {
	for _, cmd := range commandLines {
		name := strings.Join(cmd, " ")
		for _, h := range []string{"--help", "-h", "-help"} {
			code, out, errOut := runAttest(t, append(cmd, h)...)
			if code != 0 || errOut != "" || strings.Count(out, "usage: attest "+cmd[0]) != 1 || !strings.Contains(out, "\n  --json\n") {
				t.Errorf("%s %s: exit %d, stderr %q, stdout:\n%s", name, h, code, errOut, out)
			}
		}
		code, out, errOut := runAttest(t, append(cmd, "--bogus")...)
		want := "attest " + cmd[0] + ": unknown flag --bogus\nrun 'attest " + cmd[0] + " --help' for usage\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("%s --bogus: exit %d, stdout %q, stderr %q, want %q", name, code, out, errOut, want)
		}
		// A flag without its value names it --flag.
		code, _, errOut = runAttest(t, append(cmd, "-json=maybe")...)
		if code != 2 || !strings.HasPrefix(errOut, "attest "+cmd[0]+": --json \"maybe\": ") || strings.Count(errOut, "\n") != 2 {
			t.Errorf("%s -json=maybe: exit %d, stderr %q", name, code, errOut)
		}
	}
	for _, c := range []struct{ args []string }{
		{[]string{"describe", "--addr", "unix:///x", "--timeout", "soon"}},
		{[]string{"verify", "--pcr", "0"}},
		{[]string{"verify", "--any-pcrs", "--nonce"}},
	} {
		code, _, errOut := runAttest(t, c.args...)
		if code != 2 || singleDash.MatchString(errOut) || strings.Count(errOut, "\n") != 2 {
			t.Errorf("%q: exit %d, stderr %q", c.args, code, errOut)
		}
	}
	// attest with no command: usage on stderr, exit 2; --help: stdout, exit 0.
	if code, out, errOut := runAttest(t); code != 2 || out != "" || !strings.Contains(errOut, "usage: attest") {
		t.Errorf("attest: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runAttest(t, "--help"); code != 0 || errOut != "" || !strings.Contains(out, "  inspect ") {
		t.Errorf("attest --help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, errOut := runAttest(t, "frobnicate"); code != 2 || out != "" || strings.Count(errOut, "\n") != 2 {
		t.Errorf("attest frobnicate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		if code, out, errOut := runAttest(t, arg); code != 0 || out != "attest "+version.Version+" ("+runtime.Version()+")\n" || errOut != "" {
			t.Errorf("attest %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

// TestExitCodes (item 7): 2 for what the user typed wrong (flags, addresses,
// files that cannot be opened or are missing), 1 for inputs read and rejected.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeTestFile(t, dir, name, b) }
	missing := filepath.Join(dir, "missing")
	text := write("text", []byte("not what anything wants\n"))
	// A DOC above maxDocText and one above MaxDocumentSize but under maxDocText: both were read.
	huge := write("huge", append([]byte{0x84}, make([]byte, maxDocText+1)...))
	big := write("big", append([]byte{0x84}, make([]byte, attestation.MaxDocumentSize+1)...))
	k, r := eifInputs+"kernel.bin", eifInputs+"ramdisk0.bin"
	build := func(extra ...string) []string {
		return append([]string{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r}, extra...)
	}
	out := filepath.Join(dir, "out.eif")
	none := "unix://" + filepath.Join(dir, "none")
	cases := []struct {
		name string
		want int
		args []string
	}{
		{"verify: missing DOC", 2, []string{"verify", "--any-pcrs", missing}},
		{"verify: DOC is a directory", 2, []string{"verify", "--any-pcrs", dir}},
		{"verify: DOC above the text bound", 1, []string{"verify", "--any-pcrs", huge}},
		{"verify: DOC above MaxDocumentSize", 1, []string{"verify", "--any-pcrs", big}},
		{"verify: DOC not a document", 1, []string{"verify", "--any-pcrs", text}},
		{"verify: missing --root", 2, []string{"verify", "--any-pcrs", "--root", missing, prodDoc}},
		{"verify: --root not a certificate", 1, []string{"verify", "--any-pcrs", "--root", text, prodDoc}},
		{"verify: missing --pcrs-from", 2, []string{"verify", "--pcrs-from", missing, prodDoc}},
		{"verify: --pcrs-from not a policy", 1, []string{"verify", "--pcrs-from", text, prodDoc}},
		{"verify: missing --public-key", 2, []string{"verify", "--any-pcrs", "--public-key", missing, prodDoc}},
		{"verify: bad flag value", 2, []string{"verify", "--max-age", "soon", prodDoc}},
		{"fetch: bad address", 2, []string{"fetch", "--addr", "http://x", "--any-pcrs"}},
		{"fetch: missing --root", 2, []string{"fetch", "--addr", none, "--root", missing, "--any-pcrs"}},
		{"fetch: nobody listening", 1, []string{"fetch", "--addr", none, "--any-pcrs"}},
		{"fetch: --out in a missing directory", 2, []string{"fetch", "--addr", none, "--any-pcrs", "--out", filepath.Join(missing, "d")}},
		{"describe: bad address", 2, []string{"describe", "--addr", "vsock://x"}},
		{"describe: nobody listening", 1, []string{"describe", "--addr", none}},
		{"health: bad address", 2, []string{"health", "--addr", "tcp://"}},
		{"health: nobody listening", 1, []string{"health", "--addr", none}},
		{"pcr: missing --signing-cert", 2, []string{"pcr", "--signing-cert", missing}},
		{"pcr: --signing-cert not a certificate", 1, []string{"pcr", "--signing-cert", text}},
		{"pcr: missing --input", 2, []string{"pcr", "--input", missing}},
		{"pcr: --input a directory", 2, []string{"pcr", "--input", dir}},
		{"pcr: bad --instance-id", 2, []string{"pcr", "--instance-id", "i-XYZ"}},
		{"inspect: missing DOC", 2, []string{"inspect", missing}},
		{"inspect: DOC not a document", 1, []string{"inspect", text}},
		{"eif describe: missing", 2, []string{"eif", "describe", missing}},
		{"eif describe: a directory", 2, []string{"eif", "describe", dir}},
		{"eif describe: not an EIF", 1, []string{"eif", "describe", text}},
		{"eif describe: --policy a directory", 2, []string{"eif", "describe", eifVector, "--policy", dir}},
		{"eif build: missing --kernel", 2, []string{"eif", "build", "--kernel", missing, "--cmdline", "x", "--ramdisk", r, "--output", out}},
		{"eif build: missing --ramdisk", 2, build("--ramdisk", missing, "--output", out)},
		{"eif build: missing --cmdline-file", 2, []string{"eif", "build", "--kernel", k, "--cmdline-file", missing, "--ramdisk", r, "--output", out}},
		{"eif build: missing --metadata", 2, build("--metadata", missing, "--output", out)},
		{"eif build: --metadata not metadata", 1, build("--metadata", text, "--output", out)},
		{"eif build: missing --custom-metadata", 2, build("--custom-metadata", missing, "--output", out)},
		{"eif build: --custom-metadata not JSON", 1, build("--custom-metadata", text, "--output", out)},
		{"eif build: missing --signing-key", 2, build("--signing-key", missing, "--signing-cert", eifInputs+"signing-cert.pem", "--output", out)},
		{"eif build: --signing-key not a key", 1, build("--signing-key", text, "--signing-cert", eifInputs+"signing-cert.pem", "--output", out)},
		{"eif build: --output a directory", 2, build("--output", dir)},
		{"eif build: --output in a missing directory", 2, build("--output", filepath.Join(missing, "x.eif"))},
	}
	for _, c := range cases {
		code, _, errOut := runAttest(t, c.args...)
		if code != c.want {
			t.Errorf("%s: exit %d, want %d: %s", c.name, code, c.want, errOut)
		}
		if lines := strings.Count(errOut, "\n"); lines != c.want {
			t.Errorf("%s: stderr has %d lines, want %d (exit 1: one line; exit 2: one line and the hint): %q", c.name, lines, c.want, errOut)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed build left its output")
	}
}

// TestJSONErrors (item 15): under --json every failure is also a JSON error
// object on stdout naming the failed check.
func TestJSONErrors(t *testing.T) {
	for _, c := range []struct {
		check string
		args  []string
	}{
		{"usage", []string{"verify", "--json", prodDoc}},
		{"usage", []string{"verify", "--json", "--bogus"}},
		{"usage", []string{"verify", "--json", "--nonce", "", "--any-pcrs", prodDoc}},
		{"validity", []string{"verify", "--json", "--any-pcrs", prodDoc}},
		{"debug", []string{"verify", "--json", "--at-doc-time", "--any-pcrs", debugDoc}},
		{"nonce", []string{"verify", "--json", "--at-doc-time", "--any-pcrs", "--nonce", "00", prodDoc}},
		{"pcr-policy", []string{"verify", "--json", "--at-doc-time", "--pcr", "0=" + otherPCR, prodDoc}},
		{"input", []string{"verify", "--json", "--any-pcrs", "verify.go"}},
		{"algorithm", []string{"inspect", "--json", "-"}},
		{"usage", []string{"pcr", "--json", "--role-arn", ""}},
		{"input", []string{"eif", "describe", "--json", "verify.go"}},
		{"agent", []string{"health", "--json", "--addr", "unix://" + filepath.Join(t.TempDir(), "none")}},
	} {
		verifyStdin = bytes.NewReader([]byte{0x84, 0x41, 0xa0, 0x41, 0xa0, 0x40, 0x40})
		code, out, errOut := runAttest(t, c.args...)
		verifyStdin = os.Stdin
		if code == 0 {
			t.Errorf("%q: exit 0", c.args)
			continue
		}
		e := jsonErrorOf(t, out)
		if e.Check != c.check || e.Message == "" || !strings.Contains(errOut, e.Message) {
			t.Errorf("%q: error object %+v, want check %q; stderr %q", c.args, e, c.check, errOut)
		}
	}
}

// TestDoubleDash: after "--" every argument is positional, even one that looks like a flag.
func TestDoubleDash(t *testing.T) {
	fs := newFlagSet("test")
	j := fs.Bool("json", false, "")
	pos, err := parseArgs(fs, "", []string{"a", "--json", "--", "-b", "--json"}, nil)
	if err != nil || !*j || strings.Join(pos, " ") != "a -b --json" {
		t.Errorf("pos %q, json %v, err %v", pos, *j, err)
	}
}
