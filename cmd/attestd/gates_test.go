package main

// In-process tests of the start-up gates' wiring: flags, order (before the
// NSM is opened), the relaxed path and the hints. The gates read a fake sysfs
// and a fixed kernel release, never the host.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/testlog"
	"github.com/attestd/attestd/platform"
)

func TestGateFlags(t *testing.T) {
	gates := map[string]func(*options) bool{
		"--insecure-skip-hwrng-check":       func(o *options) bool { return o.skipHWRNG },
		"--insecure-skip-kernel-check":      func(o *options) bool { return o.platform.SkipKernelCheck },
		"--insecure-skip-clocksource-check": func(o *options) bool { return o.platform.SkipClockSourceCheck },
		"--insecure-skip-debug-check":       func(o *options) bool { return o.skipDebug },
	}
	o, _, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for flag, on := range gates {
		if on(o) {
			t.Errorf("%s is on by default", flag)
		}
	}
	for flag := range gates {
		o, _, err := parseFlags([]string{flag}, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", flag, err)
		}
		for other, on := range gates {
			if on(o) != (other == flag) {
				t.Errorf("%s: %s is %v", flag, other, on(o))
			}
		}
	}
	// The software NSM and --insecure-dev relax the three host gates
	// together; the debug gate stays.
	for _, args := range [][]string{{"--nsm", "mock:" + t.TempDir()}, {"--insecure-dev"}, {"--nsm", "/dev/nsm", "--insecure-dev"}} {
		o, _, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for flag, on := range gates {
			if on(o) != (flag != "--insecure-skip-debug-check") {
				t.Errorf("%v: %s is %v", args, flag, on(o))
			}
		}
		if !o.platform.QuietSkips || o.devMode == "" {
			t.Errorf("%v: devMode %q, QuietSkips %v", args, o.devMode, o.platform.QuietSkips)
		}
	}
	if _, _, err := parseFlags([]string{"--insecure-skip-kernel-check=maybe"}, io.Discard); !cli.IsUsage(err) {
		t.Errorf("--insecure-skip-kernel-check=maybe: %v, want a usage error", err)
	}
}

// clockSysfs is a sysfs root whose current_clocksource is cs.
func clockSysfs(t *testing.T, cs string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, platform.ClockSourcePath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(cs+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestServeChecksPlatformFirst: the kernel and clock-source gates run before
// the NSM is opened (the device here does not exist, so reaching it fails
// differently); relaxed, each logs INSECURE and start-up goes on to the NSM.
func TestServeChecksPlatformFirst(t *testing.T) {
	kvm, tsc := clockSysfs(t, "kvm-clock"), clockSysfs(t, "tsc")
	noNSM := filepath.Join(t.TempDir(), "nsm")
	noMock := t.TempDir() // exists (parseFlags checks), holds no mock state
	for _, c := range []struct {
		name     string
		flags    []string
		release  string
		sysfs    string
		wantErr  any    // **platform.KernelError, **platform.ClockSourceError, or nil: the NSM open fails
		wantLog  string // in the log, if set
		wantNSM  string // the NSM open error, when the gates pass (default: open NSM noNSM)
		insecure int    // INSECURE warnings logged
	}{
		{name: "old kernel", release: "5.10.0-27-amd64", sysfs: kvm, wantErr: new(*platform.KernelError)},
		{name: "malformed release", release: "5.17", sysfs: kvm, wantErr: new(*platform.KernelError)},
		{name: "tsc", release: "6.1.0-27-amd64", sysfs: tsc, wantErr: new(*platform.ClockSourceError)},
		{name: "old kernel relaxed, tsc not", flags: []string{"--insecure-skip-kernel-check"}, release: "5.10.0", sysfs: tsc,
			wantErr: new(*platform.ClockSourceError), wantLog: `"msg":"INSECURE: the kernel check failed and is skipped (development only)"`, insecure: 1},
		{name: "both relaxed", flags: []string{"--insecure-skip-kernel-check", "--insecure-skip-clocksource-check"}, release: "5.10.0", sysfs: tsc,
			wantLog: `"msg":"INSECURE: the clock source check failed and is skipped (development only)","component":"platform","error":"platform: clock source is \"tsc\", want \"kvm-clock\"`, insecure: 2},
		// Development modes relax both at once, with one INSECURE warning.
		{name: "--insecure-dev", flags: []string{"--insecure-dev"}, release: "5.10.0", sysfs: tsc, insecure: 1,
			wantLog: `"msg":"the clock source check failed and is relaxed (development mode)","component":"platform","error":"platform: clock source is \"tsc\", want \"kvm-clock\"`},
		{name: "software NSM", flags: []string{"--nsm", "mock:" + noMock}, release: "5.10.0", sysfs: tsc, insecure: 1,
			wantNSM: noMock, wantLog: `"msg":"INSECURE: development mode (--nsm mock:DIR): the host gates kernel, clocksource and hwrng are relaxed; do not trust this agent in production; documents are signed by the mock PKI, not AWS"`},
		{name: "both pass", release: "6.6.38", sysfs: kvm, wantLog: `"msg":"clock source checked","component":"platform","clocksource":"kvm-clock"`},
	} {
		args := append([]string{"--nsm", noNSM, "--listen", "unix://" + filepath.Join(t.TempDir(), "p"), "--local", ""}, c.flags...)
		o, _, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o.platform.Release = func() (string, error) { return c.release, nil }
		o.platform.SysfsRoot = c.sysfs
		o.platform.GOARCH = "amd64"
		logs := &testlog.Buffer{}
		err = serve(context.Background(), o, slog.New(slog.NewJSONHandler(logs, nil)))
		if c.wantErr != nil {
			if !errors.As(err, c.wantErr) {
				t.Errorf("%s: err = %v, want %T", c.name, err, c.wantErr)
			}
		} else if want := cmp.Or(c.wantNSM, "open NSM "+noNSM); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want the NSM open to fail (the gates passed)", c.name, err)
		}
		if n := strings.Count(logs.String(), "INSECURE"); n != c.insecure {
			t.Errorf("%s: %d INSECURE warnings, want %d:\n%s", c.name, n, c.insecure, logs)
		}
		if c.wantLog != "" && !strings.Contains(logs.String(), c.wantLog) {
			t.Errorf("%s: log lacks %s:\n%s", c.name, c.wantLog, logs)
		}
	}
}

func TestHint(t *testing.T) {
	for err, want := range map[error]string{
		&platform.KernelError{}:                                 "--insecure-skip-kernel-check",
		fmt.Errorf("wrapped: %w", &platform.ClockSourceError{}): "--insecure-skip-clocksource-check",
		&platform.DebugCheckError{}:                             "--insecure-skip-debug-check",
		&entropy.HWRNGError{}:                                   "--insecure-skip-hwrng-check",
		errors.New("open NSM /dev/nsm: no such file"):           "",
	} {
		got := hint(err)
		if want == "" {
			if got != "" {
				t.Errorf("hint(%v) = %q, want none", err, got)
			}
			continue
		}
		// The gate's own flag, and for a host gate --insecure-dev; never another gate's flag.
		others := strings.Count(got, "--insecure-skip-") - strings.Count(got, want)
		hostGate := want != "--insecure-skip-debug-check"
		if !strings.Contains(got, want) || others != 0 || strings.Contains(got, "--insecure-dev") != hostGate {
			t.Errorf("hint(%v) = %q, want one naming %q (and --insecure-dev for a host gate)", err, got, want)
		}
	}
}
