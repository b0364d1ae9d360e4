package eif

import (
	"bytes"
	"crypto/sha512"
	"hash"
	"hash/crc32"
	"io"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Streaming parameters. A regular file is mapped read-only (no copy out of the page cache);
// any other io.ReaderAt is read in chunkSize pieces through at most numBuffers buffers, so
// memory stays at numBuffers*chunkSize whatever the file's size. pipelineDepth bounds how
// many chunks the reader may be ahead of the slower hasher.
const (
	chunkSize     = 1 << 20
	numBuffers    = 8
	pipelineDepth = numBuffers
)

// span is a byte range of the file that one hasher consumes; mark asks for the digest
// of everything hashed so far once the span is complete.
type span struct {
	start, end int64
	mark       bool
}

// chunk is a piece of file data on its way through the hashers.
type chunk struct {
	off  int64
	buf  []byte
	refs atomic.Int32
}

// measured is what one pass over the file yields: inner digests (before the PCR extend),
// the CRC, the two small sections and what the kernel section says about itself.
type measured struct {
	pcr0, pcr1, pcr2    []byte
	crc                 uint32
	metadata, signature []byte
	kernel              Kernel
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

// source yields the file in chunks, in order.
type source interface {
	// next returns the n bytes at off.
	next(off, n int64) ([]byte, error)
	// release gives back a buffer next returned, once every consumer is done with it.
	release(buf []byte)
	// mapped returns the mapping, if any, to tell its page faults from bugs.
	mapped() []byte
	close()
}

// readSource reads into a fixed pool of buffers.
type readSource struct {
	r    io.ReaderAt
	pool chan []byte
}

func newReadSource(r io.ReaderAt, size int64) *readSource {
	bufSize := min(int64(chunkSize), size)
	n := int(min(int64(numBuffers), (size+bufSize-1)/bufSize))
	s := &readSource{r: r, pool: make(chan []byte, n)}
	for range n {
		s.pool <- make([]byte, bufSize)
	}
	return s
}

func (s *readSource) next(off, n int64) ([]byte, error) {
	buf := (<-s.pool)[:n]
	if err := readFull(s.r, buf, off); err != nil {
		s.pool <- buf
		return nil, err
	}
	return buf, nil
}

func (s *readSource) release(buf []byte) { s.pool <- buf[:cap(buf)] }
func (s *readSource) mapped() []byte     { return nil }
func (s *readSource) close()             {}

// faultError turns a recovered panic into ErrChanged if it is a page fault inside the
// mapping (the file was truncated while mapped: SIGBUS), and re-panics otherwise.
func faultError(p any, mapping []byte) error {
	if f, ok := p.(interface{ Addr() uintptr }); ok && len(mapping) > 0 {
		start := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
		if a := f.Addr(); a >= start && a < start+uintptr(len(mapping)) {
			return errorf(ErrChanged, int64(a-start), "the file shrank while it was mapped")
		}
	}
	panic(p)
}

// consumer runs a hasher on its own goroutine.
type consumer struct {
	in  chan *chunk
	h   *hasher
	err error // a fault while reading mapped data
}

func (c *consumer) run(src source, release func(*chunk), done *sync.WaitGroup) {
	defer done.Done()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for ch := range c.in {
		if c.err == nil {
			c.err = c.feed(src, ch)
		}
		release(ch)
	}
	if c.err == nil {
		c.h.finish()
	}
}

func (c *consumer) feed(src source, ch *chunk) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = faultError(p, src.mapped())
		}
	}()
	c.h.feed(ch)
	return nil
}

// measure reads the file once, in order, and hashes each byte once per PCR hash chain it
// belongs to. Three goroutines share the work, so that on two cores each does about one
// SHA-384 pass: one hashes kernel, cmdline and all ramdisks (PCR0), taking PCR1's digest
// where the first ramdisk ends (SHA-384 of a prefix is the state of the longer hash at that
// point, so the bootstrap bytes need no second hashing); one hashes the application
// ramdisks (PCR2); the calling goroutine reads, checks that the header and section headers
// are still the bytes walk validated, computes the CRC, copies the metadata and signature
// sections and feeds the kernel section to a kernelReader.
func measure(r io.ReaderAt, size int64, header *[HeaderSize]byte, sections []Section, rawHeaders [][SectionHeaderSize]byte) (res *measured, err error) {
	var all, app []span
	fixed := []fixedRange{{0, header[:]}} // bytes already read and validated, which must not change
	res = &measured{}
	var metaAt, sigAt int64
	var kernel kernelReader
	kernelAt, kernelEnd := sections[0].DataOffset(), sections[0].DataOffset()+sections[0].Size // checkLayout: first
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

	src := openSource(r, size)
	defer src.close()
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			src.release(c.buf)
		}
	}
	consumers := []*consumer{
		{in: make(chan *chunk, pipelineDepth), h: &hasher{spans: all, h: sha512.New384()}},
		{in: make(chan *chunk, pipelineDepth), h: &hasher{spans: app, h: sha512.New384()}},
	}
	var done sync.WaitGroup
	for _, c := range consumers {
		done.Add(1)
		go c.run(src, release, &done)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			for _, c := range consumers {
				close(c.in)
			}
			done.Wait()
		}
	}
	defer stop() // on every path: the mapping must outlive its readers
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, faultError(p, src.mapped())
		}
	}()

	crc := uint32(0)
	fi := 0
	for off := int64(0); off < size; {
		n := min(int64(chunkSize), size-off)
		buf, err := src.next(off, n)
		if err != nil {
			if e, ok := err.(*Error); ok && e.Kind == ErrTruncated {
				return nil, errorf(ErrChanged, e.Offset, "the file shrank")
			}
			return nil, err
		}
		c := &chunk{off: off, buf: buf}
		c.refs.Store(int32(len(consumers)))
		for _, con := range consumers {
			con.in <- c
		}
		end := off + n
		// Bytes validated before the pass must read the same now.
		for ; fi < len(fixed) && fixed[fi].off < end; fi++ {
			if !fixed[fi].matches(off, buf) {
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
		if lo, hi := max(kernelAt, off), min(kernelEnd, end); lo < hi {
			kernel.Write(buf[lo-off : hi-off])
		}
		off = end
	}
	stop()
	for _, c := range consumers {
		if c.err != nil {
			return nil, c.err
		}
	}
	// The size came from the caller (a stat): a file that grew since is not what was measured.
	var probe [1]byte
	if n, _ := r.ReadAt(probe[:], size); n != 0 {
		return nil, errorf(ErrChanged, size, "the file grew")
	}
	res.crc = crc
	res.kernel = kernel.result()
	image, application := consumers[0].h, consumers[1].h
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
