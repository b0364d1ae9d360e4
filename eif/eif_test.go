package eif

import (
	"bytes"
	"crypto/elliptic"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// Values from testdata/eif/EXPECTED.md.
const (
	vectorCRC  = 0x3a8129e7
	vectorPCR0 = "926d2bb27695e7baee86e2e0909c7e5309af449de99c7d9b90c2faf46ac79bd6296abba1a368986e076d8b8a2b222476"
	vectorPCR1 = "5578ee48934838185b9c1b719d19612f853a701c6e39115571e9244d96b8611ae55ac69bf6bad60beb9963b9d3ff68d1"
	vectorPCR2 = "708d0db9748df9037bf2a5e5b9a82c6d60d8661c6f301152b5bc9ff22d62820e91b33bc5a72f04a93869e82c6bfbe604"
	// PCR8 of inputs/signing-cert.pem: openssl x509 -outform DER | sha384, extended from zero.
	vectorPCR8 = "4f5aafa4322c6ed9ecd2fb139a0eeb99b457f571047fb217e5cb0096fa870e240f5d31c96bc68c45c2ca1f705fddc632"
	// PCR2 when there is no application ramdisk: extend(SHA-384 of nothing).
	emptyPCR2 = "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"
)

func TestVector(t *testing.T) {
	img, err := ParseFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	m := img.Measurements
	for name, got := range map[string][]byte{vectorPCR0: m.PCR0, vectorPCR1: m.PCR1, vectorPCR2: m.PCR2} {
		if hex.EncodeToString(got) != name {
			t.Errorf("PCR = %x, want %s", got, name)
		}
	}
	if m.PCR8 != nil || img.Signed() {
		t.Error("unsigned vector reports a signature")
	}
	if img.Header.CRC32 != vectorCRC || img.Header.Version != 4 || img.Header.Arch() != "x86_64" ||
		img.Header.DefaultMemory != 1<<30 || img.Header.DefaultCPUs != 2 {
		t.Errorf("header = %+v", img.Header)
	}
	// type:offset:size from EXPECTED.md.
	want := []Section{
		{SectionKernel, 548, 4096}, {SectionCmdline, 4656, 119}, {SectionMetadata, 4787, 243},
		{SectionRamdisk, 5042, 2048}, {SectionRamdisk, 7102, 3000},
	}
	if len(img.Sections) != len(want) {
		t.Fatalf("sections = %v", img.Sections)
	}
	for i := range want {
		if img.Sections[i] != want[i] {
			t.Errorf("section %d = %+v, want %+v", i, img.Sections[i], want[i])
		}
	}
	if md := img.Metadata; md == nil || md.ImageName != "synthetic" || md.ImageVersion != "1.0" ||
		md.BuildMetadata.BuildTool != "eif_build" || string(md.DockerInfo) != "null" {
		t.Errorf("metadata = %+v", img.Metadata)
	}
}

// The builder lays out the vector's inputs exactly as the vector.
func TestBuildReproducesVector(t *testing.T) {
	want, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	got, img := build(t, vectorInput(t))
	if !bytes.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("built %d bytes, vector %d; first difference at offset %d", len(got), len(want), i)
			}
		}
		t.Fatalf("built %d bytes, vector %d", len(got), len(want))
	}
	if hex.EncodeToString(img.Measurements.PCR0) != vectorPCR0 || img.Header.CRC32 != vectorCRC {
		t.Errorf("Build reported PCR0 %x CRC %08x", img.Measurements.PCR0, img.Header.CRC32)
	}
}

// Images built from random contents parse back to PCRs computed independently here, over
// sizes that straddle the streaming chunk boundaries.
func TestBuildRoundTrip(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	cases := []spec{
		{kernel: []byte{1}, ramdisks: [][]byte{{}}},
		{kernel: randomBytes(r, 100), cmdline: []byte("console=ttyS0"), ramdisks: [][]byte{randomBytes(r, 10)}},
		{kernel: randomBytes(r, chunkSize-HeaderSize-SectionHeaderSize), ramdisks: [][]byte{{}, randomBytes(r, 5)}},
		{kernel: randomBytes(r, chunkSize), cmdline: []byte("a"), ramdisks: [][]byte{randomBytes(r, chunkSize+1), randomBytes(r, 2*chunkSize+7)}},
		{kernel: randomBytes(r, 3*chunkSize/2), ramdisks: [][]byte{randomBytes(r, 1), {}, randomBytes(r, chunkSize/3), randomBytes(r, chunkSize)}},
		{kernel: randomBytes(r, 5000), ramdisks: [][]byte{randomBytes(r, 7*chunkSize+3)}},
	}
	for i := range 28 { // the most ramdisks an image can hold (3 + 28 + signature = 32)
		if i == 0 {
			cases = append(cases, spec{kernel: []byte("k")})
		}
		last := &cases[len(cases)-1]
		last.ramdisks = append(last.ramdisks, randomBytes(r, r.IntN(3000)))
	}
	for i, c := range cases {
		b, built := build(t, c.input())
		img, err := parseBytes(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		all := append([][]byte{c.kernel, c.cmdline}, c.ramdisks...)
		want := Measurements{
			PCR0: extendSHA384(all...),
			PCR1: extendSHA384(c.kernel, c.cmdline, c.ramdisks[0]),
			PCR2: extendSHA384(c.ramdisks[1:]...),
		}
		for _, got := range []Measurements{img.Measurements, built.Measurements} {
			if !bytes.Equal(got.PCR0, want.PCR0) || !bytes.Equal(got.PCR1, want.PCR1) || !bytes.Equal(got.PCR2, want.PCR2) || got.PCR8 != nil {
				t.Errorf("case %d: PCRs %x %x %x, want %x %x %x", i, got.PCR0, got.PCR1, got.PCR2, want.PCR0, want.PCR1, want.PCR2)
			}
		}
		if len(c.ramdisks) == 1 && (hex.EncodeToString(img.Measurements.PCR2) != emptyPCR2 || !bytes.Equal(img.Measurements.PCR0, img.Measurements.PCR1)) {
			t.Errorf("case %d: single ramdisk: PCR2 %x, PCR0 == PCR1: %v", i, img.Measurements.PCR2, bytes.Equal(img.Measurements.PCR0, img.Measurements.PCR1))
		}
		if img.Header.CRC32 != fileCRC(b) || built.Header != img.Header {
			t.Errorf("case %d: CRC %08x, file %08x; headers equal: %v", i, img.Header.CRC32, fileCRC(b), built.Header == img.Header)
		}
		if len(img.Sections) != 3+len(c.ramdisks) {
			t.Errorf("case %d: %d sections", i, len(img.Sections))
		}
	}
}

func TestSigned(t *testing.T) {
	in := vectorInput(t)
	in.Signer = vectorSigner(t)
	b, built := build(t, in)
	img, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	m := img.Measurements
	if hex.EncodeToString(m.PCR0) != vectorPCR0 || hex.EncodeToString(m.PCR1) != vectorPCR1 || hex.EncodeToString(m.PCR2) != vectorPCR2 {
		t.Errorf("signing changed PCR0-2: %x %x %x", m.PCR0, m.PCR1, m.PCR2)
	}
	if hex.EncodeToString(m.PCR8) != vectorPCR8 || !bytes.Equal(built.Measurements.PCR8, m.PCR8) {
		t.Errorf("PCR8 = %x (built %x), want %s", m.PCR8, built.Measurements.PCR8, vectorPCR8)
	}
	sig := img.Signature
	if sig == nil || sig.Algorithm != "ES384" || !bytes.Equal(sig.CertificatePEM, readInput(t, "signing-cert.pem")) {
		t.Fatalf("signature = %+v", sig)
	}
	if !sig.ValidAt(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) || sig.ValidAt(time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("ValidAt disagrees with the certificate's 2024..2044 validity")
	}
	// Layout: the signature is the last section, the header counts it.
	last := img.Sections[len(img.Sections)-1]
	if last.Type != SectionSignature || img.Header.NumSections != 6 || last.DataOffset()+last.Size != int64(len(b)) {
		t.Errorf("sections %v, num_sections %d", img.Sections, img.Header.NumSections)
	}
	// The section is serde_cbor of [{signing_certificate: [PEM bytes], signature: [COSE bytes]}].
	sec := b[last.DataOffset():]
	if !bytes.HasPrefix(sec, append([]byte{0x81, 0xa2, 0x73}, "signing_certificate"...)) {
		t.Errorf("signature section starts % x", sec[:24])
	}
	// COSE: untagged array of 4, protected {1: -35}, empty unprotected map.
	if !bytes.HasPrefix(sig.COSESign1, []byte{0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0}) {
		t.Errorf("COSE_Sign1 starts % x", sig.COSESign1[:8])
	}

	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P521()} {
		keyPEM, certPEM := selfSigned(t, curve, "other")
		s, err := NewSigner(keyPEM, certPEM)
		if err != nil {
			t.Fatal(err)
		}
		in := vectorInput(t)
		in.Signer = s
		b, _ := build(t, in)
		img, err := parseBytes(b)
		if err != nil {
			t.Fatalf("%s: %v", curve.Params().Name, err)
		}
		want := map[string]string{"P-256": "ES256", "P-521": "ES512"}[curve.Params().Name]
		block := pemBytes(t, certPEM)
		if img.Signature.Algorithm != want || !bytes.Equal(img.Measurements.PCR8, extendSHA384(block)) {
			t.Errorf("%s: algorithm %s, PCR8 %x", curve.Params().Name, img.Signature.Algorithm, img.Measurements.PCR8)
		}
	}
}

func pemBytes(t *testing.T, p []byte) []byte {
	t.Helper()
	der, err := parseCertificatePEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return der.Raw
}

// A signed image that was tampered with is rejected, also when the attacker fixes the CRC.
func TestTamperedSigned(t *testing.T) {
	in := vectorInput(t)
	in.Signer = vectorSigner(t)
	orig, img := build(t, in)
	kernelAt := img.Sections[0].DataOffset()
	sigSection := img.Sections[len(img.Sections)-1]

	otherKey, otherCert := selfSigned(t, elliptic.P384(), "attacker")
	otherSigner, err := NewSigner(otherKey, otherCert)
	if err != nil {
		t.Fatal(err)
	}
	// A valid signature by the same key over a different image's PCR0.
	foreign := vectorInput(t)
	foreign.Cmdline += " init=/bin/sh"
	foreign.Signer = vectorSigner(t)
	foreignBytes, foreignImg := build(t, foreign)
	foreignSig := foreignBytes[foreignImg.Sections[len(foreignImg.Sections)-1].DataOffset():]
	// The attacker's own signature section over the right PCR0, with the right certificate
	// pasted in: the key no longer matches the certificate.
	attackerSec, err := otherSigner.sign(img.Measurements.PCR0)
	if err != nil {
		t.Fatal(err)
	}
	attackerSig, err := parseSignatureSection(attackerSec)
	if err != nil {
		t.Fatal(err)
	}
	certSwapped := signatureSection(readInput(t, "signing-cert.pem"), attackerSig.COSESign1)
	// The right signature with the attacker's certificate (PCR8 would change).
	certReplaced := signatureSection(otherCert, img.Signature.COSESign1)
	// One bit of r flipped, re-encoded.
	cose, err := parseCOSESign1(img.Signature.COSESign1)
	if err != nil {
		t.Fatal(err)
	}
	cose.signature[5] ^= 1
	sigFlipped := signatureSection(img.Signature.CertificatePEM, cose.encode())
	// One bit of the signed payload's PCR0 flipped, re-encoded.
	cose, _ = parseCOSESign1(img.Signature.COSESign1)
	cose.payload[len(cose.payload)-1] ^= 1
	payloadFlipped := signatureSection(img.Signature.CertificatePEM, cose.encode())

	flip := func(b []byte, at int64) []byte {
		b = append([]byte{}, b...)
		b[at] ^= 1
		return b
	}
	cases := []struct {
		name string
		b    []byte
		kind error
	}{
		{"kernel byte flipped", flip(orig, kernelAt+10), ErrCRC},
		{"kernel byte flipped, CRC fixed", fixCRC(flip(orig, kernelAt+10)), ErrSignature},
		{"signature bit flipped", replaceLastSection(t, orig, sigFlipped), ErrSignature},
		{"signed payload bit flipped", replaceLastSection(t, orig, payloadFlipped), ErrSignature},
		{"foreign signature", replaceLastSection(t, orig, foreignSig), ErrSignature},
		{"attacker signature under the original certificate", replaceLastSection(t, orig, certSwapped), ErrSignature},
		{"original signature under another certificate", replaceLastSection(t, orig, certReplaced), ErrSignature},
		{"signature section truncated", fixCRC(truncateSection(orig, sigSection, 10)), ErrSignatureData},
	}
	for _, c := range cases {
		_, err := parseBytes(c.b)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.kind)
		}
	}
	// The attacker's own complete signature is fine as a signature, but it is a different
	// PCR8: a policy pinning PCR8 catches it.
	resigned, err := parseBytes(replaceLastSection(t, orig, attackerSec))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(resigned.Measurements.PCR8, img.Measurements.PCR8) || !bytes.Equal(resigned.Measurements.PCR0, img.Measurements.PCR0) {
		t.Error("re-signing kept PCR8 or changed PCR0")
	}
}

// truncateSection shortens the image's last section's data by n bytes, fixing the sizes.
func truncateSection(b []byte, s Section, n int64) []byte {
	out := append([]byte{}, b[:int64(len(b))-n]...)
	binary.BigEndian.PutUint64(out[s.Offset+4:], uint64(s.Size-n))
	idx := int64(0)
	for i := range MaxSections {
		if binary.BigEndian.Uint64(out[28+8*i:]) == uint64(s.Offset) {
			idx = int64(i)
		}
	}
	binary.BigEndian.PutUint64(out[284+8*idx:], uint64(s.Size-n))
	return out
}

func TestMalformed(t *testing.T) {
	vector, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, vector...)) }
	be := binary.BigEndian
	kernel := rawSection{typ: SectionKernel, data: []byte("kernel")}
	cmdline := rawSection{typ: SectionCmdline, data: []byte("console=ttyS0")}
	meta := rawSection{typ: SectionMetadata, data: readInput(t, "metadata.json")}
	ramdisk := rawSection{typ: SectionRamdisk, data: []byte("ramdisk")}
	signed := vectorInput(t)
	signed.Signer = vectorSigner(t)
	signedBytes, signedImg := build(t, signed)
	sigData := signedBytes[signedImg.Sections[5].DataOffset():]
	sig := rawSection{typ: SectionSignature, data: sigData}
	metaWith := func(s string) rawSection { return rawSection{typ: SectionMetadata, data: []byte(s)} }

	cases := []struct {
		name string
		b    []byte
		kind error
	}{
		{"empty", nil, ErrTruncated},
		{"header cut", vector[:547], ErrTruncated},
		{"last byte cut", vector[:len(vector)-1], ErrTruncated},
		{"last section cut off", vector[:7102], ErrTruncated},
		{"half a section header", vector[:7102+6], ErrTruncated},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'E'; return b }), ErrMagic},
		{"version 1", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[4:], 1); return b })), ErrVersion},
		{"version 5", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[4:], 5); return b })), ErrVersion},
		{"unknown flag", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[6:], 2); return b })), ErrHeader},
		{"reserved set", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[24:], 1); return b })), ErrHeader},
		{"unused set", fixCRC(mod(func(b []byte) []byte { be.PutUint32(b[540:], 1); return b })), ErrHeader},
		{"num_sections 0", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[26:], 0); return b })), ErrHeader},
		{"num_sections 33", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[26:], 33); return b })), ErrHeader},
		{"num_sections 65535", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[26:], 65535); return b })), ErrHeader},
		{"num_sections one short", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[26:], 4); return b })), ErrTrailingData},
		{"num_sections one more", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[26:], 6); return b })), ErrTruncated},
		{"trailing byte", fixCRC(append(append([]byte{}, vector...), 0)), ErrTrailingData},
		{"trailing section header", fixCRC(append(append([]byte{}, vector...), make([]byte, 12)...)), ErrTrailingData},
		{"section size beyond the file", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[7102+4:], 3001); return b })), ErrTruncated},
		{"section size 2^63", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[548+4:], 1<<63); return b })), ErrTruncated},
		{"section size smaller than the table", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[5042+4:], 2047); return b })), ErrSectionTable},
		{"table size lies", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[284+8*3:], 2047); return b })), ErrSectionTable},
		{"table claims overlapping sections", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[28+8*1:], 548+100); return b })), ErrSectionTable},
		{"unused table entry set", fixCRC(mod(func(b []byte) []byte { be.PutUint64(b[28+8*7:], 1); return b })), ErrSectionTable},
		{"section type 0", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[7102:], 0); return b })), ErrSectionType},
		{"section type 6", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[7102:], 6); return b })), ErrSectionType},
		{"section flags", fixCRC(mod(func(b []byte) []byte { be.PutUint16(b[7102+2:], 1); return b })), ErrLayout},
		{"CRC wrong", mod(func(b []byte) []byte { b[545] ^= 0xff; return b }), ErrCRC},
		{"data byte flipped", mod(func(b []byte) []byte { b[6000] ^= 1; return b }), ErrCRC},
		{"header field flipped", mod(func(b []byte) []byte { b[9] ^= 1; return b }), ErrCRC},

		{"cmdline first", rawEIF(4, cmdline, kernel, meta, ramdisk), ErrLayout},
		{"empty kernel", rawEIF(4, rawSection{typ: SectionKernel}, cmdline, meta, ramdisk), ErrLayout},
		{"no ramdisk", rawEIF(4, kernel, cmdline, meta, sig), ErrLayout},
		{"no metadata in v4", rawEIF(4, kernel, cmdline, ramdisk, ramdisk), ErrLayout},
		{"metadata after the ramdisks", rawEIF(4, kernel, cmdline, ramdisk, meta), ErrLayout},
		{"metadata in v3", rawEIF(3, kernel, cmdline, meta, ramdisk), ErrLayout},
		{"signature in v2", rawEIF(2, kernel, cmdline, ramdisk, sig), ErrLayout},
		{"two signatures", rawEIF(4, kernel, cmdline, meta, ramdisk, sig, sig), ErrLayout},
		{"two kernels", rawEIF(4, kernel, kernel, cmdline, meta, ramdisk), ErrLayout},
		{"ramdisk after signature", rawEIF(4, kernel, cmdline, meta, ramdisk, sig, ramdisk), ErrLayout},

		{"metadata not JSON", rawEIF(4, kernel, cmdline, metaWith("{"), ramdisk), ErrMetadata},
		{"metadata empty", rawEIF(4, kernel, cmdline, metaWith(""), ramdisk), ErrMetadata},
		{"metadata array", rawEIF(4, kernel, cmdline, metaWith("[]"), ramdisk), ErrMetadata},
		{"metadata trailing", rawEIF(4, kernel, cmdline, metaWith(string(meta.data)+"{}"), ramdisk), ErrMetadata},
		{"metadata duplicate key", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `{"ImageName":"synthetic",`, `{"ImageName":"synthetic","ImageName":"x",`, 1)), ramdisk), ErrMetadata},
		{"metadata nested duplicate key", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `"CustomMetadata":null`, `"CustomMetadata":{"a":[{"b":1,"b":2}]}`, 1)), ramdisk), ErrMetadata},
		{"metadata unknown field", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `"DockerInfo":null`, `"DockerInfo":null,"Extra":1`, 1)), ramdisk), ErrMetadata},
		{"metadata field case", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `"ImageName"`, `"imagename"`, 1)), ramdisk), ErrMetadata},
		{"metadata missing field", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `,"DockerInfo":null`, ``, 1)), ramdisk), ErrMetadata},
		{"metadata name not a string", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `"synthetic"`, `7`, 1)), ramdisk), ErrMetadata},
		{"metadata invalid UTF-8", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `synthetic`, "synth\xff", 1)), ramdisk), ErrMetadata},
		{"metadata too deep", rawEIF(4, kernel, cmdline, metaWith(strings.Replace(string(meta.data), `"CustomMetadata":null`, `"CustomMetadata":`+strings.Repeat("[", 100)+strings.Repeat("]", 100), 1)), ramdisk), ErrMetadata},
		{"metadata over the limit", rawEIF(4, kernel, cmdline, rawSection{typ: SectionMetadata, data: make([]byte, MaxMetadataSize+1)}, ramdisk), ErrMetadata},

		{"signature garbage", rawEIF(4, kernel, cmdline, meta, ramdisk, rawSection{typ: SectionSignature, data: []byte{0xff}}), ErrSignatureData},
		{"signature empty", rawEIF(4, kernel, cmdline, meta, ramdisk, rawSection{typ: SectionSignature}), ErrSignatureData},
		{"signature list of two", rawEIF(4, kernel, cmdline, meta, ramdisk, rawSection{typ: SectionSignature, data: append([]byte{0x82}, sigData[1:]...)}), ErrSignatureData},
		{"signature over the limit", rawEIF(4, kernel, cmdline, meta, ramdisk, rawSection{typ: SectionSignature, data: make([]byte, MaxSignatureSize+1)}), ErrSignatureData},
		{"signature over another image", rawEIF(4, kernel, cmdline, meta, ramdisk, sig), ErrSignature},
	}
	for _, c := range cases {
		img, err := parseBytes(c.b)
		if !errors.Is(err, c.kind) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.kind)
			continue
		}
		var e *Error
		if img != nil || !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "eif: ") {
			t.Errorf("%s: image %v, error %T %q", c.name, img, err, err)
		}
	}
	// The same layouts with valid contents do parse (the cases above fail for their reason).
	for _, b := range [][]byte{
		rawEIF(4, kernel, cmdline, meta, ramdisk),
		rawEIF(4, kernel, cmdline, meta, ramdisk, ramdisk, ramdisk),
		rawEIF(3, kernel, cmdline, ramdisk),
		rawEIF(2, kernel, cmdline, ramdisk, ramdisk),
		rawEIF(4, kernel, rawSection{typ: SectionCmdline}, meta, rawSection{typ: SectionRamdisk}),
	} {
		if _, err := parseBytes(b); err != nil {
			t.Errorf("valid layout rejected: %v", err)
		}
	}
}

// Claimed sizes never turn into allocations: a header claiming a huge section in a small
// file is rejected after reading a few hundred bytes.
func TestNoAllocationFromClaims(t *testing.T) {
	b := rawEIF(4, rawSection{typ: SectionKernel, data: []byte("k")}, rawSection{typ: SectionCmdline}, rawSection{typ: SectionRamdisk})
	binary.BigEndian.PutUint64(b[548+4:], 1<<40)
	binary.BigEndian.PutUint64(b[284:], 1<<40)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := parseBytes(b); !errors.Is(err, ErrTruncated) {
			t.Fatalf("err = %v", err)
		}
	})
	if allocs > 20 {
		t.Errorf("%v allocations to reject a lying size", allocs)
	}
}

// changingReader serves b, but after the first pass over the header region it serves
// other bytes: the file changed between the structure walk and the measuring pass.
type changingReader struct {
	b, later []byte
	reads    int
}

func (r *changingReader) ReadAt(p []byte, off int64) (int, error) {
	r.reads++
	src := r.b
	if r.reads > 6 { // header + 5 section headers of the vector have been walked
		src = r.later
	}
	if off >= int64(len(src)) {
		return 0, io.EOF
	}
	n := copy(p, src[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestFileChanged(t *testing.T) {
	vector, err := os.ReadFile(vectorPath)
	if err != nil {
		t.Fatal(err)
	}
	changedHeader := append([]byte{}, vector...)
	binary.BigEndian.PutUint64(changedHeader[7102+4:], 1) // a section header differs
	grown := append(append([]byte{}, vector...), 0)
	shrunk := vector[:len(vector)-10]
	for name, later := range map[string][]byte{"section header": changedHeader, "grew": grown, "shrank": shrunk} {
		_, err := Parse(&changingReader{b: vector, later: later}, int64(len(vector)))
		if !errors.Is(err, ErrChanged) {
			t.Errorf("%s: err = %v, want ErrChanged", name, err)
		}
	}
	// Data changing between the passes is caught by the CRC (the data is read only once).
	data := append([]byte{}, vector...)
	data[6000] ^= 1
	if _, err := Parse(&changingReader{b: vector, later: data}, int64(len(vector))); !errors.Is(err, ErrCRC) {
		t.Errorf("data: err = %v, want ErrCRC", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) ReadAt([]byte, int64) (int, error) { return 0, r.err }

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	if _, err := Parse(failingReader{boom}, 10000); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the read error", err)
	}
	if _, err := ParseFile("testdata"); err == nil {
		t.Error("ParseFile accepted a directory")
	}
	if _, err := ParseFile("does-not-exist.eif"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCRC32Combine(t *testing.T) {
	r := mrand.New(mrand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 3, 17, 548, 4096, 100000} {
		data := randomBytes(r, n)
		for _, cut := range []int{0, n / 3, n / 2, n} {
			a, b := data[:cut], data[cut:]
			got := crc32Combine(crc32.ChecksumIEEE(a), crc32.ChecksumIEEE(b), int64(len(b)))
			if want := crc32.ChecksumIEEE(data); got != want {
				t.Errorf("n=%d cut=%d: %08x, want %08x", n, cut, got, want)
			}
		}
	}
}

func TestBuildErrors(t *testing.T) {
	in := vectorInput(t)
	cases := map[string]func(*BuildInput){
		"no kernel":        func(in *BuildInput) { in.Kernel = nil },
		"empty kernel":     func(in *BuildInput) { in.Kernel = bytes.NewReader(nil) },
		"no ramdisk":       func(in *BuildInput) { in.Ramdisks = nil },
		"nil ramdisk":      func(in *BuildInput) { in.Ramdisks = []io.Reader{nil} },
		"NUL in cmdline":   func(in *BuildInput) { in.Cmdline = "a\x00b" },
		"too many":         func(in *BuildInput) { in.Ramdisks = make([]io.Reader, 30) },
		"bad DockerInfo":   func(in *BuildInput) { in.Metadata.DockerInfo = json.RawMessage(`{"a":1,"a":2}`) },
		"failing ramdisk":  func(in *BuildInput) { in.Ramdisks = []io.Reader{io.MultiReader(strings.NewReader("x"), errReader{})} },
		"metadata too big": func(in *BuildInput) { in.Metadata.ImageName = strings.Repeat("n", MaxMetadataSize) },
	}
	for name, f := range cases {
		c := in
		c.Ramdisks = append([]io.Reader{}, in.Ramdisks...)
		f(&c)
		if _, err := Build(&memFile{}, c); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestNewSignerErrors(t *testing.T) {
	key, cert := readInput(t, "signing-key.pem"), readInput(t, "signing-cert.pem")
	otherKey, otherCert := selfSigned(t, elliptic.P384(), "other")
	p224Key, p224Cert := selfSigned(t, elliptic.P224(), "p224")
	cases := map[string][2][]byte{
		"key of another certificate": {otherKey, cert},
		"certificate of another key": {key, otherCert},
		"key is a certificate":       {cert, cert},
		"certificate is a key":       {key, key},
		"garbage key":                {[]byte("x"), cert},
		"P-224":                      {p224Key, p224Cert},
		"two keys":                   {append(append([]byte{}, key...), key...), cert},
	}
	for name, c := range cases {
		if _, err := NewSigner(c[0], c[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSigner(key, cert); err != nil {
		t.Errorf("vector pair: %v", err)
	}
}
