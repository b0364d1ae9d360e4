//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/mocknsm/fusedev/fusetest"
	"github.com/attestd/attestd/nsm"
)

// TestMain lets the serve tests run this binary as nsm-mock itself.
func TestMain(m *testing.M) {
	if os.Getenv("NSM_MOCK_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type served struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *bytes.Buffer
	mnt    string // the mount point, as serve sees it
	device string // the device, reached from the test's mount namespace
}

// startServe runs `nsm-mock serve --mount <new dir> args...` in a child
// process with its own mount namespace (nothing can leak onto the host) and
// waits for its device, which the test reaches through /proc/<pid>/root.
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	fusetest.Require(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &served{mnt: filepath.Join(t.TempDir(), "mnt"), stderr: new(bytes.Buffer)} // mnt is created by serve
	s.cmd = exec.Command(exe, append([]string{"serve", "--mount", s.mnt}, args...)...)
	s.cmd.Env = append(os.Environ(), "NSM_MOCK_TEST_MAIN=1", "GORACE=atexit_sleep_ms=0")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	s.cmd.Stderr = s.stderr
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	s.device = filepath.Join("/proc", strconv.Itoa(s.cmd.Process.Pid), "root", s.mnt, "nsm")
	// A bound against a hang, not a performance assertion.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(s.device); err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no device after 60s; serve said:\n%s", s.stderr)
		}
	}
}

// wait waits for serve to exit and checks it unmounted cleanly.
func (s *served) wait(t *testing.T) {
	t.Helper()
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "nsm device unmounted") {
		t.Fatalf("serve log:\n%s", s.stderr)
	}
	if _, err := os.Stat(s.mnt); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the mount point serve created is still there: %v", err)
	}
}

func newStateDir(t *testing.T) string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	if code, _, stderr := runCLI("init", "--dir", state); code != 0 {
		t.Fatal(stderr)
	}
	return state
}

func TestServeUntilSIGTERM(t *testing.T) {
	fusetest.Require(t)
	faults := filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(faults, []byte(`{"GetRandom": {"errno": "EIO"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--dir", newStateDir(t), "--faults", faults)

	sess, err := nsm.Open(nsm.Options{Path: s.device})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, err := sess.DescribeNSM(ctx); err != nil || d.MaxPCRs != 32 {
		t.Fatalf("DescribeNSM = %+v, %v", d, err)
	}
	if _, err := sess.GetRandom(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("GetRandom with --faults: %v, want EIO", err)
	}
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if !strings.Contains(s.stderr.String(), "signal received") {
		t.Fatalf("serve log:\n%s", s.stderr)
	}
}

func TestServeWatchStdin(t *testing.T) {
	s := startServe(t, "--dir", newStateDir(t), "--watch-stdin", "--log-json")
	if err := s.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if !strings.Contains(s.stderr.String(), `"msg":"stdin closed, unmounting"`) {
		t.Fatalf("serve log (JSON):\n%s", s.stderr)
	}
}

func TestServeRejectsBadFaults(t *testing.T) {
	state := newStateDir(t)
	faults := filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(faults, []byte(`{"GetRandom": {"errno": "EPERM"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI("serve", "--dir", state, "--mount", t.TempDir(), "--faults", faults)
	if code != 1 || !strings.Contains(stderr, "EPERM") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
}
