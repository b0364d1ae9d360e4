package eif

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The version strings real kernels carry: nitro-cli's bundled Amazon Linux 4.14 kernel and a
// 6.6 LTS kernel as aws-nitro-enclaves-sdk-bootstrap builds them (build host names made up).
const (
	oldKernelVersion = "4.14.256-209.484.amzn2.x86_64 (mockbuild@ip-10-0-1-32) #1 SMP Tue Nov 16 04:50:51 UTC 2021"
	oldRelease       = "4.14.256-209.484.amzn2.x86_64"
	newKernelVersion = "6.6.52 (nixbld@localhost) #1-NixOS SMP PREEMPT_DYNAMIC Tue Jan  1 00:00:00 UTC 1980"
	newRelease       = "6.6.52"
)

// bzImageOpts shapes a synthetic bzImage: the setup header fields ReadKernel reads and the
// version string, at ptr+0x200.
type bzImageOpts struct {
	setupSects byte
	bootFlag   uint16
	magic      string
	protocol   uint16
	ptr        uint16
	version    []byte // written at ptr+0x200 as given (no NUL added)
	size       int    // total size; the version string may be cut by it
}

func defaultBzImage(version string) bzImageOpts {
	return bzImageOpts{setupSects: 15, bootFlag: 0xaa55, magic: "HdrS", protocol: 0x020f, ptr: 0x1c00,
		version: append([]byte(version), 0), size: 0x4000}
}

// bzImage lays out the first sectors of an x86 kernel as the boot protocol describes them
// (Documentation/arch/x86/boot.rst); the rest is random, like a compressed payload.
func bzImage(o bzImageOpts) []byte {
	r := mrand.New(mrand.NewPCG(1, 2))
	b := randomBytes(r, max(o.size, 0x210))
	le := binary.LittleEndian
	b[0x1f1] = o.setupSects
	le.PutUint16(b[0x1fe:], o.bootFlag)
	copy(b[0x202:0x206], o.magic)
	le.PutUint16(b[0x206:], o.protocol)
	le.PutUint16(b[0x20e:], o.ptr)
	if at := int(o.ptr) + 0x200; o.ptr != 0 && at < len(b) {
		copy(b[at:], o.version)
	}
	return b[:o.size]
}

// arm64Image is an uncompressed arm64 Image of size bytes: the 64-byte header with its magic,
// random bytes, and each text at its offset.
func arm64Image(size int, texts map[int]string) []byte {
	r := mrand.New(mrand.NewPCG(3, 4))
	b := randomBytes(r, size)
	copy(b[0:], "MZ")
	copy(b[0x38:], "ARM\x64")
	for off, s := range texts {
		copy(b[off:], s)
	}
	return b
}

func arm64Banner(release string) string {
	return "Linux version " + release + " (builder@host) (gcc version 12.2.1) #1 SMP PREEMPT Fri Jan  1 00:00:00 UTC 2021\n\x00"
}

type kernelCase struct {
	name    string
	section []byte
	want    Kernel
}

func kernelCases() []kernelCase {
	bz := func(mod func(*bzImageOpts)) []byte {
		o := defaultBzImage(oldKernelVersion)
		if mod != nil {
			mod(&o)
		}
		return bzImage(o)
	}
	unknownBz := Kernel{Format: KernelBzImage}
	long := strings.Repeat("9", MaxKernelRelease+1)
	return []kernelCase{
		{"bzImage 4.14", bz(nil), Kernel{KernelBzImage, oldRelease}},
		{"bzImage 6.6", bzImage(defaultBzImage(newKernelVersion)), Kernel{KernelBzImage, newRelease}},
		{"bzImage release only", bz(func(o *bzImageOpts) { o.version = []byte("5.17.12\x00") }), Kernel{KernelBzImage, "5.17.12"}},
		{"bzImage string ends at the section's last byte", bz(func(o *bzImageOpts) {
			o.size = 0x1e00 + len(oldKernelVersion) + 1
		}), Kernel{KernelBzImage, oldRelease}},
		{"bzImage longest string", bz(func(o *bzImageOpts) {
			o.version = append([]byte(oldRelease+" "+strings.Repeat("x", maxVersionString-len(oldRelease)-2)), 0)
		}), Kernel{KernelBzImage, oldRelease}},
		{"bzImage highest pointer", bz(func(o *bzImageOpts) { o.setupSects, o.ptr, o.size = 255, 0xffff, 0x10200+len(oldKernelVersion)+1 }),
			Kernel{KernelBzImage, oldRelease}},
		{"bzImage setup_sects 0 means 4", bz(func(o *bzImageOpts) { o.setupSects, o.ptr = 0, 0x7ff }), Kernel{KernelBzImage, oldRelease}},

		// A bzImage whose version string cannot be trusted: the format is known, the release not.
		{"bzImage zero pointer", bz(func(o *bzImageOpts) { o.ptr = 0 }), unknownBz},
		{"bzImage protocol 1.x", bz(func(o *bzImageOpts) { o.protocol = 0x01ff }), unknownBz},
		{"bzImage pointer past the setup code", bz(func(o *bzImageOpts) { o.setupSects = 14 }), unknownBz},
		{"bzImage setup_sects 0, pointer past 4 sectors", bz(func(o *bzImageOpts) { o.setupSects, o.ptr = 0, 0x800 }), unknownBz},
		{"bzImage pointer past the section", bz(func(o *bzImageOpts) { o.size = 0x1e00 }), unknownBz},
		{"bzImage string cut by the section's end", bz(func(o *bzImageOpts) { o.size = 0x1e00 + 20 }), unknownBz},
		{"bzImage no NUL within 256 bytes", bz(func(o *bzImageOpts) {
			o.version = append([]byte(oldRelease+" "+strings.Repeat("x", maxVersionString)), 0)
		}), unknownBz},
		{"bzImage non-printable byte", bz(func(o *bzImageOpts) { o.version = []byte(oldRelease + " (a\x01b)\x00") }), unknownBz},
		{"bzImage non-ASCII byte", bz(func(o *bzImageOpts) { o.version = []byte(oldRelease + " (\xc3\xa9)\x00") }), unknownBz},
		{"bzImage newline", bz(func(o *bzImageOpts) { o.version = []byte(oldRelease + "\n\x00") }), unknownBz},
		{"bzImage empty string", bz(func(o *bzImageOpts) { o.version = []byte{0} }), unknownBz},
		{"bzImage leading space", bz(func(o *bzImageOpts) { o.version = []byte(" " + oldKernelVersion + "\x00") }), unknownBz},
		{"bzImage release not starting with a digit", bz(func(o *bzImageOpts) { o.version = []byte("v4.14.256 (x)\x00") }), unknownBz},
		{"bzImage release too long", bz(func(o *bzImageOpts) { o.version = []byte(long + " (x)\x00") }), unknownBz},

		// Not a bzImage at all.
		{"no boot flag", bz(func(o *bzImageOpts) { o.bootFlag = 0 }), Kernel{Format: KernelUnknown}},
		{"no HdrS", bz(func(o *bzImageOpts) { o.magic = "HdrT" }), Kernel{Format: KernelUnknown}},
		{"cut inside the setup header", bz(nil)[:0x20f], Kernel{Format: KernelUnknown}},
		{"empty", nil, Kernel{Format: KernelUnknown}},
		{"one byte", []byte{0}, Kernel{Format: KernelUnknown}},
		{"test vector kernel", mustRead(inputsDir + "kernel.bin"), Kernel{Format: KernelUnknown}},

		{"arm64 Image 4.14", arm64Image(1<<16, map[int]string{0x9000: arm64Banner("4.14.246-187.474.amzn2.aarch64")}),
			Kernel{KernelArm64Image, "4.14.246-187.474.amzn2.aarch64"}},
		{"arm64 Image 6.6, banner twice and a format string", arm64Image(1<<16, map[int]string{
			0x100: "Linux version %s (%s)\n", 0x9000: arm64Banner(newRelease), 0xa000: arm64Banner(newRelease)}),
			Kernel{KernelArm64Image, newRelease}},
		{"arm64 Image banner at the very end", arm64Image(0x9000+len("Linux version 6.6.52 ("),
			map[int]string{0x9000: "Linux version 6.6.52 ("}), Kernel{KernelArm64Image, newRelease}},
		{"arm64 Image banner right after the header", arm64Image(0x100, map[int]string{0x40: arm64Banner(newRelease)}),
			Kernel{KernelArm64Image, newRelease}},
		{"arm64 Image two releases", arm64Image(1<<16, map[int]string{0x9000: arm64Banner(newRelease), 0xa000: arm64Banner("6.6.53")}),
			Kernel{Format: KernelArm64Image}},
		{"arm64 Image no banner", arm64Image(1<<16, nil), Kernel{Format: KernelArm64Image}},
		{"arm64 Image banner cut before \" (\"", arm64Image(0x9000+len("Linux version 6.6.52"),
			map[int]string{0x9000: "Linux version 6.6.52"}), Kernel{Format: KernelArm64Image}},
		{"arm64 Image banner release too long", arm64Image(1<<16, map[int]string{0x9000: arm64Banner(long)}), Kernel{Format: KernelArm64Image}},
		{"arm64 Image banner with a control byte", arm64Image(1<<16, map[int]string{0x9000: "Linux version 6.6\x0152 ("}), Kernel{Format: KernelArm64Image}},
		{"arm64 magic cut", arm64Image(0x3b, nil), Kernel{Format: KernelUnknown}},
	}
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}

func TestReadKernel(t *testing.T) {
	for _, c := range kernelCases() {
		if got := ReadKernel(c.section); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// writeInPieces feeds b to a kernelReader in pieces of the given sizes, cycling.
func writeInPieces(b []byte, sizes ...int) Kernel {
	var k kernelReader
	for i := 0; len(b) > 0; i++ {
		n := min(len(b), sizes[i%len(sizes)])
		k.Write(b[:n])
		b = b[n:]
	}
	return k.result()
}

// The streaming reader gives ReadKernel's answer however the section is cut, in particular
// with banners and the arm64 magic straddling the cuts.
func TestKernelReaderPieces(t *testing.T) {
	r := mrand.New(mrand.NewPCG(7, 8))
	for _, c := range kernelCases() {
		if len(c.section) == 0 {
			continue
		}
		splits := [][]int{{1}, {2}, {3}, {0x37}, {0x3b}, {0x3c}, {bannerWindow - 1}, {bannerWindow}, {bannerWindow + 1},
			{2*bannerWindow + 5}, {1, bannerWindow + 3}, {4095}, {4096, 1}, {kernelHeadSize - 1, 1}}
		for range 20 {
			sizes := make([]int, 1+r.IntN(5))
			for i := range sizes {
				sizes[i] = 1 + r.IntN(300)
			}
			splits = append(splits, sizes)
		}
		for _, sizes := range splits {
			if got := writeInPieces(c.section, sizes...); got != c.want {
				t.Fatalf("%s in pieces of %v: %+v, want %+v", c.name, sizes, got, c.want)
			}
		}
	}
}

// A banner at every offset around a cut of the stream, for a cut at each place in the banner.
func TestBannerAcrossCuts(t *testing.T) {
	banner := arm64Banner(newRelease)
	for at := 0x40; at < 0x40+2*bannerWindow+2; at++ {
		img := arm64Image(0x40+3*bannerWindow+len(banner), map[int]string{at: banner})
		for _, cut := range []int{0x40 + bannerWindow, 0x40 + bannerWindow + 1, 0x40 + 2*bannerWindow} {
			var k kernelReader
			k.Write(img[:cut])
			k.Write(img[cut:])
			if got := k.result(); got.Release != newRelease {
				t.Fatalf("banner at %#x, cut at %#x: %+v", at, cut, got)
			}
		}
	}
}

// The carry between writes stays within two banner windows, whatever the pieces.
func TestBannerCarryBounded(t *testing.T) {
	img := arm64Image(1<<16, map[int]string{0x9000: arm64Banner(newRelease)})
	var k kernelReader
	for i := 0; i < len(img); {
		n := min(len(img)-i, 1+i%(bannerWindow+7))
		k.Write(img[i : i+n])
		i += n
		if len(k.banner.carry) >= bannerWindow {
			t.Fatalf("carry of %d bytes after %d", len(k.banner.carry), i)
		}
	}
	if k.result().Release != newRelease {
		t.Fatal("banner not found")
	}
}

// Parse and Build report the kernel of the image, through the buffered and the mapped
// readers, with the arm64 banner straddling Parse's chunk boundary.
func TestImageKernel(t *testing.T) {
	kernelAt := int(HeaderSize + SectionHeaderSize)
	cases := []struct {
		name   string
		kernel []byte
		arm64  bool
		want   Kernel
	}{
		{"bzImage 4.14", bzImage(defaultBzImage(oldKernelVersion)), false, Kernel{KernelBzImage, oldRelease}},
		{"bzImage 6.6", bzImage(defaultBzImage(newKernelVersion)), false, Kernel{KernelBzImage, newRelease}},
		{"arm64 Image", arm64Image(chunkSize+4096, map[int]string{chunkSize - kernelAt - 20: arm64Banner(newRelease)}),
			true, Kernel{KernelArm64Image, newRelease}},
		{"arm64 Image, banners on both sides of the chunk boundary", arm64Image(chunkSize+4096, map[int]string{
			0x1000: arm64Banner(newRelease), chunkSize - kernelAt - 20: arm64Banner("6.6.53")}),
			true, Kernel{Format: KernelArm64Image}},
		{"synthetic", []byte("not a kernel"), false, Kernel{Format: KernelUnknown}},
	}
	dir := t.TempDir()
	for i, c := range cases {
		in := spec{kernel: c.kernel, cmdline: []byte("console=ttyS0"), ramdisks: [][]byte{[]byte("init"), []byte("app")}}.input()
		in.Arm64 = c.arm64
		if i == 0 {
			in.Signer = vectorSigner(t)
		}
		b, built := build(t, in)
		if built.Kernel != c.want {
			t.Errorf("%s: Build says %+v, want %+v", c.name, built.Kernel, c.want)
		}
		img, err := parseBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if img.Kernel != c.want {
			t.Errorf("%s: Parse says %+v, want %+v", c.name, img.Kernel, c.want)
		}
		path := filepath.Join(dir, fmt.Sprintf("%d.eif", i))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if img, err = ParseFile(path); err != nil || img.Kernel != c.want {
			t.Errorf("%s: ParseFile says %+v (%v), want %+v", c.name, img.Kernel, err, c.want)
		}
	}
}

// Build feeds the kernel as its reader gives it, in whatever pieces.
func TestBuildKernelSmallReads(t *testing.T) {
	in := spec{cmdline: []byte("x"), ramdisks: [][]byte{[]byte("r")}}.input()
	in.Kernel = io.MultiReader(bytes.NewReader(bzImage(defaultBzImage(oldKernelVersion))[:0x1e05]),
		bytes.NewReader(bzImage(defaultBzImage(oldKernelVersion))[0x1e05:]))
	if _, img := build(t, in); img.Kernel != (Kernel{KernelBzImage, oldRelease}) {
		t.Errorf("%+v", img.Kernel)
	}
}

func TestDescribeKernel(t *testing.T) {
	in := vectorInput(t)
	in.Kernel = bytes.NewReader(bzImage(defaultBzImage(oldKernelVersion)))
	out := describeBuilt(t, in)
	want := `  "Kernel": {
    "Format": "bzImage",
    "Release": "4.14.256-209.484.amzn2.x86_64"
  }
}
`
	if !strings.HasSuffix(string(out), want) {
		t.Errorf("describe:\n%s\nwant it to end with:\n%s", out, want)
	}
}

// BenchmarkMeasureArm64 is BenchmarkMeasure with an arm64 Image as the kernel, which Parse
// scans for the banner as it streams.
func BenchmarkMeasureArm64(b *testing.B) {
	r := mrand.New(mrand.NewPCG(5, 6))
	kernel := randomBytes(r, 6<<20)
	copy(kernel[0x38:], "ARM\x64")
	copy(kernel[5<<20:], arm64Banner(newRelease))
	in := spec{kernel: kernel, cmdline: []byte("console=ttyS0"), ramdisks: [][]byte{randomBytes(r, 4<<20), randomBytes(r, 54<<20)}}.input()
	in.Arm64 = true
	img, _ := build(b, in)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if got, err := Parse(bytes.NewReader(img), int64(len(img))); err != nil || got.Kernel.Release != newRelease {
			b.Fatal(err, got)
		}
	}
}

// BenchmarkReadKernelArm64 is the banner scan alone over a 6 MiB arm64 Image.
func BenchmarkReadKernelArm64(b *testing.B) {
	r := mrand.New(mrand.NewPCG(5, 6))
	kernel := randomBytes(r, 6<<20)
	copy(kernel[0x38:], "ARM\x64")
	copy(kernel[5<<20:], arm64Banner(newRelease))
	b.SetBytes(int64(len(kernel)))
	for b.Loop() {
		if ReadKernel(kernel).Release != newRelease {
			b.Fatal("no release")
		}
	}
}
