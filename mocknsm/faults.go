package mocknsm

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/attestd/attestd/nsm"
)

// Faults maps a request type (DescribeNSM, DescribePCR, ExtendPCR, LockPCR, LockPCRs, Attestation, GetRandom) to
// the fault injected into every request of that type. Requests that cannot be decoded get no fault.
//
// In dir/faults.json (read by Open) it is a JSON object, e.g.
//
//	{"Attestation": {"latency": "1.5s", "error": "InternalError"}, "GetRandom": {"errno": "EIO"}}
type Faults map[string]Fault

// Fault is what happens to a request. Latency delays it and combines with at most one of the others:
//
//   - Errno: the ioctl fails with this errno (the request is not executed);
//   - Error: the NSM answers Error(code) (the request is not executed);
//   - Malformed: the request is executed and its response corrupted.
type Fault struct {
	Latency   time.Duration
	Errno     syscall.Errno // EINVAL, EFAULT, EMSGSIZE, ETIMEDOUT, EIO, ENODATA or ENOMEM (what the driver returns)
	Error     nsm.ErrorCode
	Malformed Malformation
}

// Malformation is a way of corrupting a response.
type Malformation string

const (
	// Garbage replaces the response with 32 bytes that are not CBOR (0xff then random bytes).
	Garbage Malformation = "garbage"
	// Truncated cuts the response to half its length (never a complete CBOR item).
	Truncated Malformation = "truncated"
	// WrongVariant answers a well-formed response of another type: GetRandom gets a DescribeNSM answer, every
	// other request a GetRandom answer.
	WrongVariant Malformation = "wrong-variant"
)

// errnos are the errnos a Fault may inject, by name: those the NSM driver returns.
var errnos = map[string]syscall.Errno{
	"EINVAL":    syscall.EINVAL,
	"EFAULT":    syscall.EFAULT,
	"EMSGSIZE":  syscall.EMSGSIZE,
	"ETIMEDOUT": syscall.ETIMEDOUT,
	"EIO":       syscall.EIO,
	"ENODATA":   syscall.ENODATA,
	"ENOMEM":    syscall.ENOMEM,
}

func errnoName(e syscall.Errno) (string, bool) {
	for name, v := range errnos {
		if v == e {
			return name, true
		}
	}
	return "", false
}

// Validate checks the request types and that every fault is well-formed.
func (f Faults) Validate() error {
	for op, fault := range f {
		if _, ok := variantFields[op]; !ok && op != DescribeNSM && op != GetRandom {
			return fmt.Errorf("mocknsm: faults: unknown request type %q", op)
		}
		if err := fault.validate(); err != nil {
			return fmt.Errorf("mocknsm: faults: %s: %w", op, err)
		}
	}
	return nil
}

func (f Fault) validate() error {
	n := 0
	if f.Errno != 0 {
		n++
		if _, ok := errnoName(f.Errno); !ok {
			return fmt.Errorf("errno %d is not one the driver returns", int(f.Errno))
		}
	}
	if f.Error != "" {
		n++
		if !f.Error.Known() {
			return fmt.Errorf("unknown error code %q", string(f.Error))
		}
	}
	if f.Malformed != "" {
		n++
		switch f.Malformed {
		case Garbage, Truncated, WrongVariant:
		default:
			return fmt.Errorf("unknown malformation %q", string(f.Malformed))
		}
	}
	if n > 1 {
		return errors.New("at most one of errno, error and malformed")
	}
	if f.Latency < 0 {
		return errors.New("negative latency")
	}
	return nil
}

type faultJSON struct {
	Latency   string        `json:"latency,omitempty"`
	Errno     string        `json:"errno,omitempty"`
	Error     nsm.ErrorCode `json:"error,omitempty"`
	Malformed Malformation  `json:"malformed,omitempty"`
}

// MarshalJSON writes latency as a Go duration ("250ms") and errno by name ("EIO").
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Error: f.Error, Malformed: f.Malformed}
	if f.Latency != 0 {
		j.Latency = f.Latency.String()
	}
	if f.Errno != 0 {
		name, ok := errnoName(f.Errno)
		if !ok {
			return nil, fmt.Errorf("mocknsm: errno %d has no name", int(f.Errno))
		}
		j.Errno = name
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the form MarshalJSON writes; unknown fields are errors.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var j faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*f = Fault{Error: j.Error, Malformed: j.Malformed}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return err
		}
		f.Latency = d
	}
	if j.Errno != "" {
		e, ok := errnos[j.Errno]
		if !ok {
			return fmt.Errorf("unknown errno %q", j.Errno)
		}
		f.Errno = e
	}
	return nil
}

const faultsName = "faults.json"

// loadFaults reads dir/faults.json; a missing file is no faults.
func loadFaults(dir string) (Faults, error) {
	path := filepath.Join(dir, faultsName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f Faults
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("mocknsm: %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("mocknsm: %s: trailing data", path)
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return f, nil
}

// corrupt applies a malformation to the response of a request of type op.
func (n *NSM) corrupt(m Malformation, op string, resp []byte) []byte {
	switch m {
	case Garbage:
		b := make([]byte, 32)
		rand.Read(b)
		b[0] = 0xff // a "break" with no indefinite item open: never valid CBOR
		return b
	case Truncated:
		return resp[:len(resp)/2]
	case WrongVariant:
		if op == GetRandom {
			return n.describeNSM()
		}
		return n.getRandom()
	}
	return resp
}
