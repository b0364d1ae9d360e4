package eif

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/attestd/attestd/pcr"
)

// nitro-cli's builder hard-codes these header defaults.
const (
	defaultMemory = 1 << 30
	defaultCPUs   = 2
)

// BuildInput is what an image is made of.
type BuildInput struct {
	// Kernel is the bzImage (x86_64) or Image (aarch64).
	Kernel io.Reader
	// Cmdline is the kernel command line, written without a NUL terminator. nitro-cli uses
	// the trimmed contents of its blobs' cmdline file.
	Cmdline string
	// Ramdisks are written in order: the first is the bootstrap ramdisk (measured into PCR1),
	// the others the application ramdisks (PCR2). nitro-cli writes exactly two.
	Ramdisks []io.Reader
	// Metadata fills the metadata section. A BuildMetadata.KernelVersion left "" or
	// UnknownKernelVersion is replaced by the release the kernel section declares, when
	// ReadKernel finds one.
	Metadata Metadata
	// Arm64 sets the aarch64 header flag.
	Arm64 bool
	// Signer, if set, signs the image (signature section and PCR8).
	Signer *Signer
}

// Build writes a version 4 EIF to w at offsets 0 onwards, laid out as nitro-cli's builder
// does: header, kernel at offset 548, cmdline, metadata, ramdisks, then the signature
// section if signed. It reads each input once, hashing and CRC-ing as it copies, then
// writes the section headers and finally the header (whose CRC covers everything but
// itself). It returns the image as Parse would see it. w must not be read until Build
// returns without error.
func Build(w io.WriterAt, in BuildInput) (*Image, error) {
	if in.Kernel == nil {
		return nil, errors.New("eif: build: no kernel")
	}
	if len(in.Ramdisks) == 0 {
		return nil, errors.New("eif: build: no ramdisk (nitro-cli images have two: bootstrap and application)")
	}
	signed := 0
	if in.Signer != nil {
		signed = 1
	}
	if n := 3 + len(in.Ramdisks) + signed; n > MaxSections {
		return nil, fmt.Errorf("eif: build: %d sections, the format allows %d", n, MaxSections)
	}
	if strings.IndexByte(in.Cmdline, 0) >= 0 {
		return nil, errors.New("eif: build: NUL byte in the kernel command line")
	}
	md := in.Metadata
	if _, err := md.encodeChecked(); err != nil { // fail before writing anything
		return nil, err
	}

	b := &builder{w: w, off: HeaderSize, buf: make([]byte, chunkSize)}
	all, app := sha512.New384(), sha512.New384()
	var kernel kernelReader
	if err := b.section(SectionKernel, in.Kernel, all, &kernel); err != nil {
		return nil, err
	}
	if sz := b.sections[0].Size; sz == 0 {
		return nil, errors.New("eif: build: empty kernel")
	}
	if k := kernel.result(); k.Release != "" &&
		(md.BuildMetadata.KernelVersion == "" || md.BuildMetadata.KernelVersion == UnknownKernelVersion) {
		md.BuildMetadata.KernelVersion = k.Release
	}
	meta, err := md.encodeChecked()
	if err != nil {
		return nil, err
	}
	if err := b.section(SectionCmdline, strings.NewReader(in.Cmdline), all); err != nil {
		return nil, err
	}
	if err := b.section(SectionMetadata, bytes.NewReader(meta)); err != nil {
		return nil, err
	}
	var bootstrap []byte
	for i, rd := range in.Ramdisks {
		if rd == nil {
			return nil, fmt.Errorf("eif: build: ramdisk %d is nil", i)
		}
		hashers := []io.Writer{all}
		if i > 0 {
			hashers = append(hashers, app)
		}
		if err := b.section(SectionRamdisk, rd, hashers...); err != nil {
			return nil, err
		}
		if i == 0 {
			bootstrap = all.Sum(nil)
		}
	}
	img := &Image{Measurements: Measurements{
		PCR0: pcr.FromZero(all.Sum(nil)),
		PCR1: pcr.FromZero(bootstrap),
		PCR2: pcr.FromZero(app.Sum(nil)),
	}, Kernel: kernel.result()}
	if in.Signer != nil {
		sec, err := in.Signer.sign(img.Measurements.PCR0)
		if err != nil {
			return nil, err
		}
		// Decode what was written, so the returned image is what Parse would report.
		sig, err := parseSignatureSection(sec)
		if err == nil {
			err = sig.verify(img.Measurements.PCR0)
		}
		if err != nil {
			return nil, fmt.Errorf("eif: build: own signature: %w", err)
		}
		if err := b.section(SectionSignature, bytes.NewReader(sec)); err != nil {
			return nil, err
		}
		img.Signature = sig
		img.Measurements.PCR8 = pcr.Measure(sig.Certificate.Raw)
	}

	h := Header{
		Version:       Version,
		DefaultMemory: defaultMemory,
		DefaultCPUs:   defaultCPUs,
		NumSections:   uint16(len(b.sections)),
	}
	if in.Arm64 {
		h.Flags = FlagArm64
	}
	for i, s := range b.sections {
		h.SectionOffsets[i] = uint64(s.Offset)
		h.SectionSizes[i] = uint64(s.Size)
	}
	hb := h.encode()
	h.CRC32 = crc32Combine(crc32.ChecksumIEEE(hb[:crcOffset]), b.crc, b.off-HeaderSize)
	binary.BigEndian.PutUint32(hb[crcOffset:], h.CRC32)
	if _, err := w.WriteAt(hb[:], 0); err != nil {
		return nil, fmt.Errorf("eif: build: write header: %w", err)
	}
	img.Header = h
	img.Sections = b.sections
	img.Metadata = &md
	return img, nil
}

// UnknownKernelVersion is the KernelVersion placeholder of a builder that was not told one
// (attest eif build's --kernel-version default).
const UnknownKernelVersion = "Unknown"

// encodeChecked encodes m for Build, within MaxMetadataSize.
func (m *Metadata) encodeChecked() ([]byte, error) {
	meta, err := m.encode()
	if err != nil {
		return nil, fmt.Errorf("eif: build: metadata: %w", err)
	}
	if len(meta) > MaxMetadataSize {
		return nil, fmt.Errorf("eif: build: metadata is %d bytes, the limit is %d", len(meta), MaxMetadataSize)
	}
	return meta, nil
}

// encode returns the header bytes; the CRC field is written as h.CRC32.
func (h *Header) encode() [HeaderSize]byte {
	var b [HeaderSize]byte
	be := binary.BigEndian
	copy(b[:4], magic[:])
	be.PutUint16(b[4:], h.Version)
	be.PutUint16(b[6:], h.Flags)
	be.PutUint64(b[8:], h.DefaultMemory)
	be.PutUint64(b[16:], h.DefaultCPUs)
	be.PutUint16(b[26:], h.NumSections)
	for i := range MaxSections {
		be.PutUint64(b[28+8*i:], h.SectionOffsets[i])
		be.PutUint64(b[284+8*i:], h.SectionSizes[i])
	}
	be.PutUint32(b[crcOffset:], h.CRC32)
	return b
}

// builder appends sections to the output and keeps the CRC of everything after the header.
type builder struct {
	w        io.WriterAt
	off      int64  // where the next section header goes
	crc      uint32 // CRC of [HeaderSize, off)
	buf      []byte
	sections []Section
}

// section copies src into the data of a new section, feeding the sinks (hashes, the kernel
// reader), then writes the section header in front of it (its size is known only at the end
// of src). The sinks do not fail.
func (b *builder) section(t SectionType, src io.Reader, sinks ...io.Writer) error {
	start := b.off + SectionHeaderSize
	pos := start
	dataCRC := uint32(0)
	for {
		n, err := src.Read(b.buf)
		if n > 0 {
			p := b.buf[:n]
			if _, werr := b.w.WriteAt(p, pos); werr != nil {
				return fmt.Errorf("eif: build: write %s: %w", t, werr)
			}
			for _, w := range sinks {
				w.Write(p)
			}
			dataCRC = crc32.Update(dataCRC, crc32.IEEETable, p)
			pos += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("eif: build: read %s: %w", t, err)
		}
	}
	size := pos - start
	var sh [SectionHeaderSize]byte
	binary.BigEndian.PutUint16(sh[0:], uint16(t))
	binary.BigEndian.PutUint64(sh[4:], uint64(size))
	if _, err := b.w.WriteAt(sh[:], b.off); err != nil {
		return fmt.Errorf("eif: build: write %s header: %w", t, err)
	}
	secCRC := crc32Combine(crc32.ChecksumIEEE(sh[:]), dataCRC, size)
	b.crc = crc32Combine(b.crc, secCRC, SectionHeaderSize+size)
	b.sections = append(b.sections, Section{Type: t, Offset: b.off, Size: size})
	b.off = pos
	return nil
}
