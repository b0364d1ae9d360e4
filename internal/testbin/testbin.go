// Package testbin builds the project's commands for tests that run them as processes (the
// end-to-end tests of attestd, the Python SecretStore, the image scripts): static binaries, as
// make build makes them, built once per test binary by Main or per test by Build.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
)

// Main builds each package (an import path, such as github.com/attestd/attestd/cmd/attestd) into
// a temporary directory and sets *bins[pkg] to the binary's path, runs the tests, removes the
// directory and exits with the tests' code. Call it from TestMain. A failed build exits with 1
// and the compiler's output.
func Main(m *testing.M, bins map[string]*string) {
	dir, err := os.MkdirTemp("", "testbin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for pkg, dst := range bins {
		if *dst, err = build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build builds pkg (an import path) into a directory removed when t ends and returns the
// binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := build(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, path.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
