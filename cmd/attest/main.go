// Command attest is the parent-side (relying party) tool: it fetches and verifies
// attestation documents, computes PCRs from enclave images, and describes and
// builds EIF files.
//
// Exit codes: 0 success, 1 an input was read and rejected (or the agent
// failed), 2 usage error (flags, addresses, files that cannot be opened).
package main

import (
	"io"
	"os"
	"sort"

	"github.com/attestd/attestd/internal/cli"
)

// program is attest; each command's file registers it in init. A command
// prints its help on stdout itself (parseArgs) and returns cli.ErrHelp.
var program = &cli.Program{
	Name: "attest",
	Failed: func(args []string, err error, stdout io.Writer) {
		if wantsJSON(args) {
			writeJSONError(stdout, err)
		}
	},
}

func register(c cli.Command) {
	program.Commands = append(program.Commands, c)
	sort.Slice(program.Commands, func(i, j int) bool { return program.Commands[i].Name < program.Commands[j].Name })
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int { return program.Run(args, stdout, stderr) }
