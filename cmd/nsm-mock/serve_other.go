//go:build !linux

package main

import (
	"errors"
	"log/slog"
)

func serve(serveFlags, *slog.Logger) error {
	return errors.New("serving the FUSE device needs Linux")
}
