package eif

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"hash/crc32"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"testing"
	"time"
)

const (
	vectorPath = "../testdata/eif/synthetic-unsigned.eif"
	inputsDir  = "../testdata/eif/inputs/"
)

// memFile is an in-memory io.WriterAt for Build.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func parseBytes(b []byte) (*Image, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

func readInput(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(inputsDir + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vectorInput is the test vector's inputs and metadata.
func vectorInput(t testing.TB) BuildInput {
	t.Helper()
	md, err := ParseMetadata(readInput(t, "metadata.json"))
	if err != nil {
		t.Fatal(err)
	}
	return BuildInput{
		Kernel:   bytes.NewReader(readInput(t, "kernel.bin")),
		Cmdline:  string(readInput(t, "cmdline.txt")),
		Ramdisks: []io.Reader{bytes.NewReader(readInput(t, "ramdisk0.bin")), bytes.NewReader(readInput(t, "ramdisk1.bin"))},
		Metadata: *md,
	}
}

func vectorSigner(t testing.TB) *Signer {
	t.Helper()
	s, err := NewSigner(readInput(t, "signing-key.pem"), readInput(t, "signing-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func build(t testing.TB, in BuildInput) ([]byte, *Image) {
	t.Helper()
	var f memFile
	img, err := Build(&f, in)
	if err != nil {
		t.Fatal(err)
	}
	return f.b, img
}

// spec is an image's contents for buildBytes.
type spec struct {
	kernel, cmdline []byte
	ramdisks        [][]byte
}

func (s spec) input() BuildInput {
	in := BuildInput{Kernel: bytes.NewReader(s.kernel), Cmdline: string(s.cmdline)}
	for _, r := range s.ramdisks {
		in.Ramdisks = append(in.Ramdisks, bytes.NewReader(r))
	}
	return in
}

func randomBytes(r *mrand.Rand, n int) []byte {
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n:n]
}

// extendSHA384 is the PCR formula written out independently of the package:
// SHA-384(48 zero bytes || SHA-384(concatenation of parts)).
func extendSHA384(parts ...[]byte) []byte {
	inner := sha512.New384()
	for _, p := range parts {
		inner.Write(p)
	}
	outer := sha512.New384()
	outer.Write(make([]byte, 48))
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil)
}

// fileCRC is CRC-32/IEEE over the file without bytes 544..548.
func fileCRC(b []byte) uint32 {
	c := crc32.ChecksumIEEE(b[:544])
	return crc32.Update(c, crc32.IEEETable, b[548:])
}

// fixCRC rewrites the header CRC after a test modified the file.
func fixCRC(b []byte) []byte {
	binary.BigEndian.PutUint32(b[544:], fileCRC(b))
	return b
}

// rawSection is a section for rawEIF.
type rawSection struct {
	typ   SectionType
	flags uint16
	data  []byte
}

// rawEIF assembles an image from arbitrary sections with a consistent table and CRC, to
// test layout rules the builder cannot produce.
func rawEIF(version uint16, sections ...rawSection) []byte {
	h := Header{Version: version, DefaultMemory: defaultMemory, DefaultCPUs: defaultCPUs, NumSections: uint16(len(sections))}
	body := []byte{}
	off := int64(HeaderSize)
	for i, s := range sections {
		h.SectionOffsets[i] = uint64(off)
		h.SectionSizes[i] = uint64(len(s.data))
		var sh [SectionHeaderSize]byte
		binary.BigEndian.PutUint16(sh[0:], uint16(s.typ))
		binary.BigEndian.PutUint16(sh[2:], s.flags)
		binary.BigEndian.PutUint64(sh[4:], uint64(len(s.data)))
		body = append(append(body, sh[:]...), s.data...)
		off += SectionHeaderSize + int64(len(s.data))
	}
	hb := h.encode()
	return fixCRC(append(hb[:], body...))
}

// selfSigned returns a key (PEM, SEC 1) and a self-signed certificate (PEM) on curve c.
func selfSigned(t testing.TB, c elliptic.Curve, cn string) (keyPEM, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// replaceLastSection swaps the data of the image's last section (its signature) and fixes
// the section header, the header table and the CRC, as an attacker re-signing would.
func replaceLastSection(t testing.TB, b []byte, data []byte) []byte {
	t.Helper()
	img, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	last := img.Sections[len(img.Sections)-1]
	out := append([]byte{}, b[:last.DataOffset()]...)
	out = append(out, data...)
	binary.BigEndian.PutUint64(out[last.Offset+4:], uint64(len(data)))
	binary.BigEndian.PutUint64(out[284+8*(len(img.Sections)-1):], uint64(len(data)))
	return fixCRC(out)
}

// describeBuilt builds an image from in, parses it back and returns its describe JSON.
func describeBuilt(t testing.TB, in BuildInput) []byte {
	t.Helper()
	b, _ := build(t, in)
	img, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Describe(img).JSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
