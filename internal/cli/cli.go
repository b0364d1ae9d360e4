// Package cli is what the project's command-line programs share beyond their flags (package
// cliflag): the usage error that makes exit code 2, the help sentinel, the --version line, and
// the dispatch of a program made of subcommands (attest, nsm-mock), so that every program
// answers --help, --version, an unknown command and a failed command the same way.
//
// Exit codes: 0 success or help, 1 an input was read and rejected (or an operation failed),
// 2 usage: what the user typed is wrong (flags, addresses, files that cannot be opened).
package cli

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/attestd/attestd/internal/version"
)

// UsageError marks an error as a usage error (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// IsUsage reports whether err is (or wraps) a UsageError.
func IsUsage(err error) bool { return errors.As(err, new(UsageError)) }

// ReportUsage writes a usage error as every program does, "NAME: message" and a line naming
// NAME's --help, and returns exit code 2. NAME is the program, or "program command".
func ReportUsage(w io.Writer, name string, err error) int {
	fmt.Fprintf(w, "%s: %v\nrun '%s --help' for usage\n", name, err, name)
	return 2
}

// ErrHelp is returned by a command that printed its help on request (exit code 0).
var ErrHelp = errors.New("help requested")

// VersionLine is what `prog --version` prints: the program, the project's version and the Go
// release it was built with.
func VersionLine(prog string) string {
	return fmt.Sprintf("%s %s (%s)", prog, version.Version, runtime.Version())
}

// Command is one subcommand. Run prints its own help on stdout and returns ErrHelp when asked;
// a UsageError exits 2, any other error 1.
type Command struct {
	Name    string
	Summary string
	Run     func(args []string, stdout, stderr io.Writer) error
}

// Program is a command-line program made of subcommands.
type Program struct {
	Name     string
	Commands []Command // listed in this order by --help
	// Failed, if set, is called with a failed command's arguments and error before the
	// one-line message on stderr (attest prints its --json error object on stdout there).
	Failed func(args []string, err error, stdout io.Writer)
}

// Run runs the subcommand args[0] with the rest of args and returns the exit code. With no
// arguments it prints the usage on stderr (exit 2); --help (or help, -h) prints it on stdout
// and --version (or version) the VersionLine (exit 0). A failed command prints one line,
// "prog cmd: message", and for a usage error a second line naming the command's --help.
func (p *Program) Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		p.PrintUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		p.PrintUsage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, VersionLine(p.Name))
		return 0
	}
	for _, c := range p.Commands {
		if c.Name != args[0] {
			continue
		}
		err := c.Run(args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, ErrHelp):
			return 0
		}
		if p.Failed != nil {
			p.Failed(args[1:], err, stdout)
		}
		if IsUsage(err) {
			return ReportUsage(stderr, p.Name+" "+c.Name, err)
		}
		fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, c.Name, err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\nrun '%s --help' for the list of commands\n", p.Name, args[0], p.Name)
	return 2
}

// PrintUsage prints the program's synopsis and its commands with their summaries.
func (p *Program) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n       %s --version\n\ncommands:\n", p.Name, p.Name)
	width := 0
	for _, c := range p.Commands {
		width = max(width, len(c.Name))
	}
	for _, c := range p.Commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nrun '%s <command> --help' for a command's flags\n", p.Name)
}
