// Package nsm is a typed client for the AWS Nitro Secure Module (/dev/nsm).
//
// It wraps github.com/hf/nsm (request/response types and the ioctl) and closes its gaps:
//
//   - all seven requests as typed methods (DescribeNSM, DescribePCR, ExtendPCR, LockPCR, LockPCRs, Attestation,
//     GetRandom) plus an io.Reader that fills the whole buffer;
//   - the encoded request is checked against the driver's 4096-byte limit before the ioctl (ErrRequestTooLarge);
//   - errors match with errors.Is / errors.As: every NSM error code (ErrorCode, *Error, including InvalidIndex,
//     which hf/nsm lacks), the ioctl errno (*IoctlError, errors.Is(err, syscall.EIO));
//   - responses are validated: the wrong variant, a PCR value of the wrong length, an empty random buffer or a
//     malformed description is ErrInvalidResponse, never a silent zero value;
//   - ExtendPCR never sends CBOR null data (the NSM cannot decode it);
//   - every call takes a context that bounds how long the caller waits. The driver serialises requests and may
//     block for up to two minutes. A Session sends one request at a time; callers queue for the device, and a
//     cancelled caller returns ctx.Err() at once: a request still queued is never sent, one already in flight
//     completes on its own goroutine and then frees the device. A context that can never end (Done() == nil)
//     has nothing to bound, so that request runs on the caller's goroutine, sparing the hand-off between
//     goroutines (tens of microseconds when it wakes an idle CPU);
//   - the device path is configurable (default /dev/nsm), or any Device can be plugged in (the software NSM in
//     package mocknsm offers an in-process one); the file descriptor is closed exactly once, by Close.
//
// Request and response bytes are exactly those of hf/nsm (CBOR of request.Request.Encoded(), decoded into
// response.Response), i.e. the serde_cbor forms the NSM speaks.
package nsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/attestd/attestd/internal/strictcbor"
	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

const (
	// DefaultPath is the NSM device inside an enclave.
	DefaultPath = "/dev/nsm"
	// MaxRequestSize is the largest encoded request the driver accepts (NSM_REQUEST_MAX_SIZE).
	MaxRequestSize = 0x1000
	// MaxResponseSize is the size of the response buffer the driver fills (NSM_RESPONSE_MAX_SIZE).
	MaxResponseSize = 0x3000
)

// Device is what a Session sends requests to. hf/nsm's *nsm.Session satisfies it (the real ioctl); package
// mocknsm offers an in-process one. Send must report a failed ioctl as *hfnsm.ErrorIoctlFailed (or *IoctlError)
// and any other error only when the response could not be decoded.
type Device interface {
	Send(request.Request) (response.Response, error)
	Close() error
}

// Options configures Open.
type Options struct {
	// Path is the device file, DefaultPath if empty. Ignored when Device is set.
	Path string
	// Device, if set, is used instead of opening Path. The Session takes ownership and closes it.
	Device Device
}

// Session is an open NSM. It is safe for concurrent use; requests are sent one at a time.
type Session struct {
	dev  Device
	free chan struct{} // holds a token while no request is in flight; taking it is taking the device
	quit chan struct{} // closed by Close

	closeOnce sync.Once

	// pcrLen is the expected PCR length: the digest's length, 48 (SHA-384) until DescribeNSM says otherwise.
	pcrLen atomic.Int32
}

type result struct {
	res response.Response
	err error
}

// Open opens the NSM device (or adopts opts.Device).
func Open(opts Options) (*Session, error) {
	dev := opts.Device
	if dev == nil {
		path := opts.Path
		if path == "" {
			path = DefaultPath
		}
		// hf/nsm's OpenSession returns a session even when Open fails; only the error matters, and a failed Open
		// leaves no descriptor behind. os.Open sets O_CLOEXEC.
		s, err := hfnsm.OpenSession(hfnsm.Options{
			Open:    func() (hfnsm.FileDescriptor, error) { return os.Open(path) },
			Syscall: syscall.Syscall,
		})
		if err != nil {
			return nil, err
		}
		dev = s
	}
	s := &Session{dev: dev, free: make(chan struct{}, 1), quit: make(chan struct{})}
	s.free <- struct{}{}
	s.pcrLen.Store(48)
	return s, nil
}

// Close stops the session and closes the device. It waits for a request in flight to complete (the driver bounds
// it); calls waiting for the device return ErrClosed. A second Close returns ErrClosed.
func (s *Session) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.free // the device is never handed back: later callers see quit
		err = s.dev.Close()
	})
	return err
}

// acquire takes the device, waiting at most until ctx ends or the session closes.
func (s *Session) acquire(ctx context.Context) error {
	select {
	case <-s.free:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// The token and quit (or ctx) may have been ready together; a closing session or a caller that has given up
	// sends nothing.
	select {
	case <-s.quit:
		s.free <- struct{}{}
		return ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		s.free <- struct{}{}
		return err
	}
	return nil
}

// exchange sends req on the device, which the caller has acquired, and frees the device when the device returns.
// With a context that can end, the exchange runs on its own goroutine so that the caller can give up waiting.
func (s *Session) exchange(ctx context.Context, req request.Request) (response.Response, error) {
	if ctx.Done() == nil {
		defer func() { s.free <- struct{}{} }()
		return s.dev.Send(req)
	}
	done := make(chan result, 1) // buffered: the exchange never blocks on a caller that gave up
	go func() {
		r, err := s.dev.Send(req)
		s.free <- struct{}{}
		done <- result{r, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-ctx.Done():
		return response.Response{}, ctx.Err()
	}
}

// send runs one request, bounded by ctx, and maps transport errors.
func (s *Session) send(ctx context.Context, op string, req request.Request) (response.Response, error) {
	if err := checkSize(op, req); err != nil {
		return response.Response{}, err
	}
	if err := s.acquire(ctx); err != nil {
		return response.Response{}, err
	}
	res, err := s.exchange(ctx, req)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			return response.Response{}, err
		}
		var hfErr *hfnsm.ErrorIoctlFailed
		if errors.As(err, &hfErr) {
			return response.Response{}, &IoctlError{Op: op, Errno: hfErr.Errno}
		}
		var ioErr *IoctlError
		if errors.As(err, &ioErr) {
			return response.Response{}, &IoctlError{Op: op, Errno: ioErr.Errno}
		}
		return response.Response{}, invalid(op, "%v", err)
	}
	if err := checkVariant(op, &res); err != nil {
		return response.Response{}, err
	}
	return res, nil
}

// checkSize rejects a request the driver would refuse for its size.
func checkSize(op string, req request.Request) error {
	if n := encodedSize(req); n > MaxRequestSize {
		return fmt.Errorf("%w: %s request is %d bytes", ErrRequestTooLarge, op, n)
	}
	return nil
}

// encodedSize is the size of req as hf/nsm encodes it (the CBOR of req.Encoded()), worked out from the
// lengths of its fields rather than by encoding it a second time. A unit variant is a text string; any other
// is a one-entry map from its name to the map of its fields; a nil byte string is null.
func encodedSize(req request.Request) int {
	const mapHead = 1 // maps here have at most 3 entries
	variant := func(name string, fields int) int { return mapHead + textSize(name) + mapHead + fields }
	switch r := req.(type) {
	case *request.Attestation:
		return variant("Attestation", textSize("user_data")+bytesSize(r.UserData)+
			textSize("nonce")+bytesSize(r.Nonce)+textSize("public_key")+bytesSize(r.PublicKey))
	case *request.ExtendPCR:
		return variant("ExtendPCR", textSize("index")+strictcbor.HeadSize(uint64(r.Index))+
			textSize("data")+bytesSize(r.Data))
	case *request.DescribePCR:
		return variant("DescribePCR", textSize("index")+strictcbor.HeadSize(uint64(r.Index)))
	case *request.LockPCR:
		return variant("LockPCR", textSize("index")+strictcbor.HeadSize(uint64(r.Index)))
	case *request.LockPCRs:
		return variant("LockPCRs", textSize("range")+strictcbor.HeadSize(uint64(r.Range)))
	case *request.DescribeNSM:
		return textSize("DescribeNSM")
	case *request.GetRandom:
		return textSize("GetRandom")
	}
	panic(fmt.Sprintf("nsm: no size for request %T", req))
}

// textSize and bytesSize are the encoded sizes of a text and a byte string (a nil one is null).
func textSize(s string) int { return strictcbor.HeadSize(uint64(len(s))) + len(s) }

func bytesSize(b []byte) int {
	if b == nil {
		return 1 // null
	}
	return strictcbor.HeadSize(uint64(len(b))) + len(b)
}

// checkVariant turns Error(code) into *Error and rejects any response that is not exactly the variant op expects.
func checkVariant(op string, r *response.Response) error {
	n := 0
	for _, set := range []bool{
		r.DescribePCR != nil, r.ExtendPCR != nil, r.LockPCR != nil, r.LockPCRs != nil,
		r.DescribeNSM != nil, r.Attestation != nil, r.GetRandom != nil, r.Error != "",
	} {
		if set {
			n++
		}
	}
	if n != 1 {
		return invalid(op, "%d variants in the response", n)
	}
	if r.Error != "" {
		code := ErrorCode(r.Error)
		if !code.Known() || code == Success {
			return invalid(op, "error code %q", string(r.Error))
		}
		return &Error{Op: op, Code: code}
	}
	var ok bool
	switch op {
	case opDescribePCR:
		ok = r.DescribePCR != nil
	case opExtendPCR:
		ok = r.ExtendPCR != nil
	case opLockPCR:
		ok = r.LockPCR != nil
	case opLockPCRs:
		ok = r.LockPCRs != nil
	case opDescribeNSM:
		ok = r.DescribeNSM != nil
	case opAttestation:
		ok = r.Attestation != nil
	case opGetRandom:
		ok = r.GetRandom != nil
	}
	if !ok {
		return invalid(op, "wrong response variant")
	}
	return nil
}
