//go:build linux

package fusee2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
	"golang.org/x/sys/unix"

	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/mocknsm/fusedev"
	"github.com/attestd/attestd/mocknsm/fusedev/fusetest"
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
)

func TestMain(m *testing.M) {
	fusetest.RunHelperIfRequested(map[string]fusetest.Factory{
		"mocknsm": func(dir string) (fusedev.Handler, error) { return mocknsm.Open(dir) },
	})
	os.Exit(m.Run())
}

const testModuleID = "i-0123456789abcdef0-enc0123456789abcdef"

var (
	testPCR0 = bytes.Repeat([]byte{0x11}, 48)
	testPCR8 = bytes.Repeat([]byte{0x88}, 48)
	zeroPCR  = make([]byte, 48)
)

// newState initialises a mock NSM state with known boot values and, if
// faults is not empty, a faults.json.
func newState(t testing.TB, faults string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	err := mocknsm.Init(dir, mocknsm.Config{
		ModuleID: testModuleID,
		PCRs:     map[uint16][]byte{0: testPCR0, 8: testPCR8},
	})
	if err != nil {
		t.Fatal(err)
	}
	if faults != "" {
		if err := os.WriteFile(filepath.Join(dir, "faults.json"), []byte(faults), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startDevice serves a fresh mock NSM from a helper process and returns its
// state directory and device path.
func startDevice(t testing.TB, faults string) (dir, path string) {
	t.Helper()
	fusetest.Require(t)
	dir = newState(t, faults)
	return dir, fusetest.Start(t, "mocknsm", dir).Path
}

func extend(old, data []byte) []byte {
	h := sha512.New384()
	h.Write(old)
	h.Write(data)
	return h.Sum(nil)
}

func TestHFNSMSessionThroughDevice(t *testing.T) {
	dir, path := startDevice(t, "")
	sess, err := hfnsm.OpenSession(hfnsm.Options{
		Open:    func() (hfnsm.FileDescriptor, error) { return os.Open(path) },
		Syscall: syscall.Syscall,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	send := func(req request.Request) response.Response {
		t.Helper()
		res, err := sess.Send(req)
		if err != nil {
			t.Fatalf("%T: %v", req, err)
		}
		return res
	}

	d := send(&request.DescribeNSM{}).DescribeNSM
	if d == nil || d.ModuleID != testModuleID || d.MaxPCRs != 32 || d.Digest != response.DigestSHA384 ||
		len(d.LockedPCRs) != 16 || d.LockedPCRs[15] != 15 || d.VersionMajor != 1 {
		t.Fatalf("DescribeNSM = %+v", d)
	}
	if p := send(&request.DescribePCR{Index: 0}).DescribePCR; p == nil || !p.Lock || !bytes.Equal(p.Data, testPCR0) {
		t.Fatalf("DescribePCR(0) = %+v", p)
	}
	if p := send(&request.DescribePCR{Index: 16}).DescribePCR; p == nil || p.Lock || !bytes.Equal(p.Data, zeroPCR) {
		t.Fatalf("DescribePCR(16) = %+v", p)
	}

	want16 := extend(zeroPCR, []byte("e2e"))
	if e := send(&request.ExtendPCR{Index: 16, Data: []byte("e2e")}).ExtendPCR; e == nil || !bytes.Equal(e.Data, want16) {
		t.Fatalf("ExtendPCR(16) = %+v", e)
	}
	if r := send(&request.LockPCR{Index: 16}); r.LockPCR == nil {
		t.Fatalf("LockPCR(16) = %+v", r)
	}
	if r := send(&request.ExtendPCR{Index: 16, Data: []byte("x")}); r.Error != response.ECReadOnlyIndex {
		t.Fatalf("ExtendPCR on a locked PCR = %+v, want ReadOnlyIndex", r)
	}
	if p := send(&request.DescribePCR{Index: 16}).DescribePCR; p == nil || !p.Lock || !bytes.Equal(p.Data, want16) {
		t.Fatalf("DescribePCR(16) after lock = %+v", p)
	}

	buf := make([]byte, 600) // three GetRandom answers
	if n, err := sess.Read(buf); err != nil || n != len(buf) || bytes.Equal(buf[:256], buf[256:512]) {
		t.Fatalf("Read = %d, %v, %x", n, err, buf[:16])
	}

	nonce, userData, pubKey := []byte("nonce-1"), []byte("user data"), []byte("public key")
	a := send(&request.Attestation{Nonce: nonce, UserData: userData, PublicKey: pubKey}).Attestation
	if a == nil {
		t.Fatal("no attestation document")
	}
	p, err := verifyDocument(a.Document, filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ModuleID != testModuleID || !bytes.Equal(p.Nonce, nonce) || !bytes.Equal(p.UserData, userData) ||
		!bytes.Equal(p.PublicKey, pubKey) {
		t.Fatalf("document fields: module %q nonce %q user data %q public key %q", p.ModuleID, p.Nonce, p.UserData, p.PublicKey)
	}
	// Every locked PCR, now 0..16.
	if len(p.PCRs) != 17 || !bytes.Equal(p.PCRs[0], testPCR0) || !bytes.Equal(p.PCRs[8], testPCR8) ||
		!bytes.Equal(p.PCRs[16], want16) {
		t.Fatalf("document PCRs: %d entries, 0=%x 16=%x", len(p.PCRs), p.PCRs[0], p.PCRs[16])
	}

	// hf/nsm sends any size; the device refuses like the driver.
	_, err = sess.Send(&request.ExtendPCR{Index: 17, Data: make([]byte, 5000)})
	var ioctlErr *hfnsm.ErrorIoctlFailed
	if !errors.As(err, &ioctlErr) || ioctlErr.Errno != syscall.EMSGSIZE {
		t.Fatalf("oversized request: %v, want ioctl EMSGSIZE", err)
	}
}

func TestNSMSessionThroughDevice(t *testing.T) {
	dir, path := startDevice(t, "")
	s, err := nsm.Open(nsm.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	d, err := s.DescribeNSM(ctx)
	if err != nil || d.ModuleID != testModuleID || d.MaxPCRs != 32 || d.Digest != "SHA384" || len(d.LockedPCRs) != 16 {
		t.Fatalf("DescribeNSM = %+v, %v", d, err)
	}
	if p, err := s.DescribePCR(ctx, 8); err != nil || !p.Locked || !bytes.Equal(p.Value, testPCR8) {
		t.Fatalf("DescribePCR(8) = %+v, %v", p, err)
	}
	if _, err := s.DescribePCR(ctx, 32); !errors.Is(err, nsm.InvalidIndex) {
		t.Fatalf("DescribePCR(32): %v, want InvalidIndex", err)
	}
	want := extend(extend(zeroPCR, []byte("a")), []byte("b"))
	if _, err := s.ExtendPCR(ctx, 20, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.ExtendPCR(ctx, 20, []byte("b")); err != nil || !bytes.Equal(v, want) {
		t.Fatalf("ExtendPCR(20) = %x, %v", v, err)
	}
	if _, err := s.ExtendPCR(ctx, 3, []byte("a")); !errors.Is(err, nsm.ReadOnlyIndex) {
		t.Fatalf("ExtendPCR(3): %v, want ReadOnlyIndex", err)
	}
	if err := s.LockPCRs(ctx, 33); !errors.Is(err, nsm.InvalidIndex) {
		t.Fatalf("LockPCRs(33): %v, want InvalidIndex", err)
	}
	if err := s.LockPCRs(ctx, 24); err != nil {
		t.Fatal(err)
	}
	if err := s.LockPCR(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if err := s.LockPCR(ctx, 30); !errors.Is(err, nsm.ReadOnlyIndex) {
		t.Fatalf("LockPCR(30) twice: %v, want ReadOnlyIndex", err)
	}
	if d, err := s.DescribeNSM(ctx); err != nil || len(d.LockedPCRs) != 25 {
		t.Fatalf("locked PCRs after LockPCRs(24)+LockPCR(30): %v, %v", d.LockedPCRs, err)
	}
	if r, err := s.GetRandom(ctx); err != nil || len(r) != 256 {
		t.Fatalf("GetRandom = %d bytes, %v", len(r), err)
	}

	nonce := []byte("nonce-2")
	doc, err := s.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce})
	if err != nil {
		t.Fatal(err)
	}
	p, err := verifyDocument(doc, filepath.Join(dir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Nonce, nonce) || p.UserData != nil || p.PublicKey != nil || len(p.PCRs) != 25 ||
		!bytes.Equal(p.PCRs[20], want) {
		t.Fatalf("document: nonce %q user data %x public key %x, %d PCRs", p.Nonce, p.UserData, p.PublicKey, len(p.PCRs))
	}

	// The independent check is not vacuous: another mock's root, or one
	// flipped payload byte, is refused.
	other := newState(t, "")
	if _, err := verifyDocument(doc, filepath.Join(other, "root.pem")); err == nil {
		t.Fatal("document verified against an unrelated root")
	}
	tampered := bytes.Clone(doc)
	i := bytes.Index(tampered, nonce)
	tampered[i] ^= 1
	if _, err := verifyDocument(tampered, filepath.Join(dir, "root.pem")); err == nil {
		t.Fatal("tampered document verified")
	}
}

// message is struct nsm_raw with typed pointers (kept right across stack moves).
type message struct {
	reqAddr  *byte
	reqLen   uint64
	respAddr *byte
	respLen  uint64
}

func rawIoctl(f *os.File, cmd uintptr, req []byte, respCap int) (message, []byte, syscall.Errno) {
	resp := bytes.Repeat([]byte{0xAA}, respCap)
	msg := message{reqAddr: &req[0], reqLen: uint64(len(req)), respAddr: &resp[0], respLen: uint64(len(resp))}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(unsafe.Pointer(&msg)))
	runtime.KeepAlive(req)
	return msg, resp, errno
}

// TestRawIoctlResponseLength: hf/nsm (fxamacker/cbor v2) ignores trailing
// bytes, so only a raw ioctl shows whether the device sets the length.
func TestRawIoctlResponseLength(t *testing.T) {
	_, path := startDevice(t, "")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	getRandom := []byte("\x69GetRandom")
	msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, getRandom, nsm.MaxResponseSize)
	if errno != 0 {
		t.Fatal(errno)
	}
	// a1 69"GetRandom" a1 66"random" 59 0100 <256 bytes>
	if msg.respLen != 278 {
		t.Fatalf("response length %d, want 278 (buffer %d)", msg.respLen, nsm.MaxResponseSize)
	}
	strict, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]map[string][]byte
	if err := strict.Unmarshal(resp[:msg.respLen], &r); err != nil || len(r["GetRandom"]["random"]) != 256 {
		t.Fatalf("response %x: %v", resp[:msg.respLen], err)
	}
	if resp[msg.respLen] != 0xAA {
		t.Fatal("the device wrote past the response length")
	}

	if _, _, errno := rawIoctl(f, 0xC0200A01, getRandom, 64); errno != syscall.ENOTTY {
		t.Fatalf("wrong command: %v, want ENOTTY", errno)
	}
	if _, _, errno := rawIoctl(f, fusedev.IoctlCmd, make([]byte, nsm.MaxRequestSize+1), 64); errno != syscall.EMSGSIZE {
		t.Fatalf("4097-byte request: %v, want EMSGSIZE", errno)
	}
}

func TestFaultsReachCaller(t *testing.T) {
	const faults = `{
		"GetRandom":   {"errno": "ETIMEDOUT"},
		"Attestation": {"error": "InternalError"},
		"DescribeNSM": {"malformed": "truncated"}
	}`
	dir, path := startDevice(t, faults)
	s, err := nsm.Open(nsm.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()

	_, err = s.GetRandom(ctx)
	var ioctlErr *nsm.IoctlError
	if !errors.Is(err, syscall.ETIMEDOUT) || !errors.As(err, &ioctlErr) {
		t.Fatalf("GetRandom with an errno fault: %v, want ioctl ETIMEDOUT", err)
	}
	if _, err := s.Attestation(ctx, nsm.AttestationRequest{}); !errors.Is(err, nsm.InternalError) {
		t.Fatalf("Attestation with an error fault: %v, want InternalError", err)
	}
	if _, err := s.DescribeNSM(ctx); !errors.Is(err, nsm.ErrInvalidResponse) {
		t.Fatalf("DescribeNSM with a truncated response: %v, want ErrInvalidResponse", err)
	}

	// The raw length of the truncated answer is half the real one.
	n, err := mocknsm.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	describe := []byte("\x6bDescribeNSM")
	full, errno := n.Process(describe)
	if errno != 0 {
		t.Fatal(errno)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, resp, errno := rawIoctl(f, fusedev.IoctlCmd, describe, nsm.MaxResponseSize)
	if errno != 0 || msg.respLen != uint64(len(full)/2) || !bytes.Equal(resp[:msg.respLen], full[:len(full)/2]) {
		t.Fatalf("truncated DescribeNSM: %v, length %d, want %d", errno, msg.respLen, len(full)/2)
	}
}
