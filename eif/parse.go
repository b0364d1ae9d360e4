package eif

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/attestd/attestd/pcr"
)

// ParseFile opens path and parses it with Parse.
func ParseFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("eif: %s is not a regular file", path)
	}
	return Parse(f, st.Size())
}

// Parse checks the size bytes of r as an EIF and measures it. It reads the header and the
// section headers first, so that a malformed layout is rejected before any data is
// hashed, then reads the whole file once, sequentially, through a fixed set of buffers,
// computing the CRC and the PCRs (PCR0 and PCR2 on separate goroutines). Memory use does not
// depend on the sizes the file claims; only the metadata and signature sections, bounded by
// MaxMetadataSize and MaxSignatureSize, are held in memory.
//
// A signed image is returned only if its signature verifies (see Signature); the validity
// period of the signing certificate is not checked here (see Signature.ValidAt).
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	if size < HeaderSize {
		return nil, errorf(ErrTruncated, size, "%d bytes, an EIF header alone is %d", size, HeaderSize)
	}
	var hb [HeaderSize]byte
	if err := readFull(r, hb[:], 0); err != nil {
		return nil, err
	}
	h, err := parseHeader(&hb)
	if err != nil {
		return nil, err
	}
	sections, sectionHeaders, err := walk(r, size, h)
	if err != nil {
		return nil, err
	}
	if err := checkLayout(h.Version, sections); err != nil {
		return nil, err
	}

	res, err := measure(r, size, &hb, sections, sectionHeaders)
	if err != nil {
		return nil, err
	}
	if res.crc != h.CRC32 {
		return nil, errorf(ErrCRC, crcOffset, "header says %08x, contents give %08x", h.CRC32, res.crc)
	}
	img := &Image{
		Header:   *h,
		Sections: sections,
		Measurements: Measurements{
			PCR0: pcr.FromZero(res.pcr0),
			PCR1: pcr.FromZero(res.pcr1),
			PCR2: pcr.FromZero(res.pcr2),
		},
		Kernel: res.kernel,
	}
	for _, s := range sections {
		switch s.Type {
		case SectionMetadata:
			md, err := ParseMetadata(res.metadata)
			if err != nil {
				return nil, &Error{Kind: ErrMetadata, Offset: s.DataOffset(), Detail: err.Error()}
			}
			img.Metadata = md
		case SectionSignature:
			sig, err := parseSignatureSection(res.signature)
			if err != nil {
				return nil, &Error{Kind: ErrSignatureData, Offset: s.DataOffset(), Detail: err.Error()}
			}
			if err := sig.verify(img.Measurements.PCR0); err != nil {
				return nil, &Error{Kind: ErrSignature, Offset: s.DataOffset(), Detail: err.Error()}
			}
			img.Signature = sig
			img.Measurements.PCR8 = pcr.Measure(sig.Certificate.Raw)
		}
	}
	return img, nil
}

// readFull reads len(b) bytes at off; a short read means the file ended early.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return errorf(ErrTruncated, off+int64(n), "wanted %d bytes, the file ends after %d", len(b), n)
	}
	return fmt.Errorf("eif: read at offset %d: %w", off, err)
}

func parseHeader(b *[HeaderSize]byte) (*Header, error) {
	if [4]byte(b[:4]) != magic {
		return nil, errorf(ErrMagic, 0, "% x, want % x (\".eif\")", b[:4], magic[:])
	}
	be := binary.BigEndian
	h := &Header{
		Version:       be.Uint16(b[4:]),
		Flags:         be.Uint16(b[6:]),
		DefaultMemory: be.Uint64(b[8:]),
		DefaultCPUs:   be.Uint64(b[16:]),
		NumSections:   be.Uint16(b[26:]),
		CRC32:         be.Uint32(b[crcOffset:]),
	}
	for i := range MaxSections {
		h.SectionOffsets[i] = be.Uint64(b[28+8*i:])
		h.SectionSizes[i] = be.Uint64(b[284+8*i:])
	}
	if h.Version < MinVersion || h.Version > Version {
		return nil, errorf(ErrVersion, 4, "version %d, this parser reads %d to %d", h.Version, MinVersion, Version)
	}
	if h.Flags&^FlagArm64 != 0 {
		return nil, errorf(ErrHeader, 6, "unknown flags %#04x", h.Flags)
	}
	if reserved := be.Uint16(b[24:]); reserved != 0 {
		return nil, errorf(ErrHeader, 24, "reserved field is %#04x, want 0", reserved)
	}
	if unused := be.Uint32(b[540:]); unused != 0 {
		return nil, errorf(ErrHeader, 540, "unused field is %#08x, want 0", unused)
	}
	// kernel, cmdline and at least one ramdisk; the table has MaxSections entries.
	if h.NumSections < 3 || h.NumSections > MaxSections {
		return nil, errorf(ErrHeader, 26, "num_sections is %d, want 3 to %d", h.NumSections, MaxSections)
	}
	return h, nil
}

// walk reads the section headers sequentially from the end of the EIF header, as nitro-cli's
// reader does, and requires them to match the header's table entry by entry, to stay within
// the file and to end exactly at its end. It returns the sections and their raw headers.
func walk(r io.ReaderAt, size int64, h *Header) ([]Section, [][SectionHeaderSize]byte, error) {
	n := int(h.NumSections)
	sections := make([]Section, 0, n)
	raw := make([][SectionHeaderSize]byte, 0, n)
	off := int64(HeaderSize)
	for i := 0; off < size; i++ {
		if i == n {
			return nil, nil, errorf(ErrTrailingData, off, "%d bytes after the %d sections the header lists", size-off, n)
		}
		var sb [SectionHeaderSize]byte
		if size-off < SectionHeaderSize {
			return nil, nil, errorf(ErrTruncated, off, "section %d header needs %d bytes, %d left", i, SectionHeaderSize, size-off)
		}
		if err := readFull(r, sb[:], off); err != nil {
			return nil, nil, err
		}
		t := SectionType(binary.BigEndian.Uint16(sb[0:]))
		flags := binary.BigEndian.Uint16(sb[2:])
		dataSize := binary.BigEndian.Uint64(sb[4:])
		if t < SectionKernel || t > SectionMetadata {
			return nil, nil, errorf(ErrSectionType, off, "section %d has type %d", i, uint16(t))
		}
		if flags != 0 {
			return nil, nil, errorf(ErrLayout, off+2, "section %d (%s) has flags %#04x, want 0", i, t, flags)
		}
		if left := uint64(size - off - SectionHeaderSize); dataSize > left {
			return nil, nil, errorf(ErrTruncated, off, "section %d (%s) claims %d bytes, %d left in the file", i, t, dataSize, left)
		}
		if h.SectionOffsets[i] != uint64(off) || h.SectionSizes[i] != dataSize {
			return nil, nil, errorf(ErrSectionTable, off, "section %d (%s) is at offset %d with %d bytes, the header table says offset %d, %d bytes",
				i, t, off, dataSize, h.SectionOffsets[i], h.SectionSizes[i])
		}
		switch {
		case t == SectionMetadata && dataSize > MaxMetadataSize:
			return nil, nil, errorf(ErrMetadata, off, "%d bytes, the limit is %d", dataSize, MaxMetadataSize)
		case t == SectionSignature && dataSize > MaxSignatureSize:
			return nil, nil, errorf(ErrSignatureData, off, "%d bytes, the limit is %d", dataSize, MaxSignatureSize)
		}
		sections = append(sections, Section{Type: t, Offset: off, Size: int64(dataSize)})
		raw = append(raw, sb)
		off += SectionHeaderSize + int64(dataSize)
	}
	if len(sections) != n {
		return nil, nil, errorf(ErrTruncated, size, "the header lists %d sections, the file holds %d", n, len(sections))
	}
	for i := n; i < MaxSections; i++ {
		if h.SectionOffsets[i] != 0 || h.SectionSizes[i] != 0 {
			return nil, nil, errorf(ErrSectionTable, int64(28+8*i), "unused table entry %d is not zero", i)
		}
	}
	return sections, raw, nil
}

// checkLayout enforces the order nitro-cli's builder writes: kernel, cmdline, metadata (v4
// only), one or more ramdisks, then an optional signature (v3 and later).
func checkLayout(version uint16, sections []Section) error {
	want := []SectionType{SectionKernel, SectionCmdline}
	if version >= 4 {
		want = append(want, SectionMetadata)
	}
	i := 0
	for ; i < len(want); i++ {
		if i >= len(sections) || sections[i].Type != want[i] {
			return layoutError(sections, i, fmt.Sprintf("a version %d image starts with %v", version, want))
		}
	}
	if sections[0].Size == 0 {
		return errorf(ErrLayout, sections[0].Offset, "empty kernel")
	}
	ramdisks := 0
	for ; i < len(sections) && sections[i].Type == SectionRamdisk; i++ {
		ramdisks++
	}
	if ramdisks == 0 {
		return layoutError(sections, i, "no ramdisk")
	}
	if i < len(sections) && sections[i].Type == SectionSignature && version >= 3 {
		i++
	}
	if i < len(sections) {
		return layoutError(sections, i, fmt.Sprintf("after the ramdisks a version %d image may only hold one signature section (v3+)", version))
	}
	return nil
}

func layoutError(sections []Section, i int, detail string) error {
	if i < len(sections) {
		return errorf(ErrLayout, sections[i].Offset, "section %d is %s: %s", i, sections[i].Type, detail)
	}
	return errorf(ErrLayout, -1, "%d sections: %s", len(sections), detail)
}
