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
		"--n=":           "--n: the value is empty",
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
