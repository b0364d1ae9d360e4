package vsockrpc

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Error codes carried in error responses. They are stable strings: clients match on them.
const (
	CodeBadRequest         = "bad_request"         // malformed frame, request or params
	CodeUnknownMethod      = "unknown_method"      // no such method in this API
	CodeUnsupportedVersion = "unsupported_version" // the request's "v" is not Version
	CodeFrameTooLarge      = "frame_too_large"     // a frame's length exceeds the limit
	CodeNonceRequired      = "nonce_required"      // the agent requires a nonce and none was sent
	CodeNonceTooLarge      = "nonce_too_large"     // the nonce exceeds the limit
	CodeForbiddenField     = "forbidden_field"     // the caller tried to set a field it may not set
	CodeUnknownKey         = "unknown_key"         // no key of that name
	CodeNSMError           = "nsm_error"           // the NSM failed; NSMCode says how
	CodeUnavailable        = "unavailable"         // the agent cannot serve the request now (timeout, not ready)
	CodeBusy               = "busy"                // too many connections or requests in flight
	CodeInternal           = "internal"            // a bug in the agent; details are in its log
	CodeShuttingDown       = "shutting_down"       // the server is draining and takes no new requests
	CodeOpenFailed         = "open_failed"         // a ciphertext could not be opened (one code, one message: no oracle)
)

// OpenFailedMessage is the one message of every CodeOpenFailed error, whatever the cause: a
// decryption failure that says why (padding, tag, size, binding) is an oracle.
const OpenFailedMessage = "the ciphertext could not be opened"

// ErrOpenFailed is the error a service returns for every failure to open a ciphertext.
var ErrOpenFailed = &Error{Code: CodeOpenFailed, Message: OpenFailedMessage}

// maxMessageLen bounds the message of an error response so a service cannot blow the response limit.
const maxMessageLen = 1024

// Error is a protocol error: the error a server puts in a response and the error a Client returns
// for it. Services return *Error for every failure the caller should see; any other error becomes
// CodeInternal with a generic message.
type Error struct {
	// Code is one of the Code* constants.
	Code string `cbor:"code"`
	// Message is a human-readable explanation; never parse it.
	Message string `cbor:"message"`
	// NSMCode is the NSM error code (for example "InvalidIndex") when Code is CodeNSMError.
	NSMCode string `cbor:"nsm_code,omitempty"`
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (e *Error) Error() string {
	msg := "vsockrpc: " + e.Code
	if e.NSMCode != "" {
		msg += " (" + e.NSMCode + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &vsockrpc.Error{Code: vsockrpc.CodeBusy}) works. A target with a Message or
// NSMCode must match those too.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) || t == nil {
		return false
	}
	return t.Code == e.Code &&
		(t.Message == "" || t.Message == e.Message) &&
		(t.NSMCode == "" || t.NSMCode == e.NSMCode)
}

// valid reports whether e can be sent as is: a known-shaped code and bounded, valid UTF-8 text.
func (e *Error) valid() bool {
	return e.Code != "" && len(e.Code) <= 64 && utf8.ValidString(e.Code) &&
		len(e.NSMCode) <= 64 && utf8.ValidString(e.NSMCode)
}

// truncate shortens s to at most n bytes without splitting a UTF-8 sequence and replaces invalid UTF-8.
func truncate(s string, n int) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // invalid bytes become U+FFFD
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
