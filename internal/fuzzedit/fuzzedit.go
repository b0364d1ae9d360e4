// Package fuzzedit lets fuzz targets take a base input and a short edit script instead of a
// whole input, for parsers whose interesting inputs are kilobytes long (attestation documents,
// enclave images, kernels).
//
// Go minimises every input that finds new coverage for up to -fuzzminimizetime (60 s by
// default), with passes quadratic in the input's length: a 5 KB input is never minimised within
// the limit, so each new path stalls the fuzzer for up to a minute, and a target that finds new
// paths often makes progress only in bursts (measured: FuzzVerify 38 executions in 60 s, eif's
// FuzzParse 1,129 in 12 s). A script is a few bytes, minimises in milliseconds, and still reaches
// any byte of any base.
package fuzzedit

import (
	"bytes"
	"slices"
	"testing"
)

// MaxScript bounds the edit scripts Run acts on: longer ones are skipped, so they never become
// corpus entries that take seconds to minimise. Sixty-four bytes hold several edits.
const MaxScript = 64

// Edit-script operations (Apply).
const (
	Overwrite = iota // off, n, n bytes: overwrite from off (growing the input if needed)
	Insert           // off, n, n bytes: insert at off
	Delete           // off, n (2 bytes): delete n bytes from off
	Copy             // off, src (2 bytes), n (2 bytes): insert a copy of in[src:src+n] at off
)

// Apply returns a copy of base changed by the edit script s: a sequence of operations, each an
// op byte (low two bits: Overwrite..Copy) and a two-byte big-endian offset taken modulo len+1,
// then the operation's arguments; a script cut short ends early. Editing stops once the input
// is longer than maxLen.
func Apply(base, s []byte, maxLen int) []byte {
	in := bytes.Clone(base)
	u16 := func(b []byte) int { return int(b[0])<<8 | int(b[1]) }
	for len(s) >= 4 && len(in) <= maxLen {
		op, off := s[0]&3, u16(s[1:3])%(len(in)+1)
		switch op {
		case Overwrite, Insert:
			n := min(int(s[3]), len(s)-4)
			data := s[4 : 4+n]
			s = s[4+n:]
			if op == Insert {
				in = slices.Insert(in, off, data...)
				continue
			}
			in = slices.Replace(in, off, min(off+n, len(in)), data...)
		case Delete:
			if len(s) < 5 {
				return in
			}
			in = slices.Delete(in, off, min(off+u16(s[3:5]), len(in)))
			s = s[5:]
		case Copy:
			if len(s) < 7 {
				return in
			}
			src := u16(s[3:5]) % (len(in) + 1)
			piece := bytes.Clone(in[src:min(src+u16(s[5:7]), len(in))])
			in = slices.Insert(in, off, piece...)
			s = s[7:]
		}
	}
	return in
}

// Run fuzzes check with the bases changed by edit scripts: every unchanged base is a seed (as
// base index, empty script), scripts longer than MaxScript are skipped, and editing stops once
// an input is longer than maxLen (set it past the parser's size limit so that limit is reached).
func Run(f *testing.F, bases [][]byte, maxLen int, check func(t *testing.T, data []byte)) {
	if len(bases) == 0 || len(bases) > 256 {
		f.Fatalf("fuzzedit: %d bases, want 1 to 256", len(bases))
	}
	for i := range bases {
		f.Add(uint8(i), []byte(nil))
	}
	f.Fuzz(func(t *testing.T, base uint8, script []byte) {
		if in, ok := Edit(bases, base, script, maxLen); ok {
			check(t, in)
		}
	})
}

// Edit is the input Run checks, for targets that take more arguments than Run's: base number
// base (modulo len(bases)) changed by script, or false for a script longer than MaxScript.
func Edit(bases [][]byte, base uint8, script []byte, maxLen int) ([]byte, bool) {
	if len(script) > MaxScript {
		return nil, false
	}
	return Apply(bases[int(base)%len(bases)], script, maxLen), true
}
