package main

// What every attest command shares: its flag set, --help, usage errors that name
// flags as --flag, reading input files with the right exit code, and the
// --json error object. A new command uses newFlagSet and parseArgs, reads its
// files with openInput/readInput, and returns usagef / rejectf errors; run
// prints them.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
	"github.com/attestd/attestd/keys"
)

// checkError is an input that was read and rejected (exit code 1) by a check
// of the command itself rather than of the attestation package; check names
// it in the --json error object.
type checkError struct {
	check string
	err   error
}

func (e checkError) Error() string { return e.err.Error() }
func (e checkError) Unwrap() error { return e.err }

// rejectf returns a checkError for the named check.
func rejectf(check, format string, args ...any) error {
	return checkError{check, fmt.Errorf(format, args...)}
}

// Check names of the --json error object beside attestation's own
// (attestation.Error.Check).
const (
	checkUsage      = "usage"       // exit 2
	checkInput      = "input"       // an input file or DOC was read and is not acceptable
	checkAgent      = "agent"       // attestd could not be reached or answered an error
	checkKeyBinding = "key-binding" // the document's public_key does not bind the full key
	checkHealth     = "health"      // attestd answered a status other than ok
	checkOther      = "error"       // anything else
)

// errorCheck names the check an error failed, for the --json error object.
func errorCheck(err error) string {
	var ae *attestation.Error
	var ce checkError
	switch {
	case cli.IsUsage(err):
		return checkUsage
	case errors.As(err, &ae):
		return ae.Check
	case errors.As(err, &ce):
		return ce.check
	case errors.Is(err, keys.ErrBindingMismatch):
		return checkKeyBinding
	}
	return checkOther
}

// jsonErrorField is the "error" member of the object a command run with
// --json prints on stdout when it fails: {"error": {"check": ..., "message": ...}}.
type jsonErrorField struct {
	Check   string `json:"check"`
	Message string `json:"message"`
}

func newJSONErrorField(err error) *jsonErrorField {
	return &jsonErrorField{Check: errorCheck(err), Message: err.Error()}
}

// writeJSONError prints err's JSON error object, unless the command printed
// it itself (reported).
func writeJSONError(w io.Writer, err error) {
	if errors.As(err, new(reported)) {
		return
	}
	writeJSON(w, struct {
		Error *jsonErrorField `json:"error"`
	}{newJSONErrorField(err)})
}

// reported marks an error a command run with --json already printed on
// stdout, within its own output.
type reported struct{ error }

func (r reported) Unwrap() error { return r.error }

// writeJSON prints v as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// wantsJSON reports whether args ask for --json, looked at before parsing so
// that a usage error is reported as JSON too.
func wantsJSON(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-json", "--json", "-json=true", "--json=true", "-json=1", "--json=1":
			return true
		}
	}
	return false
}

// newFlagSet returns the flag set of `attest name`. It prints nothing itself
// (cliflag.Parse): parseArgs prints the help and returns errors for run to
// print.
func newFlagSet(name string) *flag.FlagSet {
	return flag.NewFlagSet("attest "+name, flag.ContinueOnError)
}

// parseArgs parses args, flags before or after the positional arguments, and
// returns the positional ones. Every flag refuses an empty value: an empty
// value for a requirement must never mean "no requirement" (--nonce "$UNSET").
// --help or -h prints usage and the flags on stdout and returns cli.ErrHelp (exit
// 0); anything else wrong is a usageError naming the flag as --flag.
func parseArgs(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) ([]string, error) {
	cliflag.RefuseEmpty(fs)
	pos, err := cliflag.ParseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		cliflag.PrintHelp(stdout, fs, usage)
		return nil, cli.ErrHelp
	case err != nil:
		return nil, cli.UsageError{Err: err}
	}
	return pos, nil
}

// openInput opens a file the user named (flag is "--signing-cert", "DOC", ...):
// a file that cannot be opened is a usage error.
func openInput(flag, path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, cli.Usagef("%s %s: %v", flag, path, pathErr(err))
	}
	return f, nil
}

// readInput reads a file the user named, at most limit bytes ("-": standard
// input). A file that cannot be opened or read is a usage error; one larger
// than limit was read and is rejected (check "input", exit 1).
func readInput(flag, path string, limit int64) ([]byte, error) {
	var r io.Reader = verifyStdin
	if path != "-" {
		f, err := openInput(flag, path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, cli.Usagef("%s %s: %v", flag, path, pathErr(err))
	}
	if int64(len(data)) > limit {
		return nil, rejectf(checkInput, "%s %s: larger than %d bytes", flag, path, limit)
	}
	return data, nil
}

// pathErr drops the operation and path of a *fs.PathError, which the caller
// names itself.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// verifyStdin is where "-" reads from (a variable for tests).
var verifyStdin io.Reader = os.Stdin

// oneOfAliases refuses two names of one flag given together (attest's name
// and nitro-cli's).
func oneOfAliases(fs *flag.FlagSet, name, alias string) error {
	n := 0
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name || f.Name == alias {
			n++
		}
	})
	if n > 1 {
		return cli.Usagef("--%s and --%s are one flag (--%s is nitro-cli's name): give it once", name, alias, alias)
	}
	return nil
}

// checkOutput checks, before any work, that path (named by flag) can be an
// output file: not a directory, in a directory that exists.
func checkOutput(flag, path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return cli.Usagef("%s %s: is a directory", flag, path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case err != nil:
		return cli.Usagef("%s %s: directory %s: %v", flag, path, dir, pathErr(err))
	case !st.IsDir():
		return cli.Usagef("%s %s: %s is not a directory", flag, path, dir)
	}
	return nil
}

// writeFileAtomic writes path, named by flag, through a temporary file in the
// same directory and a rename, so that a failed write never leaves a partial
// file under the final name. A path that cannot be written (a directory, a
// missing directory, no permission) is a usage error naming the path as given.
func writeFileAtomic(flag, path string, write func(*os.File) error) error {
	if err := checkOutput(flag, path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return cli.Usagef("%s %s: cannot create a file in %s: %v", flag, path, dir, pathErr(err))
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		if err = os.Rename(tmp.Name(), path); err != nil {
			err = cli.Usagef("%s %s: %v", flag, path, pathErr(err))
		}
	}
	return err
}
