// Command attest is the parent-side (relying party) tool: it fetches and verifies
// attestation documents, computes PCRs from enclave images, and describes and
// builds EIF files.
//
// Exit codes: 0 success, 1 rejected or failed, 2 usage error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// command is one `attest` subcommand. run returns an error; a usageError makes
// the exit code 2, any other error 1.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands holds the subcommands; each file registers its own in init.
var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// usageError marks an error as a usage error (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "attest: unknown command %q\n", args[0])
		printUsage(stderr)
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "attest %s: %v\n", c.name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "attest %s: %v\n", c.name, err)
		return 1
	}
}

// errHelp is returned by a subcommand that printed its help on request.
var errHelp = errors.New("help requested")

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: attest <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
}
