package eif

import (
	"bytes"
	"crypto/sha512"
	mrand "math/rand/v2"
	"testing"
)

// benchImage is a 64 MiB image shaped like a real one: a few MiB of kernel, a small
// bootstrap ramdisk and a large application ramdisk.
func benchImage(b *testing.B) []byte {
	r := mrand.New(mrand.NewPCG(5, 6))
	img, _ := build(b, spec{
		kernel:   randomBytes(r, 6<<20),
		cmdline:  []byte("reboot=k panic=30 pci=off nomodules console=ttyS0"),
		ramdisks: [][]byte{randomBytes(r, 4<<20), randomBytes(r, 54<<20)},
	}.input())
	return img
}

// BenchmarkMeasure is Parse (CRC, PCR0/1/2, structure checks) of a 64 MiB image in memory.
// Compare with BenchmarkSHA384, one plain SHA-384 pass over the same bytes: the floor.
func BenchmarkMeasure(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(img), int64(len(img))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSHA384(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		sha512.Sum384(img)
	}
}
