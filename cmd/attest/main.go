// Command attest is the parent-side (relying party) tool: it fetches and verifies
// attestation documents, computes PCRs from enclave images, and describes and
// builds EIF files.
//
// Exit codes: 0 success, 1 an input was read and rejected (or the agent
// failed), 2 usage error (flags, addresses, files that cannot be opened).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/attestd/attestd/internal/version"
)

// command is one `attest` subcommand. run returns an error; a usageError makes
// the exit code 2, any other error 1. run prints its help on stdout itself
// (parseArgs) and returns errHelp.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

// commands holds the subcommands; each file registers its own in init.
var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		printUsage(stdout)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintf(stdout, "attest %s\n", version.Version)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "attest: unknown command %q\nrun 'attest --help' for the list of commands\n", args[0])
		return 2
	}
	err := c.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	}
	if wantsJSON(args[1:]) {
		writeJSONError(stdout, err)
	}
	fmt.Fprintf(stderr, "attest %s: %v\n", c.name, err)
	if errors.As(err, new(usageError)) {
		fmt.Fprintf(stderr, "run 'attest %s --help' for usage\n", c.name)
		return 2
	}
	return 1
}

// errHelp is returned by a subcommand that printed its help on request.
var errHelp = errors.New("help requested")

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: attest <command> [flags]\n       attest --version\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'attest <command> --help' for a command's flags")
}
