//go:build linux

package entropy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultRandomDevice is the device RNDADDENTROPY is issued on.
const DefaultRandomDevice = "/dev/random"

// KernelPool is the Linux kernel random pool (the real Sink).
type KernelPool struct {
	// Path is the random device, default DefaultRandomDevice.
	Path string
}

// AddEntropy adds data with the RNDADDENTROPY ioctl, crediting creditBits bits
// (the kernel's unit). With creditBits == 0 it writes data to the device,
// which mixes it in without credit and needs no privilege. When the ioctl is
// refused for lack of CAP_SYS_ADMIN it falls back to that write and returns an
// error wrapping ErrNotCredited.
func (p KernelPool) AddEntropy(data []byte, creditBits int) error {
	if len(data) == 0 {
		return errors.New("entropy: no data to add")
	}
	if creditBits < 0 || creditBits > 8*len(data) {
		return fmt.Errorf("entropy: credit of %d bits for %d bytes", creditBits, len(data))
	}
	path := p.Path
	if path == "" {
		path = DefaultRandomDevice
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("entropy: open %s: %w", path, err)
	}
	defer unix.Close(fd)
	if creditBits == 0 {
		return writeAll(fd, data)
	}
	err = addEntropy(fd, data, creditBits)
	if errors.Is(err, unix.EPERM) {
		if werr := writeAll(fd, data); werr != nil {
			return werr
		}
		return fmt.Errorf("%w (RNDADDENTROPY needs CAP_SYS_ADMIN: %v)", ErrNotCredited, err)
	}
	return err
}

// addEntropy issues RNDADDENTROPY. The argument is struct rand_pool_info
// { int entropy_count; int buf_size; __u32 buf[]; } with the data inline.
func addEntropy(fd int, data []byte, creditBits int) error {
	info := randPoolInfo(data, creditBits)
	defer clear(info)
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&info[0])))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("entropy: RNDADDENTROPY: %w", errno)
		}
	}
}

// randPoolInfo lays out struct rand_pool_info in native byte order.
func randPoolInfo(data []byte, creditBits int) []byte {
	info := make([]byte, 8+len(data))
	binary.NativeEndian.PutUint32(info[0:4], uint32(int32(creditBits)))
	binary.NativeEndian.PutUint32(info[4:8], uint32(int32(len(data))))
	copy(info[8:], data)
	return info
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("entropy: write to the random device: %w", err)
		}
		if n == 0 {
			return errors.New("entropy: write to the random device made no progress")
		}
		data = data[n:]
	}
	return nil
}

// Ready reports whether getrandom(2) would not block.
func (KernelPool) Ready() error { return GetrandomReady() }

// GetrandomReady returns nil when getrandom(2) with GRND_NONBLOCK succeeds,
// ErrNotReady when the kernel CRNG is not yet initialised.
func GetrandomReady() error {
	var b [1]byte
	for {
		_, err := unix.Getrandom(b[:], unix.GRND_NONBLOCK)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return ErrNotReady
		default:
			return fmt.Errorf("getrandom: %w", err)
		}
	}
}
