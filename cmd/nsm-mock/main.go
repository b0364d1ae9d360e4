// Command nsm-mock runs the software NSM (package mocknsm) behind a FUSE file
// that answers the real /dev/nsm ioctl, so unmodified NSM clients run outside
// an enclave.
//
//	nsm-mock init  --dir D [--force] [--pcr N=HEX ...] [--module-id ID] [--region R] [--debug] [--json]
//	nsm-mock serve --dir D --mount DIR [--faults FILE] [--watch-stdin] [--log-level L] [--log-json]
//
// Exit codes: 0 success, 1 failure, 2 usage error. See docs/mock-device.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/attestd/attestd/internal/cliflag"
	"github.com/attestd/attestd/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks an error as a usage error (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// errHelp is returned by a subcommand that printed its help on request.
var errHelp = errors.New("help requested")

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"init", "create the mock PKI and enclave state in a directory", runInit},
	{"serve", "serve the mock NSM as a FUSE device file DIR/nsm", runServe},
}

const usage = `usage: nsm-mock <command> [flags]

commands:
`

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'nsm-mock <command> --help' for the command's flags; 'nsm-mock --version' prints the version.")
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
		fmt.Fprintf(stdout, "nsm-mock %s (%s)\n", version.Version, runtime.Version())
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, errHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "nsm-mock %s: %v\nrun 'nsm-mock %s --help' for usage\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(stderr, "nsm-mock %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "nsm-mock: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

// parseFlags parses a subcommand's flags; -h prints the help to stdout.
// Positional arguments are refused: every input is a named flag.
func parseFlags(fs *flag.FlagSet, synopsis, description string, args []string, stdout io.Writer) error {
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, fmt.Sprintf("usage: nsm-mock %s\n\n%s\n\nflags:\n", synopsis, description))
			return errHelp
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
