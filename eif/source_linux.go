package eif

import (
	"io"
	"math"
	"os"
	"syscall"
)

// openSource maps a regular file read-only, so that the hashers read the page cache
// directly instead of a copy; anything else, or a file that cannot be mapped, is read
// through buffers. A file truncated while mapped makes its readers fault (SIGBUS): measure
// turns that into ErrChanged.
func openSource(r io.ReaderAt, size int64) source {
	if f, ok := r.(*os.File); ok && size > 0 && size <= math.MaxInt {
		if rc, err := f.SyscallConn(); err == nil {
			var data []byte
			var merr error
			if err := rc.Control(func(fd uintptr) {
				data, merr = syscall.Mmap(int(fd), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
			}); err == nil && merr == nil {
				_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL) // a hint: readahead for a cold cache
				return &mapSource{data: data}
			}
		}
	}
	return newReadSource(r, size)
}

// mapSource serves chunks straight from the mapping.
type mapSource struct{ data []byte }

func (s *mapSource) next(off, n int64) ([]byte, error) { return s.data[off : off+n : off+n], nil }
func (s *mapSource) release([]byte)                    {}
func (s *mapSource) mapped() []byte                    { return s.data }
func (s *mapSource) close()                            { _ = syscall.Munmap(s.data) }
