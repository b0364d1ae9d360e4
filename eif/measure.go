package eif

import (
	"bytes"
	"crypto/sha512"
	"hash"
	"hash/crc32"
	"io"
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

// hasher hashes the bytes of the chunks it is fed that fall in its spans; chunks come in
// file order.
type hasher struct {
	spans  []span
	next   int // first span not yet complete
	h      hash.Hash
	marked []byte // digest at the end of the marked span
	sum    []byte
}

func (w *hasher) feed(c *chunk) {
	end := c.off + int64(len(c.buf))
	for w.next < len(w.spans) {
		s := w.spans[w.next]
		if lo, hi := max(s.start, c.off), min(s.end, end); lo < hi {
			w.h.Write(c.buf[lo-c.off : hi-c.off])
		}
		if s.end > end {
			return // the span goes on in the next chunk
		}
		if s.mark {
			w.marked = w.h.Sum(nil) // Sum leaves the running state untouched
		}
		w.next++
	}
}

// finish completes the spans left over (empty ones at the very end of the file) and sums.
func (w *hasher) finish() {
	for ; w.next < len(w.spans); w.next++ {
		if w.spans[w.next].mark {
			w.marked = w.h.Sum(nil)
		}
	}
	w.sum = w.h.Sum(nil)
}

// measure reads the file once, in order, and hashes each byte once per PCR hash chain it
// belongs to, on two goroutines. A second goroutine hashes kernel, cmdline and all ramdisks (PCR0),
// taking PCR1's digest where the first ramdisk ends: SHA-384 of a prefix is the state of
// the longer hash at that point, so the bootstrap bytes need no second hashing. The calling
// goroutine reads, checks that the header and section headers are still the bytes walk
// validated, updates the CRC, copies the metadata and signature sections and hashes the
// application ramdisks (PCR2): both goroutines then do about one SHA-384 pass each.
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

	bufSize := min(int64(chunkSize), size)
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
	image := &hasher{spans: all, h: sha512.New384()}
	application := &hasher{spans: app, h: sha512.New384()}
	// Each buffer is in the channel at most once: sends never block.
	toImage := make(chan *chunk, nbuf)
	imageDone := make(chan struct{})
	go func() {
		defer close(imageDone)
		for c := range toImage {
			image.feed(c)
			release(c)
		}
		image.finish()
	}()
	stop := func() {
		close(toImage)
		<-imageDone
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
		c := &chunk{off: off, buf: buf}
		c.refs.Store(2)
		toImage <- c
		end := off + n
		// Bytes validated before the pass must read the same now.
		for ; fi < len(fixed) && fixed[fi].off < end; fi++ {
			if !fixed[fi].matches(off, buf) {
				release(c)
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
		application.feed(c)
		release(c)
		off = end
	}
	stop()
	application.finish()
	// The size came from the caller (a stat): a file that grew since is not what was measured.
	var probe [1]byte
	if n, _ := r.ReadAt(probe[:], size); n != 0 {
		return nil, errorf(ErrChanged, size, "the file grew")
	}
	res.crc = crc
	res.pcr0, res.pcr1, res.pcr2 = image.sum, image.marked, application.sum
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
