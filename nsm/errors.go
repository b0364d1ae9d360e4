package nsm

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrorCode is an error code of the NSM, as carried by its Error(code) response. It implements error, so a code
// can be matched with errors.Is on any error this package returns:
//
//	if errors.Is(err, nsm.ReadOnlyIndex) { ... }
type ErrorCode string

// The NSM error codes (nsm-api ErrorCode, in declaration order).
const (
	Success          ErrorCode = "Success"
	InvalidArgument  ErrorCode = "InvalidArgument"
	InvalidIndex     ErrorCode = "InvalidIndex"
	InvalidResponse  ErrorCode = "InvalidResponse"
	ReadOnlyIndex    ErrorCode = "ReadOnlyIndex"
	InvalidOperation ErrorCode = "InvalidOperation"
	BufferTooSmall   ErrorCode = "BufferTooSmall"
	InputTooLarge    ErrorCode = "InputTooLarge"
	InternalError    ErrorCode = "InternalError"
)

// Error returns the code's name, e.g. "InvalidIndex".
func (c ErrorCode) Error() string { return string(c) }

// Known reports whether c is one of the nine codes the NSM defines.
func (c ErrorCode) Known() bool {
	switch c {
	case Success, InvalidArgument, InvalidIndex, InvalidResponse, ReadOnlyIndex,
		InvalidOperation, BufferTooSmall, InputTooLarge, InternalError:
		return true
	}
	return false
}

// Error is returned when the NSM answered a request with Error(Code). errors.Is(err, code) matches it.
type Error struct {
	Op   string    // the request, e.g. "ExtendPCR"
	Code ErrorCode // never Success
}

// Error formats the error as "nsm: <Op>: <Code>".
func (e *Error) Error() string { return "nsm: " + e.Op + ": " + string(e.Code) }

// Unwrap returns the code, so that errors.Is(err, nsm.InvalidIndex) works.
func (e *Error) Unwrap() error { return e.Code }

// IoctlError is returned when the ioctl itself failed (the kernel driver or the device returned an errno, so the
// NSM gave no answer). errors.Is(err, syscall.EIO) matches its Errno; EMSGSIZE, the driver's answer to an oversized
// request, also matches InputTooLarge (nsm-api maps it the same way).
type IoctlError struct {
	Op    string // the request, e.g. "Attestation"
	Errno syscall.Errno
}

// Error formats the error as "nsm: <Op>: ioctl: <errno text>".
func (e *IoctlError) Error() string { return "nsm: " + e.Op + ": ioctl: " + e.Errno.Error() }

// Unwrap returns the errno.
func (e *IoctlError) Unwrap() error { return e.Errno }

// Is makes EMSGSIZE match InputTooLarge.
func (e *IoctlError) Is(target error) bool {
	return e.Errno == syscall.EMSGSIZE && target == InputTooLarge
}

// ErrRequestTooLarge is returned, before any ioctl, when the encoded request exceeds MaxRequestSize bytes.
// errors.Is(err, InputTooLarge) also matches it.
var ErrRequestTooLarge error = requestTooLarge{}

type requestTooLarge struct{}

func (requestTooLarge) Error() string {
	return fmt.Sprintf("nsm: encoded request exceeds %d bytes", MaxRequestSize)
}

func (requestTooLarge) Is(target error) bool { return target == InputTooLarge }

var (
	// ErrInvalidResponse is returned when the device's answer is not a valid response to the request: undecodable
	// CBOR, the wrong variant, a PCR value of the wrong length, an empty random buffer, a malformed description,
	// an unknown error code.
	ErrInvalidResponse = errors.New("nsm: invalid response")

	// ErrClosed is returned by calls on a closed Session.
	ErrClosed = errors.New("nsm: session closed")
)

// invalid wraps ErrInvalidResponse with the operation and a reason.
func invalid(op string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidResponse, op, fmt.Sprintf(format, args...))
}
