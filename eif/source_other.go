//go:build !linux

package eif

import "io"

// openSource reads through buffers; the mapping path is Linux only.
func openSource(r io.ReaderAt, size int64) source { return newReadSource(r, size) }
