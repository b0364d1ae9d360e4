// Package cliflag is what the project's commands share on top of package flag: one-line errors
// that name flags as the documentation does (--flag, not -flag), and help in that style, which
// the commands print on standard output when asked for it.
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// The flag package's messages, rewritten to name flags as the docs do (--flag).
var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	reNeedsArg  = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
	reInvalid   = regexp.MustCompile(`(?s)^invalid (?:boolean )?value (".*") for (?:flag )?-+([^\s:]+): (.*)$`)
)

// Message rewrites an error of flag.FlagSet.Parse as one line naming the flag as --flag.
func Message(err error) string {
	msg := err.Error()
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		return "unknown flag --" + m[1]
	}
	if m := reNeedsArg.FindStringSubmatch(msg); m != nil {
		return "--" + m[1] + " needs a value"
	}
	if m := reInvalid.FindStringSubmatch(msg); m != nil {
		if m[1] == `""` {
			return "--" + m[2] + ": the value is empty"
		}
		return "--" + m[2] + " " + m[1] + ": " + m[3]
	}
	return strings.ReplaceAll(msg, "\n", " ")
}

// Parse parses args with fs, which prints nothing itself. It returns flag.ErrHelp as is (for
// -h/--help), and any other error rewritten by Message.
func Parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return errors.New(Message(err))
}

// PrintHelp writes usage, then the flags, named --flag, in the flag package's layout.
func PrintHelp(w io.Writer, fs *flag.FlagSet, usage string) {
	var b strings.Builder
	b.WriteString(usage)
	if !strings.HasSuffix(usage, "flags:\n") {
		b.WriteString("\nflags:\n")
	}
	fs.VisitAll(func(f *flag.Flag) {
		name, text := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  --%s", f.Name)
		if name != "" {
			b.WriteString(" " + name)
		}
		b.WriteString("\n    \t" + strings.ReplaceAll(text, "\n", "\n    \t"))
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" {
			fmt.Fprintf(&b, " (default %s)", d)
		}
		b.WriteString("\n")
	})
	io.WriteString(w, b.String())
}
