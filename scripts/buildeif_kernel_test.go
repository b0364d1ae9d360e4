package scripts

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bzImage is a minimal x86 kernel image whose setup header declares version (the fields
// attest eif describe reads: boot flag, "HdrS", protocol 2.15, kernel_version pointer).
func bzImage(version string) []byte {
	b := make([]byte, 0x2000)
	b[0x1f1] = 4 // setup_sects
	binary.LittleEndian.PutUint16(b[0x1fe:], 0xaa55)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x206:], 0x020f)
	binary.LittleEndian.PutUint16(b[0x20e:], 0x400) // the string is at 0x400 + 0x200
	copy(b[0x600:], version+"\x00")
	return b
}

// TestBuildEIFKernelGate: build-eif.sh fails on an image whose kernel attestd refuses
// (nitro-cli's bundled 4.14), naming NITRO_CLI_BLOBS and not offering to verify; a 6.6 kernel
// builds. --help tells where the kernel comes from.
func TestBuildEIFKernelGate(t *testing.T) {
	env, dir, _ := fakeTools(t)
	for _, c := range []struct {
		version string
		code    int
	}{
		{"4.14.256-209.484.amzn2.x86_64 (mockbuild@ip-10-0-1-32) #1 SMP Tue Nov 16 04:50:51 UTC 2021", 1},
		{"6.6.52 (nixbld@localhost) #1-NixOS SMP PREEMPT_DYNAMIC Tue Jan  1 00:00:00 UTC 1980", 0},
	} {
		kernel := filepath.Join(dir, "bzImage")
		if err := os.WriteFile(kernel, bzImage(c.version), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := script(t, append(env, "FAKE_KERNEL="+kernel, "NITRO_CLI_BLOBS=/opt/blobs"), "build-eif.sh",
			"--output", filepath.Join(dir, "img.eif"))
		refused := strings.Contains(out, "attestd refuses this image's kernel") && strings.Contains(out, "NITRO_CLI_BLOBS (/opt/blobs)")
		offered := strings.Contains(out, "verify an enclave of this image")
		if code != c.code || refused != (c.code == 1) || offered != (c.code == 0) {
			t.Errorf("kernel %.10s: exit %d, want %d:\n%s", c.version, code, c.code, out)
		}
	}
	if code, out := script(t, nil, "build-eif.sh", "--help"); code != 0 || !strings.Contains(out, "NITRO_CLI_BLOBS") {
		t.Errorf("--help: exit %d, no NITRO_CLI_BLOBS:\n%s", code, out)
	}
}
