//go:build linux

package fusedev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

const (
	// IoctlCmd is NSM_IOCTL_RAW, _IOWR(0x0A, 0, struct nsm_raw), the only
	// command the device answers.
	IoctlCmd = 0xC0200A00
	// MaxRequestSize is NSM_REQUEST_MAX_SIZE: longer requests fail with EMSGSIZE.
	MaxRequestSize = 0x1000
	// MaxResponseSize is NSM_RESPONSE_MAX_SIZE, the longest response a device
	// produces.
	MaxResponseSize = 0x3000
	// DeviceName is the name of the device file inside the mount directory.
	DeviceName = "nsm"

	messageSize = 32 // struct nsm_raw: 4 x u64
)

// Handler answers one NSM request: encoded CBOR request in, encoded CBOR
// response out. A non-zero errno makes the ioctl fail with it (no response is
// written). The software NSM's (*mocknsm.NSM).Process satisfies it.
// Process is called for one request at a time.
type Handler interface {
	Process(req []byte) (resp []byte, errno syscall.Errno)
}

// Options tune a mount. The zero value is ready to use.
type Options struct {
	// Logger receives the server's log records; nil means slog.Default().
	Logger *slog.Logger
}

// Server is a mounted device. Its file is at Path().
type Server struct {
	dir    string
	srv    *fuse.Server
	log    *slog.Logger
	dev    *device
	done   chan struct{} // closed when the FUSE connection has ended
	once   sync.Once
	closed error
}

// closeWait bounds how long Close waits for the FUSE connection to end after
// the unmount; a connection still referenced elsewhere (an open fd on a lazily
// detached mount, a bind mount in another namespace) ends when this process
// exits and its /dev/fuse descriptor is closed.
const closeWait = 5 * time.Second

// ErrStillInUse is returned by Close when the mount was detached but the FUSE
// connection is still referenced; it ends when the serving process exits.
var ErrStillInUse = errors.New("fusedev: unmounted, but the device is still in use; it ends when this process exits")

// Mount mounts a FUSE file system with the single device file DeviceName on
// the existing directory dir and serves h on it until Close. A stale mount
// left at dir by a server that died (stat fails with ENOTCONN) is lazily
// detached first. The mount allows other users (allow_other) and needs no
// fusermount (direct mount, CAP_SYS_ADMIN required).
func Mount(dir string, h Handler, opts *Options) (*Server, error) {
	if h == nil {
		return nil, errors.New("fusedev: nil handler")
	}
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := clearStaleMount(dir, log); err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("fusedev: mount point: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fusedev: mount point %s is not a directory", dir)
	}

	dev := &device{h: h, log: log, mounted: uint64(time.Now().Unix())}
	root := &rootNode{dev: dev}
	// The tree never changes: let the kernel cache entries and attributes.
	long := time.Hour
	srv, err := fs.Mount(dir, root, &fs.Options{
		EntryTimeout: &long,
		AttrTimeout:  &long,
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			DirectMountStrict: true, // no fusermount on the machines we target
			FsName:            "nsm-mock",
			Name:              "nsm-mock",
			DisableXAttrs:     true,
			// go-fuse's own messages (e.g. a reply to a caller that died) go to our log.
			Logger: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fusedev: mount %s: %w", dir, err)
	}
	s := &Server{dir: dir, srv: srv, log: log, dev: dev, done: make(chan struct{})}
	go func() {
		srv.Wait()
		close(s.done)
	}()
	log.Info("nsm device mounted", "path", s.Path())
	return s, nil
}

// clearStaleMount detaches a dead FUSE mount at dir: its server is gone, so
// every access fails with ENOTCONN. Live mounts are left alone.
func clearStaleMount(dir string, log *slog.Logger) error {
	var st unix.Stat_t
	err := unix.Stat(dir, &st)
	if !errors.Is(err, unix.ENOTCONN) {
		return nil // nothing stale (or a different problem, reported by the caller's stat)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("fusedev: detach stale mount at %s: %w", dir, err)
	}
	log.Warn("detached a stale mount", "dir", dir)
	return nil
}

// Path is the device file's path.
func (s *Server) Path() string { return s.dir + "/" + DeviceName }

// Requests is the number of ioctls answered so far (including failed ones).
func (s *Server) Requests() uint64 { return s.dev.requests.Load() }

// Done is closed when the FUSE connection has ended (after Close, or when the
// mount was removed from outside, e.g. with umount).
func (s *Server) Done() <-chan struct{} { return s.done }

// Close unmounts the device and waits (bounded) for the connection to end. A
// busy mount is detached lazily; if the connection is still referenced after
// that, Close returns ErrStillInUse. Close is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() { s.closed = s.close() })
	return s.closed
}

func (s *Server) close() error {
	err := unix.Unmount(s.dir, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL): // EINVAL: already unmounted from outside
	case errors.Is(err, unix.EBUSY):
		s.log.Warn("device busy, detaching lazily", "dir", s.dir)
		if err := unix.Unmount(s.dir, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("fusedev: detach %s: %w", s.dir, err)
		}
	default:
		return fmt.Errorf("fusedev: unmount %s: %w", s.dir, err)
	}
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-s.done:
		s.log.Info("nsm device unmounted", "dir", s.dir, "requests", s.Requests())
		return nil
	case <-t.C:
		return ErrStillInUse
	}
}

// rootNode is the mount's root directory; it holds the device file.
type rootNode struct {
	fs.Inode
	dev *device
}

var _ fs.NodeOnAdder = (*rootNode)(nil)

func (r *rootNode) OnAdd(ctx context.Context) {
	child := r.NewPersistentInode(ctx, r.dev, fs.StableAttr{Mode: syscall.S_IFREG, Ino: 2})
	r.AddChild(DeviceName, child, false)
}

// device is the NSM device file.
type device struct {
	fs.Inode
	h        Handler
	log      *slog.Logger
	mounted  uint64     // seconds since the epoch: the file's times
	mu       sync.Mutex // serialises Process, like the driver's mutex
	requests atomic.Uint64
}

var (
	_ fs.NodeOpener    = (*device)(nil)
	_ fs.NodeGetattrer = (*device)(nil)
	_ fs.NodeIoctler   = (*device)(nil)
)

// Open hands out no file handle. NOFLUSH: closing the file must not wait for
// the server (a client killed while holding the file open would otherwise
// send FLUSH during exit); DIRECT_IO: no page cache for a device.
func (d *device) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH, 0
}

// Getattr reports a character-device-like 0666 file (the real /dev/nsm is
// mode 0666), owned by root.
func (d *device) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o666
	out.Nlink = 1
	out.Atime, out.Mtime, out.Ctime = d.mounted, d.mounted, d.mounted
	return 0
}

// Ioctl answers NSM_IOCTL_RAW; see the package documentation for the errors.
func (d *device) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, in, out []byte) (int32, syscall.Errno) {
	d.requests.Add(1)
	if cmd != IoctlCmd || len(in) != messageSize || len(out) != messageSize {
		return 0, syscall.ENOTTY
	}
	caller, ok := fuse.FromContext(ctx)
	if !ok || caller.Pid == 0 {
		// The caller's pid namespace is not visible from ours.
		return 0, syscall.ESRCH
	}
	tid := int(caller.Pid) // the calling thread, not necessarily the thread-group leader

	le := binary.LittleEndian
	reqAddr, reqLen := le.Uint64(in[0:]), le.Uint64(in[8:])
	respAddr, respLen := le.Uint64(in[16:]), le.Uint64(in[24:])
	if reqLen > MaxRequestSize {
		return 0, syscall.EMSGSIZE
	}
	req := make([]byte, reqLen)
	if errno := transfer(tid, req, reqAddr, false); errno != 0 {
		d.log.Debug("reading the request failed", "tid", tid, "err", errno)
		return 0, errno
	}

	d.mu.Lock()
	resp, errno := d.h.Process(req)
	d.mu.Unlock()
	if errno != 0 {
		return 0, errno
	}
	if len(resp) > MaxResponseSize {
		d.log.Error("handler response exceeds the device maximum", "len", len(resp))
		return 0, syscall.EIO
	}

	// Truncate to the caller's buffer like the in-tree driver.
	n := uint64(len(resp))
	if respLen < n {
		n = respLen
	}
	if errno := transfer(tid, resp[:n], respAddr, true); errno != 0 {
		d.log.Debug("writing the response failed", "tid", tid, "err", errno)
		return 0, errno
	}
	copy(out, in)
	le.PutUint64(out[24:], n)
	return 0, 0
}

// transfer copies between buf and [addr, addr+len(buf)) in thread tid's
// address space; a short copy (part of the range unmapped) is EFAULT.
func transfer(tid int, buf []byte, addr uint64, write bool) syscall.Errno {
	if len(buf) == 0 {
		return 0
	}
	local := []unix.Iovec{{Base: unsafe.SliceData(buf)}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	var n int
	var err error
	if write {
		n, err = unix.ProcessVMWritev(tid, local, remote, 0)
	} else {
		n, err = unix.ProcessVMReadv(tid, local, remote, 0)
	}
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errno
		}
		return syscall.EIO
	}
	if n != len(buf) {
		return syscall.EFAULT
	}
	return 0
}
