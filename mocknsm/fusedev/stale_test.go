//go:build linux

package fusedev

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestClearStaleMount makes a FUSE mount whose server is gone (the /dev/fuse
// descriptor is closed right after the mount) in a private mount namespace and
// checks that clearStaleMount detaches it while leaving a live directory alone.
func TestClearStaleMount(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and the stale-mount test needs root")
		}
		t.Skip("needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and /dev/fuse is missing: %v", err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		// The thread enters a private mount namespace and is never unlocked,
		// so it exits with this goroutine and takes the namespace with it.
		runtime.LockOSThread()
		errc <- staleMountInPrivateNamespace(dir)
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func staleMountInPrivateNamespace(dir string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	log := slog.New(slog.DiscardHandler)
	if err := clearStaleMount(dir, log); err != nil {
		return fmt.Errorf("live directory: %w", err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("nsm-mock", dir, "fuse.nsm-mock", 0, opts); err != nil {
		unix.Close(fd)
		return fmt.Errorf("mount: %w", err)
	}
	unix.Close(fd) // the "server" dies: the connection is aborted
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); !errors.Is(err, unix.ENOTCONN) {
		return fmt.Errorf("stat of the dead mount: %v, want ENOTCONN", err)
	}
	if err := clearStaleMount(dir, log); err != nil {
		return err
	}
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("stat after clearing: %w", err)
	}
	return nil
}
