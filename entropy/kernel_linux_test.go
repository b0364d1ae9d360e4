//go:build linux

package entropy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests point KernelPool at a regular file: the real pool is never touched.

func TestRandPoolInfoLayout(t *testing.T) {
	data := []byte{0xde, 0xad, 0xbe, 0xef, 0x01}
	info := randPoolInfo(data, 40)
	if len(info) != 8+len(data) {
		t.Fatalf("len = %d", len(info))
	}
	if got := int32(binary.NativeEndian.Uint32(info[0:])); got != 40 {
		t.Errorf("entropy_count = %d, want 40 (bits)", got)
	}
	if got := int32(binary.NativeEndian.Uint32(info[4:])); got != int32(len(data)) {
		t.Errorf("buf_size = %d, want %d (bytes)", got, len(data))
	}
	if !bytes.Equal(info[8:], data) {
		t.Errorf("buf = %x", info[8:])
	}
}

func TestKernelPoolWithoutCreditWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "random")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := counterBytes(300)
	if err := (KernelPool{Path: p}).AddEntropy(data, 0); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("wrote %d bytes, want the %d given", len(got), len(data))
	}
}

func TestKernelPoolIoctlError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "random")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A regular file has no RNDADDENTROPY: the error must surface, not be
	// taken for a missing privilege.
	err := (KernelPool{Path: p}).AddEntropy(counterBytes(32), 256)
	if !errors.Is(err, unix.ENOTTY) || errors.Is(err, ErrNotCredited) {
		t.Fatalf("err = %v, want ENOTTY", err)
	}
}

func TestKernelPoolRejectsBadCredit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "random")
	for _, c := range []struct{ n, bits int }{{0, 0}, {32, -1}, {32, 257}} {
		if err := (KernelPool{Path: p}).AddEntropy(make([]byte, c.n), c.bits); err == nil {
			t.Errorf("%d bytes, %d bits: accepted", c.n, c.bits)
		}
	}
}

func TestKernelPoolMissingDevice(t *testing.T) {
	err := (KernelPool{Path: filepath.Join(t.TempDir(), "nope")}).AddEntropy(counterBytes(32), 0)
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("err = %v", err)
	}
}

func TestGetrandomReadyOnThisHost(t *testing.T) {
	// A read-only probe: getrandom(GRND_NONBLOCK) on a booted test host.
	if err := GetrandomReady(); err != nil {
		t.Fatal(err)
	}
}
