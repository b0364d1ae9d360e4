// Package cliflag is what the project's commands share on top of package flag: one-line errors
// that name flags as the documentation does (--flag, not -flag), help in that style, which the
// commands print on standard output when asked for it, flags that refuse an empty value
// (RefuseEmpty), and flags given before or after the positional arguments (ParseInterspersed).
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
			return "--" + m[2] + ": the value is empty (leave the flag out rather than give it an empty value)"
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

// ParseInterspersed is Parse for a command that takes positional arguments: flags may come
// before, between or after them, and everything after "--" is positional. It returns the
// positional arguments in order.
func ParseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := Parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil // after "--", nothing is a flag
		}
		args = rest
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// ErrEmptyValue is what a flag wrapped by RefuseEmpty fails with when given "" (Message then
// says "--flag: the value is empty").
var ErrEmptyValue = errors.New("empty value")

// RefuseEmpty makes every flag defined in fs so far refuse an empty value (--flag= or
// --flag ""): an empty value for a requirement must never mean "no requirement", as
// --nonce "$UNSET" would. Call it after defining the flags, before parsing.
func RefuseEmpty(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		switch v := f.Value.(type) {
		case nonEmpty, nonEmptyBool:
		default:
			if b, ok := v.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				f.Value = nonEmptyBool{nonEmpty{v}}
			} else {
				f.Value = nonEmpty{v}
			}
		}
	})
}

// nonEmpty wraps a flag's Value to refuse "".
type nonEmpty struct{ flag.Value }

func (v nonEmpty) Set(s string) error {
	if s == "" {
		return ErrEmptyValue
	}
	return v.Value.Set(s)
}

// nonEmptyBool keeps a boolean flag boolean (--json without a value).
type nonEmptyBool struct{ nonEmpty }

func (nonEmptyBool) IsBoolFlag() bool { return true }

// Unwrap returns the Value RefuseEmpty wrapped, or v itself: what the flag really holds.
func Unwrap(v flag.Value) flag.Value {
	switch w := v.(type) {
	case nonEmpty:
		return w.Value
	case nonEmptyBool:
		return w.Value
	}
	return v
}

// PrintHelp writes usage, then the flags, named --flag, in the flag package's layout.
func PrintHelp(w io.Writer, fs *flag.FlagSet, usage string) {
	var b strings.Builder
	b.WriteString(usage)
	if !strings.HasSuffix(usage, "flags:\n") {
		b.WriteString("\nflags:\n")
	}
	fs.VisitAll(func(f *flag.Flag) {
		g := *f
		g.Value = Unwrap(f.Value) // the value's own type names its argument
		name, text := flag.UnquoteUsage(&g)
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
