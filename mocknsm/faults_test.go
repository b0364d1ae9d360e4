package mocknsm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

// requestsByType holds one valid request of every type.
var requestsByType = map[string]request.Request{
	DescribeNSM: &request.DescribeNSM{},
	DescribePCR: &request.DescribePCR{Index: 16},
	ExtendPCR:   &request.ExtendPCR{Index: 16, Data: []byte("x")},
	LockPCR:     &request.LockPCR{Index: 20},
	LockPCRs:    &request.LockPCRs{Range: 16},
	Attestation: &request.Attestation{Nonce: []byte("n")},
	GetRandom:   &request.GetRandom{},
}

// call sends one request of type op through an nsm.Session on n's in-process device.
func call(ctx context.Context, s *nsm.Session, op string) error {
	var err error
	switch op {
	case DescribeNSM:
		_, err = s.DescribeNSM(ctx)
	case DescribePCR:
		_, err = s.DescribePCR(ctx, 16)
	case ExtendPCR:
		_, err = s.ExtendPCR(ctx, 16, []byte("x"))
	case LockPCR:
		err = s.LockPCR(ctx, 20)
	case LockPCRs:
		err = s.LockPCRs(ctx, 16)
	case Attestation:
		_, err = s.Attestation(ctx, nsm.AttestationRequest{Nonce: []byte("n")})
	case GetRandom:
		_, err = s.GetRandom(ctx)
	}
	return err
}

func openSession(t testing.TB, n *NSM) *nsm.Session {
	t.Helper()
	s, err := nsm.Open(nsm.Options{Device: n.Device()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestFaultsPerType injects every kind of fault into every request type, checking the raw Process result and
// what an nsm.Session reports.
func TestFaultsPerType(t *testing.T) {
	ctx := context.Background()
	for op, req := range requestsByType {
		t.Run(op, func(t *testing.T) {
			n, _ := newTestNSMShared(t)
			s := openSession(t, n)
			if err := call(ctx, s, op); err != nil {
				t.Fatalf("no fault: %v", err)
			}
			for _, errno := range []syscall.Errno{syscall.EIO, syscall.ETIMEDOUT, syscall.EMSGSIZE} {
				if err := n.SetFaults(Faults{op: {Errno: errno}}); err != nil {
					t.Fatal(err)
				}
				if resp, got := n.Process(enc(t, req)); got != errno || resp != nil {
					t.Fatalf("Process: %x, %v; want %v", resp, got, errno)
				}
				err := call(ctx, s, op)
				var ioErr *nsm.IoctlError
				if !errors.As(err, &ioErr) || !errors.Is(err, errno) || ioErr.Op != op {
					t.Fatalf("%v: session error %v", errno, err)
				}
			}
			for _, code := range []nsm.ErrorCode{nsm.InternalError, nsm.InvalidArgument, nsm.BufferTooSmall} {
				n.SetFaults(Faults{op: {Error: code}})
				if got := process(t, n, enc(t, req)); !bytes.Equal(got, errResp(code)) {
					t.Fatalf("Process: %x, want Error(%s)", got, code)
				}
				if err := call(ctx, s, op); !errors.Is(err, code) {
					t.Fatalf("%s: session error %v", code, err)
				}
			}
			for _, m := range []Malformation{Garbage, Truncated, WrongVariant} {
				n.SetFaults(Faults{op: {Malformed: m}})
				if err := call(ctx, s, op); !errors.Is(err, nsm.ErrInvalidResponse) {
					t.Fatalf("%s: session error %v", m, err)
				}
				resp := process(t, n, enc(t, req))
				var r response.Response
				err := cbor.Unmarshal(resp, &r)
				if (m == WrongVariant) != (err == nil) {
					t.Fatalf("%s: response %x decodes: %v", m, resp, err)
				}
				if m == WrongVariant && (variant(r) == op || r.Error != "") {
					t.Fatalf("wrong variant answered %s", variant(r))
				}
			}
			// Faults on other types leave this one alone.
			others := Faults{}
			for other := range requestsByType {
				if other != op {
					others[other] = Fault{Errno: syscall.EIO}
				}
			}
			n.SetFaults(others)
			if err := call(ctx, s, op); err != nil && !errors.Is(err, nsm.ReadOnlyIndex) {
				t.Fatalf("fault on other types: %v", err)
			}
			n.SetFaults(nil)
			if err := call(ctx, s, op); err != nil && !errors.Is(err, nsm.ReadOnlyIndex) {
				t.Fatalf("faults cleared: %v", err)
			}
		})
	}
}

// TestFaultExecution: an errno or error code fault stops the request; a malformed response does not.
func TestFaultExecution(t *testing.T) {
	n, _ := newTestNSMShared(t)
	zero := [48]byte{}
	for _, f := range []Fault{{Errno: syscall.EIO}, {Error: nsm.InternalError}} {
		n.SetFaults(Faults{ExtendPCR: f})
		n.Process(enc(t, &request.ExtendPCR{Index: 16, Data: []byte("x")}))
		if n.pcrs[16] != zero {
			t.Fatalf("%+v: the request was executed", f)
		}
	}
	n.SetFaults(Faults{ExtendPCR: {Malformed: Truncated}})
	n.Process(enc(t, &request.ExtendPCR{Index: 16, Data: []byte("x")}))
	if n.pcrs[16] == zero {
		t.Fatal("truncated response: the request was not executed")
	}
	// Undecodable requests get no fault.
	n.SetFaults(Faults{GetRandom: {Errno: syscall.EIO}})
	if resp, errno := n.Process([]byte{0x00}); errno != 0 || !bytes.Equal(resp, errResp(nsm.InvalidOperation)) {
		t.Fatalf("undecodable request: %x %v", resp, errno)
	}
	// SetFaults keeps its own copy.
	f := Faults{GetRandom: {Errno: syscall.EIO}}
	n.SetFaults(f)
	delete(f, GetRandom)
	if _, errno := n.Process(enc(t, &request.GetRandom{})); errno != syscall.EIO {
		t.Fatal("SetFaults shares the caller's map")
	}
}

func TestFaultLatency(t *testing.T) {
	n, _ := newTestNSMShared(t)
	s := openSession(t, n)
	n.SetFaults(Faults{GetRandom: {Latency: 30 * time.Millisecond}})
	start := time.Now()
	if _, err := s.GetRandom(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("answered after %v, before the 30ms latency", d)
	}
	// A caller's deadline bounds the wait on a slow device.
	n.SetFaults(Faults{DescribeNSM: {Latency: 300 * time.Millisecond, Error: nsm.InternalError}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := s.DescribeNSM(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestFaultsJSON(t *testing.T) {
	in := `{"Attestation": {"latency": "1.5s", "error": "InternalError"}, "GetRandom": {"errno": "EIO"},
		"DescribePCR": {"malformed": "wrong-variant"}, "LockPCR": {"errno": "ETIMEDOUT", "latency": "10ms"}}`
	var f Faults
	if err := json.Unmarshal([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	want := Faults{
		Attestation: {Latency: 1500 * time.Millisecond, Error: nsm.InternalError},
		GetRandom:   {Errno: syscall.EIO},
		DescribePCR: {Malformed: WrongVariant},
		LockPCR:     {Errno: syscall.ETIMEDOUT, Latency: 10 * time.Millisecond},
	}
	if len(f) != len(want) {
		t.Fatalf("%+v", f)
	}
	for k, v := range want {
		if f[k] != v {
			t.Fatalf("%s = %+v, want %+v", k, f[k], v)
		}
	}
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back Faults
	if err := json.Unmarshal(out, &back); err != nil || len(back) != len(f) || back[LockPCR] != f[LockPCR] {
		t.Fatalf("round trip %s: %v", out, err)
	}

	// Open reads dir/faults.json.
	dir := copyShared(t)
	if err := os.WriteFile(filepath.Join(dir, "faults.json"), []byte(`{"GetRandom": {"errno": "ENODATA"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, errno := n.Process(enc(t, &request.GetRandom{})); errno != syscall.ENODATA {
		t.Fatalf("faults.json not applied: errno %v", errno)
	}
}

func TestFaultsInvalid(t *testing.T) {
	for name, f := range map[string]Faults{
		"unknown type":     {"Bogus": {}},
		"errno and error":  {GetRandom: {Errno: syscall.EIO, Error: nsm.InternalError}},
		"error and broken": {GetRandom: {Error: nsm.InternalError, Malformed: Garbage}},
		"foreign errno":    {GetRandom: {Errno: syscall.EPERM}},
		"unknown code":     {GetRandom: {Error: "Bogus"}},
		"unknown broken":   {GetRandom: {Malformed: "upside-down"}},
		"negative latency": {GetRandom: {Latency: -time.Second}},
	} {
		n, _ := newTestNSMShared(t)
		if err := n.SetFaults(f); err == nil {
			t.Errorf("%s: SetFaults accepted %+v", name, f)
		}
		if _, err := json.Marshal(f); err == nil && name == "foreign errno" {
			t.Errorf("%s: marshalled", name)
		}
	}
	for _, in := range []string{
		`{"GetRandom": {"errno": "EPERM"}}`,
		`{"GetRandom": {"latency": "soon"}}`,
		`{"GetRandom": {"latency": 5}}`,
		`{"GetRandom": {"delay": "5ms"}}`,
		`{"GetRandom": {"error": "Bogus"}}`,
		`{"Bogus": {}}`,
		`{"GetRandom": {}} {}`,
		`[]`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "faults.json"), []byte(in), 0o600)
		if _, err := loadFaults(dir); err == nil {
			t.Errorf("loadFaults accepted %s", in)
		}
	}
}
