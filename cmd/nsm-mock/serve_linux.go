//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/mocknsm/fusedev"
)

func serve(f serveFlags, log *slog.Logger) error {
	n, err := mocknsm.Open(f.dir)
	if err != nil {
		return err
	}
	if f.faults != "" {
		if err := applyFaults(n, f.faults); err != nil {
			return err
		}
	}

	created := false
	if _, err := os.Stat(f.mount); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(f.mount, 0o755); err != nil {
			return err
		}
		created = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := fusedev.Mount(f.mount, n, &fusedev.Options{Logger: log})
	if err != nil {
		if created {
			_ = os.Remove(f.mount)
		}
		return err
	}
	stdinEOF := make(chan struct{})
	if f.watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(stdinEOF)
		}()
	}

	var served error
	select {
	case <-ctx.Done():
		log.Info("signal received, unmounting")
	case <-stdinEOF:
		log.Info("stdin closed, unmounting")
	case <-srv.Done():
		served = fmt.Errorf("the device at %s was unmounted from outside", srv.Path())
	}
	if err := srv.Close(); errors.Is(err, fusedev.ErrStillInUse) {
		// Clients still hold the device open; exiting closes /dev/fuse, which
		// fails their next ioctl with ENOTCONN.
		log.Warn("device still open by clients at shutdown", "path", srv.Path())
	} else if err != nil {
		served = errors.Join(served, err)
	}
	if created {
		_ = os.Remove(f.mount) // only if empty, i.e. unmounted
	}
	return served
}

// applyFaults replaces the NSM's faults (those of DIR/faults.json, if any) by
// the ones in path, a JSON object in the faults.json format, parsed strictly.
func applyFaults(n *mocknsm.NSM, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var f mocknsm.Faults
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("faults file %s: %w", path, err)
	}
	if dec.More() {
		return fmt.Errorf("faults file %s: trailing data", path)
	}
	if err := n.SetFaults(f); err != nil {
		return fmt.Errorf("faults file %s: %w", path, err)
	}
	return nil
}
