package eif

import (
	"bytes"
	"crypto/sha512"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
)

// Streaming parameters: the file is read in chunkSize pieces through at most numBuffers
// buffers, so memory stays at numBuffers*chunkSize whatever the file's size.
const (
	chunkSize  = 1 << 20
	numBuffers = 6
)

// span is a byte range of the file that one hasher consumes; mark asks for the digest
// of everything hashed so far once the span is complete.
type span struct {
	start, end int64
	mark       bool
}

// chunk is one buffer of file data on its way through the hashers.
type chunk struct {
	off  int64
	buf  []byte
	refs atomic.Int32
}

// measured is what one pass over the file yields: inner digests (before the PCR extend),
// the CRC, and the two small sections.
type measured struct {
	pcr0, pcr1, pcr2    []byte
	crc                 uint32
	metadata, signature []byte
}

// hasher consumes chunks in file order and hashes the bytes that fall in its spans.
type hasher struct {
	in     chan *chunk
	spans  []span
	h      hash.Hash
	marked []byte // digest at the end of the marked span
	sum    []byte
}

func (w *hasher) run(release func(*chunk), done *sync.WaitGroup) {
	defer done.Done()
	i := 0
	for c := range w.in {
		end := c.off + int64(len(c.buf))
		for i < len(w.spans) {
			s := w.spans[i]
			if lo, hi := max(s.start, c.off), min(s.end, end); lo < hi {
				w.h.Write(c.buf[lo-c.off : hi-c.off])
			}
			if s.end > end {
				break // the span goes on in the next chunk
			}
			if s.mark {
				w.marked = w.h.Sum(nil) // Sum leaves the running state untouched
			}
			i++
		}
		release(c)
	}
	// Spans left over are empty ones at the very end of the file.
	for ; i < len(w.spans); i++ {
		if w.spans[i].mark {
			w.marked = w.h.Sum(nil)
		}
	}
	w.sum = w.h.Sum(nil)
}

// measure reads the file once, in order. The calling goroutine reads, checks that the
// header and section headers are still the bytes walk validated, updates the CRC and copies
// the metadata and signature sections; one goroutine hashes kernel, cmdline and all ramdisks
// (PCR0, taking PCR1's digest where the first ramdisk ends: SHA-384 of a prefix is the
// state of the longer hash at that point), another hashes the application ramdisks (PCR2).
func measure(r io.ReaderAt, size int64, header *[HeaderSize]byte, sections []Section, rawHeaders [][SectionHeaderSize]byte) (*measured, error) {
	var all, app []span
	var fixed []fixedRange // bytes already read and validated, which must not change
	fixed = append(fixed, fixedRange{0, header[:]})
	res := &measured{}
	var metaAt, sigAt int64
	ramdisk := 0
	for i, s := range sections {
		fixed = append(fixed, fixedRange{s.Offset, rawHeaders[i][:]})
		data := span{start: s.DataOffset(), end: s.DataOffset() + s.Size}
		switch s.Type {
		case SectionKernel, SectionCmdline:
			all = append(all, data)
		case SectionRamdisk:
			data.mark = ramdisk == 0
			all = append(all, data)
			if ramdisk > 0 {
				app = append(app, span{start: data.start, end: data.end})
			}
			ramdisk++
		case SectionMetadata:
			res.metadata, metaAt = make([]byte, s.Size), data.start
		case SectionSignature:
			res.signature, sigAt = make([]byte, s.Size), data.start
		}
	}

	bufSize := int64(chunkSize)
	if size < bufSize {
		bufSize = size
	}
	nbuf := int(min(int64(numBuffers), (size+bufSize-1)/bufSize))
	pool := make(chan []byte, nbuf)
	for range nbuf {
		pool <- make([]byte, bufSize)
	}
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			pool <- c.buf[:cap(c.buf)]
		}
	}
	workers := []*hasher{
		{in: make(chan *chunk, nbuf), spans: all, h: sha512.New384()},
		{in: make(chan *chunk, nbuf), spans: app, h: sha512.New384()},
	}
	var done sync.WaitGroup
	for _, w := range workers {
		done.Add(1)
		go w.run(release, &done)
	}
	stop := func() {
		for _, w := range workers {
			close(w.in)
		}
		done.Wait()
	}

	crc := uint32(0)
	fi := 0
	for off := int64(0); off < size; {
		buf := <-pool
		n := min(int64(len(buf)), size-off)
		buf = buf[:n]
		if err := readFull(r, buf, off); err != nil {
			stop()
			if e, ok := err.(*Error); ok && e.Kind == ErrTruncated {
				return nil, errorf(ErrChanged, e.Offset, "the file shrank")
			}
			return nil, err
		}
		end := off + n
		// Bytes validated before the pass must read the same now.
		for ; fi < len(fixed) && fixed[fi].off < end; fi++ {
			if !fixed[fi].matches(off, buf) {
				stop()
				return nil, errorf(ErrChanged, fixed[fi].off, "header bytes differ from the first read")
			}
			if fixed[fi].off+int64(len(fixed[fi].b)) > end {
				break // continues in the next chunk
			}
		}
		if off < crcOffset+4 && end > crcOffset {
			// Everything but the CRC field itself.
			crc = crc32.Update(crc, crc32.IEEETable, buf[:max(0, crcOffset-off)])
			crc = crc32.Update(crc, crc32.IEEETable, buf[min(n, crcOffset+4-off):])
		} else {
			crc = crc32.Update(crc, crc32.IEEETable, buf)
		}
		copyRange(res.metadata, metaAt, off, buf)
		copyRange(res.signature, sigAt, off, buf)

		c := &chunk{off: off, buf: buf}
		c.refs.Store(int32(len(workers)))
		for _, w := range workers {
			w.in <- c
		}
		off = end
	}
	stop()
	// The size came from the caller (a stat): a file that grew since is not what was measured.
	var probe [1]byte
	if n, _ := r.ReadAt(probe[:], size); n != 0 {
		return nil, errorf(ErrChanged, size, "the file grew")
	}
	res.crc = crc
	res.pcr0, res.pcr1, res.pcr2 = workers[0].sum, workers[0].marked, workers[1].sum
	return res, nil
}

// fixedRange is a part of the file read before the pass.
type fixedRange struct {
	off int64
	b   []byte
}

// matches compares the part of r that lies in buf (which starts at off).
func (r fixedRange) matches(off int64, buf []byte) bool {
	end := off + int64(len(buf))
	lo, hi := max(r.off, off), min(r.off+int64(len(r.b)), end)
	if lo >= hi {
		return true
	}
	return bytes.Equal(r.b[lo-r.off:hi-r.off], buf[lo-off:hi-off])
}

// copyRange copies the part of buf (at file offset off) that falls in dst (at file offset at).
func copyRange(dst []byte, at, off int64, buf []byte) {
	if dst == nil {
		return
	}
	lo, hi := max(at, off), min(at+int64(len(dst)), off+int64(len(buf)))
	if lo < hi {
		copy(dst[lo-at:hi-at], buf[lo-off:hi-off])
	}
}
