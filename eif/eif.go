// Package eif reads, measures and writes AWS Nitro Enclaves image files (EIF).
//
// [Parse] checks an EIF strictly and computes, in one sequential pass over the file, its
// CRC-32 and the PCR0, PCR1 and PCR2 values that the Nitro hypervisor will measure, and PCR8
// for signed images, exactly as nitro-cli does:
//
//	PCR0 = SHA-384(0^48 || SHA-384(kernel || cmdline || ramdisk[0] || ramdisk[1] || ...))
//	PCR1 = SHA-384(0^48 || SHA-384(kernel || cmdline || ramdisk[0]))
//	PCR2 = SHA-384(0^48 || SHA-384(ramdisk[1] || ramdisk[2] || ...))
//	PCR8 = SHA-384(0^48 || SHA-384(DER of the signing certificate))
//
// Only section data is measured; the header, section headers, metadata and signature
// sections are not. The signature of a signed image is verified as part of parsing.
//
// [Build] writes an EIF the way nitro-cli's builder lays it out (header, kernel at 548,
// cmdline, metadata, ramdisks, signature), optionally signed, so that tests and reproducible
// pipelines can make images without nitro-cli. [Describe] renders the `nitro-cli describe-eif`
// JSON. Both also read the kernel's release from the kernel section ([ReadKernel]).
//
// Strictness (beyond what nitro-cli's reader enforces; see docs/eif.md): versions 2 to 4
// only; reserved header fields and unknown flag bits must be zero; the sections walked from
// offset 548 must agree exactly with the header's num_sections, offsets and sizes table
// (unused table entries zero); sections must appear in builder order with at least one
// ramdisk and a non-empty kernel; no bytes may follow the last section; the CRC must match;
// metadata must be strict JSON with exactly the known fields; the signature section must be
// the exact CBOR nitro-cli writes, with one entry whose COSE_Sign1 signature verifies.
package eif

import (
	"errors"
	"fmt"
)

// Layout constants of the format (aws-nitro-enclaves-image-format, src/defs/mod.rs).
const (
	// HeaderSize is the size of the EIF header.
	HeaderSize = 548
	// SectionHeaderSize is the size of the header in front of each section's data.
	SectionHeaderSize = 12
	// MaxSections is the size of the header's section table.
	MaxSections = 32
	// Version is the EIF version Build writes (v4: with a metadata section).
	Version = 4
	// MinVersion is the oldest version Parse accepts: v1 images carry no CRC.
	MinVersion = 2
	// FlagArm64 is the header flag of aarch64 images (cleared for x86_64).
	FlagArm64 = 0x1

	// MaxMetadataSize bounds the metadata section, which is read into memory.
	MaxMetadataSize = 1 << 20
	// MaxSignatureSize bounds the signature section, which is read into memory.
	MaxSignatureSize = 64 << 10

	// crcOffset is where the header's CRC field lives; the CRC covers every other byte.
	crcOffset = 544
)

var magic = [4]byte{'.', 'e', 'i', 'f'}

// HasMagic reports whether b starts with the EIF magic ".eif".
func HasMagic(b []byte) bool {
	return len(b) >= len(magic) && [4]byte(b[:4]) == magic
}

// SectionType is the type of an EIF section.
type SectionType uint16

// Section types. Type 0 (invalid) and types above 5 are rejected.
const (
	SectionKernel    SectionType = 1
	SectionCmdline   SectionType = 2
	SectionRamdisk   SectionType = 3
	SectionSignature SectionType = 4
	SectionMetadata  SectionType = 5
)

// String returns the section type's name, as nitro-cli's sources call it (lower case).
func (t SectionType) String() string {
	switch t {
	case SectionKernel:
		return "kernel"
	case SectionCmdline:
		return "cmdline"
	case SectionRamdisk:
		return "ramdisk"
	case SectionSignature:
		return "signature"
	case SectionMetadata:
		return "metadata"
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// Header is the decoded EIF header. Reserved fields are not kept: Parse requires them to
// be zero.
type Header struct {
	Version        uint16
	Flags          uint16
	DefaultMemory  uint64 // bytes
	DefaultCPUs    uint64
	NumSections    uint16
	SectionOffsets [MaxSections]uint64 // file offset of each section header
	SectionSizes   [MaxSections]uint64 // size of each section's data
	CRC32          uint32
}

// Arch returns "aarch64" or "x86_64" from the header flags.
func (h *Header) Arch() string {
	if h.Flags&FlagArm64 != 0 {
		return "aarch64"
	}
	return "x86_64"
}

// Section is one section of an image.
type Section struct {
	Type   SectionType
	Offset int64 // file offset of the 12-byte section header
	Size   int64 // size of the data that follows the section header
}

// DataOffset returns the file offset of the section's data.
func (s Section) DataOffset() int64 { return s.Offset + SectionHeaderSize }

// Measurements are the PCR values of an image, 48 bytes each.
type Measurements struct {
	PCR0 []byte // kernel, cmdline and all ramdisks
	PCR1 []byte // kernel, cmdline and the first (bootstrap) ramdisk
	PCR2 []byte // the other (application) ramdisks
	PCR8 []byte // signing certificate; nil for unsigned images
}

// Image is a parsed (or freshly built) EIF.
type Image struct {
	Header       Header
	Sections     []Section
	Measurements Measurements
	// Metadata is the metadata section of a v4 image, nil for older versions.
	Metadata *Metadata
	// Signature is the verified signature section, nil for unsigned images.
	Signature *Signature
	// Kernel is what the kernel section says about itself (see ReadKernel).
	Kernel Kernel
}

// Signed reports whether the image carries a (verified) signature section.
func (img *Image) Signed() bool { return img.Signature != nil }

// Error kinds. Every error Parse returns for a malformed image is an *Error whose Kind is
// one of these (errors.Is works on the kind); I/O errors are returned wrapped as they are.
var (
	ErrTruncated     = errors.New("truncated")
	ErrMagic         = errors.New("bad magic")
	ErrVersion       = errors.New("unsupported version")
	ErrHeader        = errors.New("invalid header")
	ErrSectionType   = errors.New("unknown section type")
	ErrSectionTable  = errors.New("section table disagrees with the sections")
	ErrLayout        = errors.New("invalid section layout")
	ErrTrailingData  = errors.New("trailing data after the last section")
	ErrCRC           = errors.New("CRC mismatch")
	ErrMetadata      = errors.New("invalid metadata section")
	ErrSignatureData = errors.New("invalid signature section")
	ErrSignature     = errors.New("signature check failed")
	ErrChanged       = errors.New("file changed while it was read")
)

// Error describes what is wrong with an image and where.
type Error struct {
	Kind   error // one of the Err* kinds
	Offset int64 // file offset the problem was found at, -1 if none applies
	Detail string
}

// Error reads "eif: <kind> at offset N: <detail>".
func (e *Error) Error() string {
	s := "eif: " + e.Kind.Error()
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the kind, so errors.Is(err, eif.ErrTruncated) works.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, off int64, format string, args ...any) *Error {
	return &Error{Kind: kind, Offset: off, Detail: fmt.Sprintf(format, args...)}
}
