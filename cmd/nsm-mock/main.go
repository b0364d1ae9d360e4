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

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var program = &cli.Program{
	Name: "nsm-mock",
	Commands: []cli.Command{
		{Name: "init", Summary: "create the mock PKI and enclave state in a directory", Run: runInit},
		{Name: "serve", Summary: "serve the mock NSM as a FUSE device file DIR/nsm", Run: runServe},
	},
}

// parseFlags parses a subcommand's flags; -h prints the help to stdout.
// Positional arguments are refused: every input is a named flag.
func parseFlags(fs *flag.FlagSet, synopsis, description string, args []string, stdout io.Writer) error {
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, fmt.Sprintf("usage: nsm-mock %s\n\n%s\n\nflags:\n", synopsis, description))
			return cli.ErrHelp
		}
		return cli.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int { return program.Run(args, stdout, stderr) }
