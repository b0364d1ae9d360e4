package eif

import (
	"bytes"
	"encoding/binary"
)

// Kernel formats [ReadKernel] recognises.
const (
	// KernelBzImage is an x86 kernel with the Linux boot protocol's setup header ("HdrS").
	KernelBzImage = "bzImage"
	// KernelArm64Image is an uncompressed arm64 kernel Image (magic "ARM\x64" at 0x38).
	KernelArm64Image = "Image"
	// KernelUnknown is anything else, such as the test vector's synthetic kernel section or
	// an EFI zboot (compressed) arm64 kernel.
	KernelUnknown = "unknown"
)

// MaxKernelRelease is the longest release ReadKernel reports: struct utsname holds 65
// bytes for it, the NUL included, so no kernel reports a longer one through uname(2).
const MaxKernelRelease = 64

// Kernel is what an image's kernel section says about itself. It is read from the
// measured bytes (PCR0 and PCR1 cover them), unlike the metadata's KernelVersion, which is
// whatever the builder wrote.
type Kernel struct {
	// Format is KernelBzImage, KernelArm64Image or KernelUnknown.
	Format string
	// Release is the kernel release as uname -r prints it ("4.14.256-209.484.amzn2.x86_64"),
	// or "" when it cannot be found.
	Release string
}

// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst), at fixed offsets
// from the start of the bzImage.
const (
	bzSetupSects     = 0x1f1 // u8: setup code size in 512-byte sectors; 0 means 4
	bzBootFlag       = 0x1fe // u16 LE 0xAA55
	bzHeaderMagic    = 0x202 // "HdrS"
	bzProtocol       = 0x206 // u16 LE, (major << 8) + minor
	bzKernelVersion  = 0x20e // u16 LE: offset of the version string, less 0x200 (protocol 2.00+)
	bzHeaderEnd      = 0x210
	bzMinProtocol    = 0x0200
	bzVersionBase    = 0x200
	maxVersionString = 256 // bytes, the NUL included
	// kernelHeadSize is the prefix that holds any string kernel_version can point at.
	kernelHeadSize = bzVersionBase + 0xffff + maxVersionString

	arm64Magic    = 0x38 // "ARM\x64" in the arm64 Image header
	arm64MagicEnd = arm64Magic + 4
)

// ReadKernel finds the release of the kernel in an image's kernel section. It never fails:
// a kernel it does not recognise, or whose version string is malformed, gives
// KernelUnknown or an empty Release.
//
//   - bzImage (x86_64): the setup header's kernel_version field points at the version string
//     the kernel carries for boot loaders ("4.14.256-... (mockbuild@...) #1 SMP ..."); the
//     release is its first word. Required: the 0xAA55 boot flag, "HdrS", protocol 2.00 or
//     later, a nonzero pointer below 0x200 * setup_sects, as the protocol says, and a
//     NUL-terminated string of printable ASCII within 256 bytes, inside the section.
//   - arm64 Image: the uncompressed kernel has no such pointer, so the section is searched
//     for the linux_banner string, "Linux version RELEASE (". Every occurrence must name
//     the same release, or it is unknown: a section holding two banners (an embedded
//     initramfs, say) does not say which one is the kernel's.
//
// In both cases the release must start with a digit and be at most MaxKernelRelease bytes of
// printable ASCII without spaces. The release is the kernel's own claim: as trustworthy as
// the image, which PCR0 pins, and nothing more.
func ReadKernel(section []byte) Kernel {
	var k kernelReader
	k.Write(section)
	return k.result()
}

// kernelReader is ReadKernel fed in pieces, in order, as Parse and Build stream the section.
// It keeps the first kernelHeadSize bytes; an arm64 Image is also scanned as it streams.
type kernelReader struct {
	head    []byte
	decided bool // enough of the head to tell an arm64 Image
	arm64   bool
	banner  bannerScanner
}

// Write takes the next bytes of the section. It never fails (it is an io.Writer so that
// Build can feed it beside the hashes).
func (k *kernelReader) Write(p []byte) (int, error) {
	n := len(p)
	rest := p
	if len(k.head) < kernelHeadSize {
		take := min(len(p), kernelHeadSize-len(k.head))
		k.head, rest = append(k.head, p[:take]...), p[take:]
	}
	switch {
	case k.decided:
		if k.arm64 {
			k.banner.write(p)
		}
	case len(k.head) >= arm64MagicEnd:
		k.decided, k.arm64 = true, isArm64Image(k.head)
		if k.arm64 {
			k.banner.write(k.head) // everything so far
			k.banner.write(rest)
		}
	}
	return n, nil
}

func (k *kernelReader) result() Kernel {
	switch {
	case isArm64Image(k.head):
		return Kernel{Format: KernelArm64Image, Release: k.banner.finish()}
	case isBzImage(k.head):
		return Kernel{Format: KernelBzImage, Release: bzImageRelease(k.head)}
	}
	return Kernel{Format: KernelUnknown}
}

func isArm64Image(b []byte) bool {
	return len(b) >= arm64MagicEnd && string(b[arm64Magic:arm64MagicEnd]) == "ARM\x64"
}

func isBzImage(b []byte) bool {
	return len(b) >= bzHeaderEnd && binary.LittleEndian.Uint16(b[bzBootFlag:]) == 0xaa55 &&
		string(b[bzHeaderMagic:bzHeaderMagic+4]) == "HdrS"
}

// bzImageRelease follows kernel_version in head, the start of a bzImage.
func bzImageRelease(head []byte) string {
	le := binary.LittleEndian
	if le.Uint16(head[bzProtocol:]) < bzMinProtocol {
		return ""
	}
	ptr := int(le.Uint16(head[bzKernelVersion:]))
	setupSects := int(head[bzSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	if ptr == 0 || ptr >= bzVersionBase*setupSects {
		return ""
	}
	start := ptr + bzVersionBase
	if start >= len(head) {
		return ""
	}
	s := head[start:min(len(head), start+maxVersionString)]
	end := bytes.IndexByte(s, 0)
	if end < 0 {
		return ""
	}
	s = s[:end]
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	release, _, _ := bytes.Cut(s, []byte{' '})
	if !validRelease(release) {
		return ""
	}
	return string(release)
}

// validRelease: 1 to MaxKernelRelease bytes of printable ASCII, no space, starting with a
// digit.
func validRelease(r []byte) bool {
	if len(r) == 0 || len(r) > MaxKernelRelease || r[0] < '0' || r[0] > '9' {
		return false
	}
	for _, c := range r {
		if c <= 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// The banner the kernel prints first (init/version.c):
// "Linux version " UTS_RELEASE " (" LINUX_COMPILE_BY "@" ...
var bannerPrefix = []byte("Linux version ")

// bannerWindow is how many bytes from the start of a banner decide it: the prefix, the
// longest release and the " (" after it.
const bannerWindow = len("Linux version ") + MaxKernelRelease + len(" (")

// bannerScanner finds the banners in a stream, in constant memory: at most about two windows
// of bytes are carried from one write to the next, for a banner cut by a write boundary.
type bannerScanner struct {
	carry    []byte // bytes whose banners are undecided, in stream order
	release  string // the release every banner so far names
	conflict bool   // two banners name different releases
}

func (s *bannerScanner) write(p []byte) {
	if len(s.carry) > 0 {
		// Banners starting in the carry, with p's first bytes to complete them.
		n := len(s.carry)
		s.carry = append(s.carry, p[:min(len(p), bannerWindow)]...)
		if done := s.search(s.carry, n, false); done < n {
			// p was shorter than a window and is all in the carry now.
			s.carry = s.carry[:copy(s.carry, s.carry[done:])]
			return
		}
		s.carry = s.carry[:0]
	}
	done := s.search(p, len(p), false)
	s.carry = append(s.carry, p[done:]...)
}

func (s *bannerScanner) finish() string {
	s.search(s.carry, len(s.carry), true)
	s.carry = s.carry[:0]
	if s.conflict {
		return ""
	}
	return s.release
}

// search examines the banners in b that start before limit and can be decided: all of them
// at the end of the stream (final), otherwise those with a full window of b after their
// start. It returns the offset of the first start it could not decide.
func (s *bannerScanner) search(b []byte, limit int, final bool) int {
	decidable := limit
	if !final {
		decidable = max(0, min(limit, len(b)-bannerWindow+1))
	}
	for pos := 0; pos < decidable; {
		i := bytes.Index(b[pos:], bannerPrefix)
		if i < 0 || pos+i >= decidable {
			break
		}
		start := pos + i
		s.candidate(b[start+len(bannerPrefix) : min(len(b), start+bannerWindow)])
		pos = start + 1
	}
	return decidable
}

// candidate takes the bytes after "Linux version ": a release, then " (".
func (s *bannerScanner) candidate(b []byte) {
	release, after, ok := bytes.Cut(b, []byte{' '})
	if !ok || len(after) == 0 || after[0] != '(' || !validRelease(release) {
		return
	}
	switch {
	case s.release == "":
		s.release = string(release)
	case s.release != string(release):
		s.conflict = true
	}
}
