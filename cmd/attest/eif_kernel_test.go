package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/eif"
)

// testBzImage is the start of an x86 kernel as the Linux boot protocol lays it out: boot flag,
// "HdrS", protocol 2.15, kernel_version pointing at version (at 0x1c00 + 0x200), then filler.
func testBzImage(version string) []byte {
	b := make([]byte, 0x3000)
	for i := range b {
		b[i] = byte(i*7 + 3) // not zeros: a kernel is not empty space
	}
	le := binary.LittleEndian
	b[0x1f1] = 15 // setup_sects
	le.PutUint16(b[0x1fe:], 0xaa55)
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020f)
	le.PutUint16(b[0x20e:], 0x1c00)
	copy(b[0x1e00:], version+"\x00")
	return b
}

// testEIF builds an image around kernel with the project's builder, signed or not, and
// returns its path.
func testEIF(t *testing.T, kernel []byte, signed bool) string {
	t.Helper()
	in := eif.BuildInput{
		Kernel:   bytes.NewReader(kernel),
		Cmdline:  "reboot=k panic=30 pci=off nomodules console=ttyS0",
		Ramdisks: []io.Reader{strings.NewReader("bootstrap"), strings.NewReader("application")},
		Metadata: eif.Metadata{ImageName: "k", ImageVersion: "1"},
	}
	if signed {
		key, _ := os.ReadFile(eifInputs + "signing-key.pem")
		cert, _ := os.ReadFile(eifInputs + "signing-cert.pem")
		s, err := eif.NewSigner(key, cert)
		if err != nil {
			t.Fatal(err)
		}
		in.Signer = s
	}
	path := filepath.Join(t.TempDir(), "k.eif")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := eif.Build(f, in); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	amazonLinux414 = "4.14.256-209.484.amzn2.x86_64 (mockbuild@ip-10-0-1-32) #1 SMP Tue Nov 16 04:50:51 UTC 2021"
	lts66          = "6.6.52 (nixbld@localhost) #1-NixOS SMP PREEMPT_DYNAMIC Tue Jan  1 00:00:00 UTC 1980"
)

// describe reports the kernel's release and warns, exit code 0, when attestd would refuse
// it; --json carries the same as Kernel and AttestdKernelCheck.
func TestEIFDescribeKernel(t *testing.T) {
	const warning = "WARNING: attestd will refuse to start on this image's kernel"
	cases := []struct {
		name, version string
		signed        bool
		line          string // the kernel line of the text output
		warn          string // in the warning, "" for none
		kernel        eif.Kernel
		check         eifKernelCheck
	}{
		{"4.14 unsigned", amazonLinux414, false,
			"kernel        bzImage, release 4.14.256-209.484.amzn2.x86_64 (attestd needs 5.17.12 or later: REFUSED)\n",
			"kernel 4.14.256 is older than 5.17.12, the first with the reworked random subsystem; build the EIF with a newer kernel (docs/enclave-image.md, \"The enclave kernel\")\n",
			eif.Kernel{Format: "bzImage", Release: "4.14.256-209.484.amzn2.x86_64"},
			eifKernelCheck{Minimum: "5.17.12", Result: "too-old", Refuses: true}},
		{"4.14 signed", amazonLinux414, true,
			"kernel        bzImage, release 4.14.256-209.484.amzn2.x86_64 (attestd needs 5.17.12 or later: REFUSED)\n",
			"kernel 4.14.256 is older than 5.17.12",
			eif.Kernel{Format: "bzImage", Release: "4.14.256-209.484.amzn2.x86_64"},
			eifKernelCheck{Minimum: "5.17.12", Result: "too-old", Refuses: true}},
		{"5.17.11", "5.17.11-1 (x@y) #1", false,
			"kernel        bzImage, release 5.17.11-1 (attestd needs 5.17.12 or later: REFUSED)\n",
			"kernel 5.17.11 is older than 5.17.12",
			eif.Kernel{Format: "bzImage", Release: "5.17.11-1"},
			eifKernelCheck{Minimum: "5.17.12", Result: "too-old", Refuses: true}},
		{"5.17.12", "5.17.12 (x@y) #1", false,
			"kernel        bzImage, release 5.17.12 (attestd needs 5.17.12 or later: ok)\n", "",
			eif.Kernel{Format: "bzImage", Release: "5.17.12"},
			eifKernelCheck{Minimum: "5.17.12", Result: "ok"}},
		{"6.6 signed", lts66, true,
			"kernel        bzImage, release 6.6.52 (attestd needs 5.17.12 or later: ok)\n", "",
			eif.Kernel{Format: "bzImage", Release: "6.6.52"},
			eifKernelCheck{Minimum: "5.17.12", Result: "ok"}},
		{"release attestd cannot parse", "6.6 (x@y) #1", false,
			"kernel        bzImage, release 6.6 (attestd needs 5.17.12 or later: REFUSED)\n",
			`it cannot parse the release (platform: malformed kernel release "6.6": want MAJOR.MINOR.PATCH)`,
			eif.Kernel{Format: "bzImage", Release: "6.6"},
			eifKernelCheck{Minimum: "5.17.12", Result: "unparseable", Refuses: true}},
		{"bzImage without a version string", "\x01", false,
			"kernel        bzImage format, release unknown (attestd checks it at start-up: it needs 5.17.12 or later)\n", "",
			eif.Kernel{Format: "bzImage"},
			eifKernelCheck{Minimum: "5.17.12", Result: "unknown"}},
	}
	for _, c := range cases {
		path := testEIF(t, testBzImage(c.version), c.signed)
		code, out, errOut := attestRun(t, "eif", "describe", path)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d: %s", c.name, code, errOut)
		}
		if !strings.Contains(out, "\n"+c.line) {
			t.Errorf("%s: output lacks %q:\n%s", c.name, c.line, out)
		}
		if c.warn == "" && strings.Contains(out, "WARNING") {
			t.Errorf("%s: unexpected warning:\n%s", c.name, out)
		}
		if c.warn != "" && !strings.Contains(out, warning+": "+c.warn) {
			t.Errorf("%s: output lacks the warning %q:\n%s", c.name, c.warn, out)
		}
		if c.warn != "" && !strings.HasSuffix(out, "\")\n") {
			t.Errorf("%s: the warning is not the last line:\n%s", c.name, out)
		}

		code, out, errOut = attestRun(t, "eif", "describe", "--json", path)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: --json: exit %d: %s", c.name, code, errOut)
		}
		var d struct {
			IsSigned           bool
			Measurements       map[string]string
			Kernel             eif.Kernel
			AttestdKernelCheck map[string]any
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		if d.IsSigned != c.signed || len(d.Measurements["PCR0"]) != 96 || (d.Measurements["PCR8"] != "") != c.signed {
			t.Errorf("%s: nitro-cli fields: %s", c.name, out)
		}
		if d.Kernel != c.kernel {
			t.Errorf("%s: Kernel %+v, want %+v", c.name, d.Kernel, c.kernel)
		}
		want := map[string]any{"Minimum": c.check.Minimum, "Result": c.check.Result, "Refuses": c.check.Refuses}
		if len(d.AttestdKernelCheck) != len(want) {
			t.Errorf("%s: AttestdKernelCheck %v, want %v", c.name, d.AttestdKernelCheck, want)
		}
		for k, v := range want {
			if d.AttestdKernelCheck[k] != v {
				t.Errorf("%s: AttestdKernelCheck[%s] = %v, want %v", c.name, k, d.AttestdKernelCheck[k], v)
			}
		}
		// nitro-cli's fields come first, in its order; attestd's two at the end.
		if i, j, k := strings.Index(out, `"EifVersion"`), strings.Index(out, `"Kernel": {`), strings.Index(out, `"AttestdKernelCheck": {`); i != 4 || j < i || k < j || !strings.HasSuffix(out, "}\n}\n") {
			t.Errorf("%s: field order:\n%s", c.name, out)
		}
	}
}

// The test vector's kernel section is not a kernel: describe says so and does not warn.
func TestEIFDescribeUnknownKernel(t *testing.T) {
	code, out, _ := attestRun(t, "eif", "describe", eifVector)
	if code != 0 || !strings.Contains(out, "\nkernel        unknown format, release unknown (attestd checks it at start-up: it needs 5.17.12 or later)\n") || strings.Contains(out, "WARNING") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	code, out, _ = attestRun(t, "eif", "describe", "--json", eifVector)
	if code != 0 || !strings.Contains(out, `"Kernel": {
    "Format": "unknown",
    "Release": ""
  },
  "AttestdKernelCheck": {
    "Minimum": "5.17.12",
    "Result": "unknown",
    "Refuses": false
  }
}
`) {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// attest eif build warns as it writes an image with an old kernel.
func TestEIFBuildKernelWarning(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage")
	if err := os.WriteFile(kernel, testBzImage(amazonLinux414), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := attestRun(t, "eif", "build", "--kernel", kernel, "--cmdline", "console=ttyS0",
		"--ramdisk", eifInputs+"ramdisk0.bin", "--output", filepath.Join(dir, "old.eif"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "release 4.14.256-209.484.amzn2.x86_64 (attestd needs 5.17.12 or later: REFUSED)") ||
		!strings.Contains(out, "WARNING: attestd will refuse to start on this image's kernel: kernel 4.14.256 is older than 5.17.12") {
		t.Errorf("build output:\n%s", out)
	}
}
