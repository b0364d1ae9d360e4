package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/version"
)

func TestProgram(t *testing.T) {
	var failed []string
	p := &Program{
		Name: "prog",
		Commands: []Command{
			{"ok", "succeeds", func(args []string, stdout, _ io.Writer) error {
				fmt.Fprint(stdout, strings.Join(args, ","))
				return nil
			}},
			{"help", "never reached: help is the program's", nil},
			{"usage", "fails with a usage error", func([]string, io.Writer, io.Writer) error { return Usagef("--x: bad %d", 7) }},
			{"reject", "fails", func([]string, io.Writer, io.Writer) error { return fmt.Errorf("wrapped: %w", errors.New("rejected")) }},
			{"longername", "asks for help", func([]string, io.Writer, io.Writer) error { return ErrHelp }},
		},
		Failed: func(args []string, err error, stdout io.Writer) {
			failed = append(failed, fmt.Sprintf("%q %v", args, err))
		},
	}
	usage := "usage: prog <command> [flags]\n       prog --version\n\ncommands:\n" +
		"  ok          succeeds\n  help        never reached: help is the program's\n  usage       fails with a usage error\n" +
		"  reject      fails\n  longername  asks for help\n\nrun 'prog <command> --help' for a command's flags\n"
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{nil, 2, "", usage},
		{[]string{"--help"}, 0, usage, ""},
		{[]string{"-h"}, 0, usage, ""},
		{[]string{"help"}, 0, usage, ""},
		{[]string{"--version"}, 0, "prog " + version.Version + " (" + runtime.Version() + ")\n", ""},
		{[]string{"version"}, 0, "prog " + version.Version + " (" + runtime.Version() + ")\n", ""},
		{[]string{"ok", "a", "b"}, 0, "a,b", ""},
		{[]string{"longername"}, 0, "", ""},
		{[]string{"usage", "--json"}, 2, "", "prog usage: --x: bad 7\nrun 'prog usage --help' for usage\n"},
		{[]string{"reject"}, 1, "", "prog reject: wrapped: rejected\n"},
		{[]string{"nope"}, 2, "", "prog: unknown command \"nope\"\nrun 'prog --help' for the list of commands\n"},
	} {
		var stdout, stderr bytes.Buffer
		if code := p.Run(tc.args, &stdout, &stderr); code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
	if want := []string{`["--json"] --x: bad 7`, `[] wrapped: rejected`}; fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("Failed called with %q, want %q", failed, want)
	}
	if !IsUsage(fmt.Errorf("ctx: %w", Usagef("x"))) || IsUsage(errors.New("x")) {
		t.Error("IsUsage")
	}
}
