//go:build linux

package fusedev_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"golang.org/x/sys/unix"

	"github.com/attestd/attestd/mocknsm/fusedev"
	"github.com/attestd/attestd/mocknsm/fusedev/fusetest"
)

func TestMain(m *testing.M) {
	fusetest.RunHelperIfRequested(map[string]fusetest.Factory{
		"test": func(string) (fusedev.Handler, error) { return testHandler{}, nil },
	})
	os.Exit(m.Run())
}

// testHandler answers GetRandom{random: <the request bytes>} so that a client
// can see exactly what the device read from its memory. Requests starting with
// a command word drive the error paths instead:
//
//	errno=N   fail with errno N
//	size=N    answer N bytes (0x00, 0x01, ...), not CBOR
//	sleep=D   sleep for duration D, then echo
type testHandler struct{}

func (testHandler) Process(req []byte) ([]byte, syscall.Errno) {
	s := string(req)
	switch {
	case strings.HasPrefix(s, "errno="):
		n, _ := strconv.Atoi(s[len("errno="):])
		return nil, syscall.Errno(n)
	case strings.HasPrefix(s, "size="):
		n, _ := strconv.Atoi(s[len("size="):])
		return pattern(n), 0
	case strings.HasPrefix(s, "sleep="):
		d, _ := time.ParseDuration(s[len("sleep="):])
		time.Sleep(d)
	}
	return echo(req), 0
}

func echo(req []byte) []byte {
	b, err := cbor.Marshal(map[string]map[string][]byte{"GetRandom": {"random": req}})
	if err != nil {
		panic(err)
	}
	return b
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// message is struct nsm_raw with typed pointers, so the runtime keeps the
// addresses right if a stack moves before the syscall.
type message struct {
	reqAddr  *byte
	reqLen   uint64
	respAddr *byte
	respLen  uint64
}

func openDevice(t *testing.T) (*fusetest.Helper, *os.File) {
	t.Helper()
	h := fusetest.Start(t, "test", "")
	f, err := os.Open(h.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return h, f
}

// rawIoctl sends req with a response buffer of respCap bytes (pre-filled with
// 0xAA) and returns the message as the kernel copied it back and the buffer.
func rawIoctl(f *os.File, cmd uintptr, req []byte, respCap int) (message, []byte, syscall.Errno) {
	resp := bytes.Repeat([]byte{0xAA}, respCap)
	msg := message{reqLen: uint64(len(req)), respLen: uint64(len(resp))}
	if len(req) > 0 {
		msg.reqAddr = &req[0]
	}
	if len(resp) > 0 {
		msg.respAddr = &resp[0]
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(unsafe.Pointer(&msg)))
	runtime.KeepAlive(req)
	return msg, resp, errno
}

func TestRawIoctlSetsResponseLength(t *testing.T) {
	_, f := openDevice(t)
	req := []byte("\x69GetRandom")
	want := echo(req)
	msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, req, fusedev.MaxResponseSize)
	if errno != 0 {
		t.Fatalf("ioctl: %v", errno)
	}
	if msg.respLen != uint64(len(want)) {
		t.Fatalf("response length %d, want %d (the buffer was %d)", msg.respLen, len(want), fusedev.MaxResponseSize)
	}
	if !bytes.Equal(resp[:msg.respLen], want) {
		t.Fatalf("response %x, want %x", resp[:msg.respLen], want)
	}
	if rest := resp[msg.respLen:]; !bytes.Equal(rest, bytes.Repeat([]byte{0xAA}, len(rest))) {
		t.Fatal("the device wrote past the response length")
	}
	if msg.reqAddr != &req[0] || msg.reqLen != uint64(len(req)) || msg.respAddr != &resp[0] {
		t.Fatalf("request iovec or response address changed: %+v", msg)
	}
}

func TestHFNSMSession(t *testing.T) {
	h, _ := openDevice(t)
	sess, err := hfnsm.OpenSession(hfnsm.Options{
		Open:    func() (hfnsm.FileDescriptor, error) { return os.Open(h.Path) },
		Syscall: syscall.Syscall,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	// The echo handler returns the encoded request as the random bytes.
	res, err := sess.Send(&request.DescribePCR{Index: 7})
	if err != nil {
		t.Fatal(err)
	}
	wantReq, _ := cbor.Marshal(map[string]*request.DescribePCR{"DescribePCR": {Index: 7}})
	if res.GetRandom == nil || !bytes.Equal(res.GetRandom.Random, wantReq) {
		t.Fatalf("device saw request %+v, want %x", res.GetRandom, wantReq)
	}

	// Read loops over GetRandom until the buffer is full.
	buf := make([]byte, 1000)
	if n, err := sess.Read(buf); err != nil || n != len(buf) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	unit := []byte("\x69GetRandom")
	if !bytes.Equal(buf[:len(unit)], unit) || !bytes.Equal(buf[990:], bytes.Repeat(unit, 100)[990:1000]) {
		t.Fatalf("Read returned %x...", buf[:20])
	}
}

func TestWrongCommandIsENOTTY(t *testing.T) {
	_, f := openDevice(t)
	req := []byte("\x69GetRandom")
	for _, cmd := range []uintptr{
		0xC0200A01, // nr 1
		0xC0200B00, // other magic
		0x80200A00, // _IOR
		0x40200A00, // _IOW
	} {
		if _, _, errno := rawIoctl(f, cmd, req, 64); errno != syscall.ENOTTY {
			t.Errorf("cmd %#x: errno %v, want ENOTTY", cmd, errno)
		}
	}
	// Same number, 16-byte struct (a 32-bit caller's layout).
	var small [16]byte
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), 0xC0100A00, uintptr(unsafe.Pointer(&small))); errno != syscall.ENOTTY {
		t.Errorf("16-byte message: errno %v, want ENOTTY", errno)
	}
}

func TestRequestSizeLimit(t *testing.T) {
	_, f := openDevice(t)
	max := bytes.Repeat([]byte{'x'}, fusedev.MaxRequestSize)
	msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, max, fusedev.MaxResponseSize)
	if errno != 0 {
		t.Fatalf("4096-byte request: %v", errno)
	}
	if !bytes.Equal(resp[:msg.respLen], echo(max)) {
		t.Fatal("4096-byte request not echoed intact")
	}
	over := bytes.Repeat([]byte{'x'}, fusedev.MaxRequestSize+1)
	if _, _, errno := rawIoctl(f, fusedev.IoctlCmd, over, fusedev.MaxResponseSize); errno != syscall.EMSGSIZE {
		t.Fatalf("4097-byte request: errno %v, want EMSGSIZE", errno)
	}
}

func TestResponseTruncatedToCallerBuffer(t *testing.T) {
	_, f := openDevice(t)
	msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, []byte("size=300"), 100)
	if errno != 0 {
		t.Fatal(errno)
	}
	if msg.respLen != 100 || !bytes.Equal(resp, pattern(100)) {
		t.Fatalf("got length %d, %x", msg.respLen, resp)
	}
	// A response above the device maximum is a handler bug: EIO.
	if _, _, errno := rawIoctl(f, fusedev.IoctlCmd, []byte(fmt.Sprintf("size=%d", fusedev.MaxResponseSize+1)), fusedev.MaxResponseSize+1); errno != syscall.EIO {
		t.Fatalf("oversized handler response: errno %v, want EIO", errno)
	}
	// The maximum itself passes.
	msg, resp, errno = rawIoctl(f, fusedev.IoctlCmd, []byte(fmt.Sprintf("size=%d", fusedev.MaxResponseSize)), fusedev.MaxResponseSize)
	if errno != 0 || msg.respLen != fusedev.MaxResponseSize || !bytes.Equal(resp, pattern(fusedev.MaxResponseSize)) {
		t.Fatalf("12288-byte response: %v, length %d", errno, msg.respLen)
	}
}

func TestHandlerErrnoReachesCaller(t *testing.T) {
	_, f := openDevice(t)
	for _, want := range []syscall.Errno{syscall.EIO, syscall.ETIMEDOUT, syscall.EMSGSIZE, syscall.ENODATA} {
		req := []byte(fmt.Sprintf("errno=%d", int(want)))
		msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, req, 64)
		if errno != want {
			t.Errorf("errno %v, want %v", errno, want)
		}
		if msg.respLen != 64 || resp[0] != 0xAA {
			t.Errorf("%v: the message or buffer was modified on failure", want)
		}
	}
}

func TestBadPointersAreEFAULT(t *testing.T) {
	_, f := openDevice(t)
	req := []byte("\x69GetRandom")
	resp := make([]byte, 64)
	const unmapped = 0x1000 // the zero page is never mapped
	type rawMessage struct{ reqAddr, reqLen, respAddr, respLen uintptr }
	cases := map[string]rawMessage{
		"request":  {unmapped, 10, uintptr(unsafe.Pointer(&resp[0])), 64},
		"response": {uintptr(unsafe.Pointer(&req[0])), uintptr(len(req)), unmapped, 64},
	}
	for name, m := range cases {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fusedev.IoctlCmd, uintptr(unsafe.Pointer(&m)))
		if errno != syscall.EFAULT {
			t.Errorf("bad %s address: errno %v, want EFAULT", name, errno)
		}
	}
	runtime.KeepAlive(req)
	runtime.KeepAlive(resp)
	// The message pointer itself: the kernel refuses before the device sees it.
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fusedev.IoctlCmd, unmapped); errno != syscall.EFAULT {
		t.Errorf("bad message address: errno %v, want EFAULT", errno)
	}
}

// TestManyCallerThreads: the FUSE header carries the calling thread's id, not
// the process id; every thread's buffers must be reached.
func TestManyCallerThreads(t *testing.T) {
	_, f := openDevice(t)
	const threads, calls = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, threads)
	for i := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread() // an exiting locked thread would fire helpers' Pdeathsig
			for j := range calls {
				req := []byte(fmt.Sprintf("thread %d call %d", i, j))
				msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, req, 256)
				if errno != 0 {
					errs <- fmt.Errorf("thread %d: %v", i, errno)
					return
				}
				if !bytes.Equal(resp[:msg.respLen], echo(req)) {
					errs <- fmt.Errorf("thread %d: wrong response %q", i, resp[:msg.respLen])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestKilledServerAbortsInFlightIoctl: killing the helper ends a blocked
// ioctl with an error instead of hanging the client.
func TestKilledServerAbortsInFlightIoctl(t *testing.T) {
	h, f := openDevice(t)
	done := make(chan syscall.Errno, 1)
	go func() {
		_, _, errno := rawIoctl(f, fusedev.IoctlCmd, []byte("sleep=1h"), 64)
		done <- errno
	}()
	// Wait until the request is in the handler; the helper answers nothing
	// else meanwhile, so there is nothing to observe but time.
	time.Sleep(200 * time.Millisecond)
	if err := h.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case errno := <-done:
		if errno != syscall.ECONNABORTED && errno != syscall.ENOTCONN {
			t.Fatalf("in-flight ioctl after the server died: errno %v, want ECONNABORTED or ENOTCONN", errno)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight ioctl still blocked 30s after the server was killed")
	}
	if _, _, errno := rawIoctl(f, fusedev.IoctlCmd, []byte("x"), 64); errno != syscall.ENOTCONN && errno != syscall.ECONNABORTED {
		t.Fatalf("ioctl after the server died: errno %v", errno)
	}
}

func TestMountRejectsBadMountPoint(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fusedev.Mount(file, testHandler{}, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Mount on a file: %v", err)
	}
	if _, err := fusedev.Mount(t.TempDir()+"/missing", testHandler{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Mount on a missing directory: %v", err)
	}
	if _, err := fusedev.Mount(t.TempDir(), nil, nil); err == nil {
		t.Fatal("Mount with a nil handler succeeded")
	}
}
