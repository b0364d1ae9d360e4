//go:build linux

package fusetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/mocknsm/fusedev"
)

const (
	envName = "FUSETEST_HELPER"     // factory name; its presence makes the process a helper
	envArg  = "FUSETEST_HELPER_ARG" // argument for the factory
	envDir  = "FUSETEST_HELPER_DIR" // directory to mount on
)

// startWait bounds how long Start waits for the helper to mount. It guards
// against a hang, it is not a performance assertion.
const startWait = 60 * time.Second

// Factory builds the handler the helper serves from a test-chosen argument
// (for example the software NSM's state directory).
type Factory func(arg string) (fusedev.Handler, error)

// RunHelperIfRequested turns the process into a device helper when it was
// started by Start; it then never returns. Call it first in TestMain.
func RunHelperIfRequested(factories map[string]Factory) {
	name, ok := os.LookupEnv(envName)
	if !ok {
		return
	}
	os.Exit(runHelper(factories[name], name, os.Getenv(envArg), os.Getenv(envDir)))
}

func runHelper(f Factory, name, arg, dir string) int {
	fail := func(err error) int {
		fmt.Printf("error: %v\n", err) // read by Start
		return 1
	}
	if f == nil {
		return fail(fmt.Errorf("no helper factory %q", name))
	}
	h, err := f(arg)
	if err != nil {
		return fail(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := fusedev.Mount(dir, h, &fusedev.Options{Logger: log})
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes the pipe or dies
	if err := srv.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "fusetest helper: %v\n", err)
		return 1
	}
	return 0
}

// Require skips the test unless the process can serve FUSE devices (root and
// /dev/fuse). With CI=true the missing capability fails the test instead.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (CAP_SYS_ADMIN to mount FUSE)"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		why = fmt.Sprintf("needs /dev/fuse: %v", err)
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and the FUSE device test %s", why)
	}
	t.Skip(why)
}

// Helper is a running device helper process.
type Helper struct {
	// Path is the device file, reachable from the test's mount namespace.
	Path string
	// Pid is the helper's process id.
	Pid int

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stopped bool
	err     error
}

// Start runs the handler built by the factory registered as name (with arg)
// in a helper process and returns once its device is mounted. The helper is
// stopped when the test ends. Start skips or fails the test as Require does.
func Start(t testing.TB, name, arg string) *Helper {
	t.Helper()
	Require(t)
	dir := t.TempDir() // the mount point; empty on the host side, always
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	// A race-enabled binary sleeps 1s at exit by default; the helper's races
	// are still reported (and fail it with exit status 66).
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), envName+"="+name, envArg+"="+arg, envDir+"="+dir, "GORACE="+gorace)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start device helper: %v", err)
	}
	h := &Helper{
		Path:  fmt.Sprintf("/proc/%d/root%s/%s", cmd.Process.Pid, dir, fusedev.DeviceName),
		Pid:   cmd.Process.Pid,
		cmd:   cmd,
		stdin: stdin,
	}
	t.Cleanup(func() {
		if err := h.Stop(); err != nil {
			t.Errorf("device helper: %v", err)
		}
	})

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout) // the pipe must be drained for Wait
	}()
	select {
	case l := <-line:
		if l != "ready" {
			_ = h.Kill()
			t.Fatalf("device helper did not start: %q", l)
		}
	case <-time.After(startWait):
		_ = h.Kill()
		t.Fatalf("device helper not ready after %v", startWait)
	}
	return h
}

// Stop closes the helper's stdin, which makes it unmount and exit, and waits
// for it (killing it if it does not exit in time). Idempotent.
func (h *Helper) Stop() error {
	if h.stopped {
		return h.err
	}
	h.stopped = true
	_ = h.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		h.err = err
	case <-time.After(startWait):
		_ = h.cmd.Process.Kill()
		<-done
		h.err = errors.New("did not exit after stdin EOF; killed")
	}
	return h.err
}

// Kill ends the helper at once with SIGKILL, which aborts the FUSE
// connection: ioctls in flight and later ones fail (ECONNABORTED/ENOTCONN).
func (h *Helper) Kill() error {
	if h.stopped {
		return h.err
	}
	h.stopped = true
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
	h.err = nil // killed on purpose
	return nil
}
