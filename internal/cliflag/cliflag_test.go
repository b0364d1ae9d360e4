package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for args, want := range map[string]string{
		"--bogus":        "unknown flag --bogus",
		"-bogus":         "unknown flag --bogus",
		"--n":            "--n needs a value",
		"--n=x":          `--n "x": parse error`,
		"--b=maybe":      `--b "maybe": parse error`,
		"--n=":           "--n: the value is empty (leave the flag out rather than give it an empty value)",
		"--n=5 --d=5lol": `--d "5lol": parse error`,
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Int("n", 0, "a number")
		fs.Bool("b", false, "a bool")
		fs.Duration("d", 0, "a duration")
		err := Parse(fs, strings.Fields(args))
		if err == nil || err.Error() != want || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	if err := Parse(fs, []string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestPrintHelp(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("listen", "vsock://:5005", "parent `ADDR`")
	fs.Bool("insecure-dev", false, "relax")
	var b bytes.Buffer
	PrintHelp(&b, fs, "usage: x [flags]\n")
	want := "usage: x [flags]\n\nflags:\n  --insecure-dev\n    \trelax\n  --listen ADDR\n    \tparent ADDR (default vsock://:5005)\n"
	if b.String() != want {
		t.Errorf("help:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestRefuseEmpty: every flag refuses "", in both spellings, and a boolean
// stays boolean; the help still names each flag's argument by its own type.
func TestRefuseEmpty(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.String("s", "", "a string")
		fs.Duration("d", 0, "a duration")
		fs.Bool("b", false, "a bool")
		RefuseEmpty(fs)
		RefuseEmpty(fs) // idempotent: no double wrapping
		return fs
	}
	for _, args := range [][]string{{"--s="}, {"--s", ""}, {"--d="}, {"--b="}} {
		err := Parse(newFS(), args)
		if err == nil || !strings.Contains(err.Error(), ": the value is empty") {
			t.Errorf("%q: %v", args, err)
		}
	}
	fs := newFS()
	if err := Parse(fs, []string{"--b", "--s", "v", "--d", "1s"}); err != nil || fs.Lookup("b").Value.String() != "true" ||
		fs.Lookup("s").Value.String() != "v" || fs.Lookup("d").Value.String() != "1s" {
		t.Errorf("parse: %v", err)
	}
	var b bytes.Buffer
	PrintHelp(&b, fs, "usage: x\n")
	if !strings.Contains(b.String(), "  --d duration\n") || !strings.Contains(b.String(), "  --s string\n") {
		t.Errorf("help does not name the arguments by type:\n%s", b.String())
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct{ args, pos string }{
		{"a --n 1 b", "a b"},
		{"--n 1 a b", "a b"},
		{"a b --n=1", "a b"},
		{"a -- --n b", "a --n b"},
		{"", ""},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		n := fs.Int("n", 0, "a number")
		pos, err := ParseInterspersed(fs, strings.Fields(c.args))
		if err != nil || strings.Join(pos, " ") != c.pos || (strings.Contains(c.args, "--n 1") || strings.Contains(c.args, "--n=1")) != (*n == 1) {
			t.Errorf("%q: %q, n=%d, %v; want %q", c.args, pos, *n, err, c.pos)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	if _, err := ParseInterspersed(fs, []string{"a", "--bogus"}); err == nil || err.Error() != "unknown flag --bogus" {
		t.Errorf("--bogus after a positional: %v", err)
	}
}
