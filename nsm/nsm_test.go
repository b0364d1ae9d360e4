package nsm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/leaktest"
	"github.com/fxamacker/cbor/v2"
	hfnsm "github.com/hf/nsm"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

// fakeDevice records the encoded requests (encoded exactly as hf/nsm does) and answers with raw response bytes,
// decoded exactly as hf/nsm decodes them.
type fakeDevice struct {
	mu       sync.Mutex
	sent     [][]byte
	answer   func(req []byte) ([]byte, error)
	closed   int
	closeErr error
}

func (d *fakeDevice) Send(req request.Request) (response.Response, error) {
	b, err := cbor.Marshal(req.Encoded())
	if err != nil {
		return response.Response{}, err
	}
	d.mu.Lock()
	d.sent = append(d.sent, b)
	d.mu.Unlock()
	raw, err := d.answer(b)
	if err != nil {
		return response.Response{}, err
	}
	var r response.Response
	err = cbor.Unmarshal(raw, &r)
	return r, err
}

func (d *fakeDevice) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed++
	return d.closeErr
}

func (d *fakeDevice) requests() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.sent...)
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustUnhex is for device callbacks, which may run on a goroutine of the session where t.Fatal must not be called.
func mustUnhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func cborText(s string) string {
	head := []byte{0x60 | byte(len(s))}
	if len(s) >= 24 {
		head = []byte{0x78, byte(len(s))}
	}
	return hex.EncodeToString(append(head, s...))
}

// Canonical serde_cbor responses (nitro-specs §4.4).
var (
	pcr48        = bytes.Repeat([]byte{0xab}, 48)
	respDescPCR  = "a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 5830" + hex.EncodeToString(pcr48)
	respExtend   = "a1 69457874656e64504352 a1 6464617461 5830" + hex.EncodeToString(pcr48)
	respLockPCR  = "67 4c6f636b504352"
	respLockPCRs = "68 4c6f636b50435273"
	moduleID     = "i-0123456789abcdef0-enc0123456789abcdef"
	respDescNSM  = "a1 6b44657363726962654e534d a7 6d76657273696f6e5f6d616a6f72 01 6d76657273696f6e5f6d696e6f72 00" +
		" 6d76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 7827" + hex.EncodeToString([]byte(moduleID)) +
		" 68 6d61785f70637273 1820 6b 6c6f636b65645f70637273 90 000102030405060708090a0b0c0d0e0f" +
		" 66 646967657374 66 534841333834"
	respAttest = "a1 6b4174746573746174696f6e a1 68646f63756d656e74 45 8444a10138"
	respRandom = "a1 6947657452616e646f6d a1 6672616e646f6d 58 20" + strings.Repeat("5a", 32)
)

func respError(code string) string { return "a1 654572726f72 " + cborText(code) }

// answerFor returns a correct canonical answer for each request, so encoding tests can run every method.
func answerFor() func([]byte) ([]byte, error) {
	return func(req []byte) ([]byte, error) {
		h := hex.EncodeToString(req)
		switch {
		case strings.Contains(h, hex.EncodeToString([]byte("DescribePCR"))):
			return mustUnhex(respDescPCR), nil
		case strings.Contains(h, hex.EncodeToString([]byte("ExtendPCR"))):
			return mustUnhex(respExtend), nil
		case strings.Contains(h, hex.EncodeToString([]byte("LockPCRs"))):
			return mustUnhex(respLockPCRs), nil
		case strings.Contains(h, hex.EncodeToString([]byte("LockPCR"))):
			return mustUnhex(respLockPCR), nil
		case strings.Contains(h, hex.EncodeToString([]byte("DescribeNSM"))):
			return mustUnhex(respDescNSM), nil
		case strings.Contains(h, hex.EncodeToString([]byte("Attestation"))):
			return mustUnhex(respAttest), nil
		case strings.Contains(h, hex.EncodeToString([]byte("GetRandom"))):
			return mustUnhex(respRandom), nil
		}
		return nil, errors.New("unexpected request")
	}
}

func openFake(t testing.TB, answer func([]byte) ([]byte, error)) (*Session, *fakeDevice) {
	t.Helper()
	d := &fakeDevice{answer: answer}
	s, err := Open(Options{Device: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

func fixed(t testing.TB, h string) func([]byte) ([]byte, error) {
	b := unhex(t, h)
	return func([]byte) ([]byte, error) { return b, nil }
}

// TestRequestEncoding checks the bytes each method sends against nitro-specs §4.3.
func TestRequestEncoding(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(s *Session) error
		want string
	}{
		{"DescribeNSM", func(s *Session) error { _, err := s.DescribeNSM(ctx); return err },
			"6b 44657363726962654e534d"},
		{"GetRandom", func(s *Session) error { _, err := s.GetRandom(ctx); return err },
			"69 47657452616e646f6d"},
		{"DescribePCR0", func(s *Session) error { _, err := s.DescribePCR(ctx, 0); return err },
			"a1 6b4465736372696265504352 a1 65696e646578 00"},
		{"ExtendPCR16abc", func(s *Session) error { _, err := s.ExtendPCR(ctx, 16, []byte("abc")); return err },
			"a1 69457874656e64504352 a2 65696e646578 10 6464617461 43616263"},
		{"ExtendPCRNilData", func(s *Session) error { _, err := s.ExtendPCR(ctx, 16, nil); return err },
			"a1 69457874656e64504352 a2 65696e646578 10 6464617461 40"},
		{"LockPCR16", func(s *Session) error { return s.LockPCR(ctx, 16) },
			"a1 674c6f636b504352 a1 65696e646578 10"},
		{"LockPCRs32", func(s *Session) error { return s.LockPCRs(ctx, 32) },
			"a1 684c6f636b50435273 a1 6572616e6765 1820"},
		{"AttestationNone", func(s *Session) error {
			_, err := s.Attestation(ctx, AttestationRequest{})
			return err
		}, "a1 6b4174746573746174696f6e a3 69757365725f64617461 f6 656e6f6e6365 f6 6a7075626c69635f6b6579 f6"},
		{"AttestationAll", func(s *Session) error {
			_, err := s.Attestation(ctx, AttestationRequest{UserData: []byte("ud"), Nonce: []byte("n"), PublicKey: []byte("pk")})
			return err
		}, "a1 6b4174746573746174696f6e a3 69757365725f64617461 427564 656e6f6e6365 416e 6a7075626c69635f6b6579 42706b"},
		{"AttestationEmptyUserData", func(s *Session) error {
			_, err := s.Attestation(ctx, AttestationRequest{UserData: []byte{}})
			return err
		}, "a1 6b4174746573746174696f6e a3 69757365725f64617461 40 656e6f6e6365 f6 6a7075626c69635f6b6579 f6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, d := openFake(t, answerFor())
			if err := tc.call(s); err != nil {
				t.Fatal(err)
			}
			got := d.requests()
			if len(got) != 1 || !bytes.Equal(got[0], unhex(t, tc.want)) {
				t.Fatalf("sent %x\nwant %s", got, tc.want)
			}
		})
	}
}

// TestResponseDecoding decodes every canonical response of nitro-specs §4.4.
func TestResponseDecoding(t *testing.T) {
	ctx := context.Background()

	s, _ := openFake(t, fixed(t, respDescPCR))
	p, err := s.DescribePCR(ctx, 0)
	if err != nil || !p.Locked || !bytes.Equal(p.Value, pcr48) {
		t.Fatalf("DescribePCR = %+v, %v", p, err)
	}

	s, _ = openFake(t, fixed(t, respExtend))
	v, err := s.ExtendPCR(ctx, 16, []byte("x"))
	if err != nil || !bytes.Equal(v, pcr48) {
		t.Fatalf("ExtendPCR = %x, %v", v, err)
	}

	s, _ = openFake(t, fixed(t, respLockPCR))
	if err := s.LockPCR(ctx, 16); err != nil {
		t.Fatalf("LockPCR: %v", err)
	}

	s, _ = openFake(t, fixed(t, respLockPCRs))
	if err := s.LockPCRs(ctx, 16); err != nil {
		t.Fatalf("LockPCRs: %v", err)
	}

	s, _ = openFake(t, fixed(t, respDescNSM))
	desc, err := s.DescribeNSM(ctx)
	want := Description{VersionMajor: 1, ModuleID: moduleID, MaxPCRs: 32,
		LockedPCRs: []uint16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, Digest: "SHA384"}
	if err != nil || desc.VersionMajor != want.VersionMajor || desc.VersionMinor != 0 || desc.VersionPatch != 0 ||
		desc.ModuleID != want.ModuleID || desc.MaxPCRs != 32 || desc.Digest != "SHA384" ||
		!equalU16(desc.LockedPCRs, want.LockedPCRs) {
		t.Fatalf("DescribeNSM = %+v, %v", desc, err)
	}

	s, _ = openFake(t, fixed(t, respAttest))
	doc, err := s.Attestation(ctx, AttestationRequest{})
	if err != nil || !bytes.Equal(doc, unhex(t, "8444a10138")) {
		t.Fatalf("Attestation = %x, %v", doc, err)
	}

	s, _ = openFake(t, fixed(t, respRandom))
	r, err := s.GetRandom(ctx)
	if err != nil || !bytes.Equal(r, bytes.Repeat([]byte{0x5a}, 32)) {
		t.Fatalf("GetRandom = %x, %v", r, err)
	}
}

func equalU16(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestErrorCodes: every code the NSM can answer is an *Error matching the code; Success and unknown codes are
// invalid responses.
func TestErrorCodes(t *testing.T) {
	ctx := context.Background()
	codes := []ErrorCode{InvalidArgument, InvalidIndex, InvalidResponse, ReadOnlyIndex, InvalidOperation,
		BufferTooSmall, InputTooLarge, InternalError}
	for _, code := range codes {
		t.Run(string(code), func(t *testing.T) {
			if !code.Known() || code.Error() != string(code) {
				t.Fatalf("%q: Known() = %v, Error() = %q", code, code.Known(), code.Error())
			}
			s, _ := openFake(t, fixed(t, respError(string(code))))
			_, err := s.DescribePCR(ctx, 40)
			var e *Error
			if !errors.As(err, &e) || e.Code != code || e.Op != "DescribePCR" || !errors.Is(err, code) {
				t.Fatalf("err = %#v", err)
			}
			if errors.Is(err, ErrInvalidResponse) {
				t.Fatal("an NSM error is not an invalid response")
			}
			if want := "nsm: DescribePCR: " + string(code); err.Error() != want {
				t.Fatalf("Error() = %q, want %q", err.Error(), want)
			}
			for _, other := range codes {
				if other != code && errors.Is(err, other) {
					t.Fatalf("matches %s too", other)
				}
			}
		})
	}
	for _, code := range []string{"Success", "Bogus", "invalidindex"} {
		s, _ := openFake(t, fixed(t, respError(code)))
		if err := s.LockPCR(ctx, 16); !errors.Is(err, ErrInvalidResponse) {
			t.Fatalf("Error(%s): err = %v, want ErrInvalidResponse", code, err)
		}
	}
}

func TestIoctlError(t *testing.T) {
	ctx := context.Background()
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.ETIMEDOUT, syscall.EMSGSIZE, syscall.EFAULT} {
		s, _ := openFake(t, func([]byte) ([]byte, error) { return nil, &hfnsm.ErrorIoctlFailed{Errno: errno} })
		_, err := s.GetRandom(ctx)
		var e *IoctlError
		if !errors.As(err, &e) || e.Errno != errno || e.Op != "GetRandom" || !errors.Is(err, errno) {
			t.Fatalf("%v: err = %#v", errno, err)
		}
		if want := "nsm: GetRandom: ioctl: " + errno.Error(); err.Error() != want {
			t.Fatalf("Error() = %q, want %q", err.Error(), want)
		}
		if got := errors.Is(err, InputTooLarge); got != (errno == syscall.EMSGSIZE) {
			t.Fatalf("%v: errors.Is(err, InputTooLarge) = %v", errno, got)
		}
	}
	// A device may report the package's own type too.
	s, _ := openFake(t, func([]byte) ([]byte, error) { return nil, &IoctlError{Op: "x", Errno: syscall.EIO} })
	if _, err := s.GetRandom(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("err = %v", err)
	}
}

// TestRequestTooLarge: the size check uses the exact encoding and runs before the device.
func TestRequestTooLarge(t *testing.T) {
	ctx := context.Background()
	s, d := openFake(t, answerFor())
	// ExtendPCR{index:16, data} has 27 bytes of overhead with a 2-byte length: 4069 bytes of data fill 4096.
	if _, err := s.ExtendPCR(ctx, 16, make([]byte, 4069)); err != nil {
		t.Fatalf("4096-byte request: %v", err)
	}
	if got := d.requests(); len(got) != 1 || len(got[0]) != MaxRequestSize {
		t.Fatalf("sent %d requests, first %d bytes", len(got), len(got[0]))
	}
	_, err := s.ExtendPCR(ctx, 16, make([]byte, 4070))
	if !errors.Is(err, ErrRequestTooLarge) || !errors.Is(err, InputTooLarge) ||
		err.Error() != "nsm: encoded request exceeds 4096 bytes: ExtendPCR request is 4097 bytes" {
		t.Fatalf("4097-byte request: err = %v", err)
	}
	if ErrorCode("Bogus").Known() {
		t.Fatal("Bogus is Known")
	}
	_, err = s.Attestation(ctx, AttestationRequest{UserData: make([]byte, 1500), Nonce: make([]byte, 1500), PublicKey: make([]byte, 1500)})
	if !errors.Is(err, ErrRequestTooLarge) {
		t.Fatalf("large attestation: err = %v", err)
	}
	if n := len(d.requests()); n != 1 {
		t.Fatalf("oversized requests reached the device: %d sent", n)
	}
}

// TestInvalidResponses: anything but exactly the expected, well-formed variant is ErrInvalidResponse.
func TestInvalidResponses(t *testing.T) {
	ctx := context.Background()
	pcrOf := func(n int) string { return hex.EncodeToString([]byte{0x40 | byte(n)}) + strings.Repeat("00", n) }
	pcrOfLong := func(n int) string { return "58" + hex.EncodeToString([]byte{byte(n)}) + strings.Repeat("00", n) }
	descNSM := func(body string) string { return "a1 6b44657363726962654e534d " + body }
	descFields := func(mod string, maxPCRs string, locked string, digest string) string {
		return descNSM("a7 6d76657273696f6e5f6d616a6f72 01 6d76657273696f6e5f6d696e6f72 00" +
			" 6d76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 " + cborText(mod) +
			" 68 6d61785f70637273 " + maxPCRs + " 6b 6c6f636b65645f70637273 " + locked +
			" 66 646967657374 " + cborText(digest))
	}
	tests := []struct {
		name, resp string
		call       func(s *Session) error
	}{
		{"garbage", "ff0102", func(s *Session) error { _, err := s.GetRandom(ctx); return err }},
		{"truncated", strings.ReplaceAll(respRandom, " ", "")[:40], func(s *Session) error { _, err := s.GetRandom(ctx); return err }},
		{"empty map", "a0", func(s *Session) error { _, err := s.GetRandom(ctx); return err }},
		{"unknown text", cborText("Bogus"), func(s *Session) error { return s.LockPCR(ctx, 16) }},
		{"two variants", "a2 654572726f72 " + cborText("InvalidIndex") + " 6947657452616e646f6d a1 6672616e646f6d 4101",
			func(s *Session) error { _, err := s.GetRandom(ctx); return err }},
		{"LockPCRs for LockPCR", respLockPCRs, func(s *Session) error { return s.LockPCR(ctx, 16) }},
		{"LockPCR for LockPCRs", respLockPCR, func(s *Session) error { return s.LockPCRs(ctx, 16) }},
		{"GetRandom for Attestation", respRandom, func(s *Session) error {
			_, err := s.Attestation(ctx, AttestationRequest{})
			return err
		}},
		{"ExtendPCR for DescribePCR", respExtend, func(s *Session) error { _, err := s.DescribePCR(ctx, 1); return err }},
		{"DescribePCR for ExtendPCR", respDescPCR, func(s *Session) error { _, err := s.ExtendPCR(ctx, 16, nil); return err }},
		{"Attestation for DescribeNSM", respAttest, func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"DescribeNSM for GetRandom", respDescNSM, func(s *Session) error { _, err := s.GetRandom(ctx); return err }},
		{"empty random", "a1 6947657452616e646f6d a1 6672616e646f6d 40", func(s *Session) error {
			_, err := s.GetRandom(ctx)
			return err
		}},
		{"null random", "a1 6947657452616e646f6d a1 6672616e646f6d f6", func(s *Session) error {
			_, err := s.GetRandom(ctx)
			return err
		}},
		{"empty document", "a1 6b4174746573746174696f6e a1 68646f63756d656e74 40", func(s *Session) error {
			_, err := s.Attestation(ctx, AttestationRequest{})
			return err
		}},
		{"PCR 47 bytes", "a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 " + pcrOfLong(47),
			func(s *Session) error { _, err := s.DescribePCR(ctx, 0); return err }},
		{"PCR 49 bytes", "a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 " + pcrOfLong(49),
			func(s *Session) error { _, err := s.DescribePCR(ctx, 0); return err }},
		{"PCR missing", "a1 6b4465736372696265504352 a1 646c6f636b f5",
			func(s *Session) error { _, err := s.DescribePCR(ctx, 0); return err }},
		{"extended PCR 0 bytes", "a1 69457874656e64504352 a1 6464617461 " + pcrOf(0),
			func(s *Session) error { _, err := s.ExtendPCR(ctx, 16, nil); return err }},
		{"extended PCR 32 bytes", "a1 69457874656e64504352 a1 6464617461 " + pcrOfLong(32),
			func(s *Session) error { _, err := s.ExtendPCR(ctx, 16, nil); return err }},
		{"empty module id", descFields("", "1820", "80", "SHA384"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"max_pcrs 0", descFields(moduleID, "00", "80", "SHA384"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"unknown digest", descFields(moduleID, "1820", "80", "MD5"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"locked unsorted", descFields(moduleID, "1820", "82 0100", "SHA384"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"locked duplicate", descFields(moduleID, "1820", "82 0101", "SHA384"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"locked beyond max", descFields(moduleID, "02", "82 0002", "SHA384"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
		{"DescribeNSM body not a map", descNSM("01"), func(s *Session) error { _, err := s.DescribeNSM(ctx); return err }},
	}
	// The reason each case must be rejected for (a decoding error would hide a missing check).
	reasons := map[string]string{
		"garbage": "break", "truncated": "EOF", "empty map": "0 variants", "unknown text": "Bogus",
		"two variants": "2 variants", "empty random": "no random bytes", "null random": "no random bytes",
		"empty document": "empty document", "PCR 47 bytes": "47 bytes", "PCR 49 bytes": "49 bytes",
		"PCR missing": "0 bytes", "extended PCR 0 bytes": "0 bytes", "extended PCR 32 bytes": "32 bytes",
		"empty module id": "empty module_id", "max_pcrs 0": "max_pcrs is 0", "unknown digest": "MD5",
		"locked unsorted": "not ascending", "locked duplicate": "not ascending", "locked beyond max": "not ascending",
		"DescribeNSM body not a map": "cannot unmarshal",
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openFake(t, fixed(t, tc.resp))
			err := tc.call(s)
			if !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("err = %v, want ErrInvalidResponse", err)
			}
			reason, ok := reasons[tc.name]
			if !ok {
				reason = "wrong response variant"
			}
			if !strings.Contains(err.Error(), reason) {
				t.Fatalf("err = %v, want it to say %q", err, reason)
			}
		})
	}
}

// TestDigestLength: after DescribeNSM names SHA256, PCRs are expected to be 32 bytes.
func TestDigestLength(t *testing.T) {
	ctx := context.Background()
	desc := strings.Replace(respDescNSM, "66 534841333834", "66 534841323536", 1) // "SHA256"
	pcr32 := "a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 5820" + strings.Repeat("11", 32)
	answers := []string{desc, pcr32, respDescPCR}
	i := 0
	s, _ := openFake(t, func([]byte) ([]byte, error) { i++; return mustUnhex(answers[i-1]), nil })
	if d, err := s.DescribeNSM(ctx); err != nil || d.Digest != "SHA256" {
		t.Fatalf("DescribeNSM = %+v, %v", d, err)
	}
	if p, err := s.DescribePCR(ctx, 0); err != nil || len(p.Value) != 32 {
		t.Fatalf("32-byte PCR under SHA256: %+v, %v", p, err)
	}
	if _, err := s.DescribePCR(ctx, 0); !errors.Is(err, ErrInvalidResponse) {
		t.Fatalf("48-byte PCR under SHA256: err = %v", err)
	}
}

func TestRead(t *testing.T) {
	n := 0
	s, _ := openFake(t, func([]byte) ([]byte, error) {
		n++
		return mustUnhex("a1 6947657452616e646f6d a1 6672616e646f6d 47 01020304050607"), nil
	})
	buf := make([]byte, 100)
	if got, err := s.Read(buf); got != 100 || err != nil {
		t.Fatalf("Read = %d, %v", got, err)
	}
	if n != 15 || buf[99] != 0x02 || buf[0] != 0x01 {
		t.Fatalf("%d GetRandom calls, buf %x", n, buf)
	}
	if got, err := s.Read(nil); got != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", got, err)
	}

	// An error midway reports the bytes filled so far.
	calls := 0
	s, _ = openFake(t, func([]byte) ([]byte, error) {
		calls++
		if calls == 3 {
			return mustUnhex(respError("InternalError")), nil
		}
		return mustUnhex(respRandom), nil
	})
	got, err := s.Read(make([]byte, 100))
	if got != 64 || !errors.Is(err, InternalError) {
		t.Fatalf("Read = %d, %v; want 64, InternalError", got, err)
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	d := &fakeDevice{answer: answerFor(), closeErr: errors.New("close failed")}
	s, err := Open(Options{Device: d})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || err.Error() != "close failed" {
		t.Fatalf("Close = %v, want the device's error", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if d.closed != 1 {
		t.Fatalf("device closed %d times", d.closed)
	}
	if _, err := s.GetRandom(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetRandom after Close = %v", err)
	}
	if len(d.requests()) != 0 {
		t.Fatal("request sent after Close")
	}
}

func TestOpenPath(t *testing.T) {
	_, err := Open(Options{Path: "/nonexistent/nsm"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v", err)
	}
	if _, err := os.Stat(DefaultPath); errors.Is(err, fs.ErrNotExist) {
		if _, err := Open(Options{}); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(default) without %s = %v", DefaultPath, err)
		}
	}

	// /dev/null takes the real hf/nsm ioctl path and rejects the ioctl.
	s, err := Open(Options{Path: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.DescribeNSM(context.Background())
	var e *IoctlError
	if !errors.As(err, &e) || e.Errno != syscall.ENOTTY {
		t.Fatalf("ioctl on %s = %v, want ENOTTY", os.DevNull, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNoFDLeak: opening and closing sessions (and failing to open) leaves no descriptor behind.
func TestNoFDLeak(t *testing.T) {
	before := leaktest.FDs(t)
	for range 200 {
		s, err := Open(Options{Path: os.DevNull})
		if err != nil {
			t.Fatal(err)
		}
		s.DescribeNSM(context.Background())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(Options{Path: "/nonexistent/nsm"}); err == nil {
			t.Fatal("opened a missing path")
		}
	}
	if after := leaktest.FDs(t); after > before {
		t.Fatalf("%d descriptors before, %d after", before, after)
	}
}

// blockingDevice blocks every Send until release is closed, signalling entered first.
type blockingDevice struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	events  []string
}

func (d *blockingDevice) log(e string) {
	d.mu.Lock()
	d.events = append(d.events, e)
	d.mu.Unlock()
}

func (d *blockingDevice) Send(req request.Request) (response.Response, error) {
	d.log("send")
	d.entered <- struct{}{}
	<-d.release
	d.log("sent")
	return response.Response{GetRandom: &response.GetRandom{Random: []byte{1}}}, nil
}

func (d *blockingDevice) Close() error { d.log("close"); return nil }

// TestContextCancel: a cancelled caller returns at once, a queued request that was cancelled never reaches the
// device, the worker finishes the one in flight, and no goroutine survives Close.
func TestContextCancel(t *testing.T) {
	base := runtime.NumGoroutine()
	d := &blockingDevice{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := Open(Options{Device: d})
	if err != nil {
		t.Fatal(err)
	}

	// Already cancelled: nothing is sent.
	ctx0, cancel0 := context.WithCancel(context.Background())
	cancel0()
	if _, err := s.GetRandom(ctx0); !errors.Is(err, context.Canceled) {
		t.Fatalf("pre-cancelled: %v", err)
	}

	// In flight: the caller gives up while the device blocks.
	ctx1, cancel1 := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() { _, err := s.GetRandom(ctx1); errc <- err }()
	<-d.entered
	cancel1()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("in flight: %v", err)
	}

	// Queued behind the busy worker, with a deadline.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := s.GetRandom(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued: %v", err)
	}

	close(d.release) // the in-flight request completes on the worker
	go func() { <-d.entered }()
	if r, err := s.GetRandom(context.Background()); err != nil || len(r) != 1 {
		t.Fatalf("after release: %x, %v", r, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	got := strings.Join(d.events, ",")
	d.mu.Unlock()
	if got != "send,sent,send,sent,close" {
		t.Fatalf("device saw %s", got)
	}
	leaktest.WaitGoroutines(t, base)
}

// TestCloseWaitsForInFlight: the device is closed only after the request in flight returned.
func TestCloseWaitsForInFlight(t *testing.T) {
	base := runtime.NumGoroutine()
	d := &blockingDevice{entered: make(chan struct{}), release: make(chan struct{})}
	s, err := Open(Options{Device: d})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() { _, err := s.GetRandom(context.Background()); errc <- err }()
	<-d.entered
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	close(d.release)
	if err := <-errc; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	got := strings.Join(d.events, ",")
	d.mu.Unlock()
	if got != "send,sent,close" {
		t.Fatalf("device saw %s", got)
	}
	leaktest.WaitGoroutines(t, base)
}

func TestConcurrentCalls(t *testing.T) {
	base := runtime.NumGoroutine()
	s, d := openFake(t, answerFor())
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := s.GetRandom(context.Background()); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(d.requests()); n != 800 {
		t.Fatalf("%d requests", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	leaktest.WaitGoroutines(t, base)
}

// callerStack reports whether the current goroutine's stack holds fn: whether a device call runs
// on the goroutine of the test function fn (named with its opening parenthesis, to tell it from
// its closures).
func callerStack(fn string) bool {
	buf := make([]byte, 64<<10)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), fn)
}

// TestWhereRequestsRun: a context that can never end runs the request on the caller's goroutine;
// one that can end runs it on another goroutine (so that the caller can leave). Both kinds, mixed
// and concurrent, still reach the device one at a time.
func TestWhereRequestsRun(t *testing.T) {
	var onCaller []bool
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	s, _ := openFake(t, func([]byte) ([]byte, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if n > peak.Load() {
			peak.Store(n)
		}
		time.Sleep(100 * time.Microsecond)
		mu.Lock()
		onCaller = append(onCaller, callerStack("nsm.TestWhereRequestsRun("))
		mu.Unlock()
		return mustUnhex(respRandom), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.GetRandom(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRandom(ctx); err != nil {
		t.Fatal(err)
	}
	if len(onCaller) != 2 || !onCaller[0] || onCaller[1] {
		t.Fatalf("on the caller's goroutine: %v, want [true false]", onCaller)
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			c := context.Background()
			if i%2 == 1 {
				c = ctx
			}
			for range 20 {
				if _, err := s.GetRandom(c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 1 {
		t.Fatalf("%d requests reached the device at once", p)
	}
}

// TestEncodedSize: the size worked out from the field lengths is the size of hf/nsm's encoding, for every
// request kind and across every CBOR length boundary (nil is null, empty is a zero-length string).
func TestEncodedSize(t *testing.T) {
	var lengths []int
	for _, n := range []int{0, 23, 24, 255, 256, 4095, 4096, 65535, 65536} {
		lengths = append(lengths, max(n-1, 0), n, n+1)
	}
	blob := func(n int) [][]byte { return [][]byte{nil, make([]byte, n)} }
	var reqs []request.Request
	for _, n := range lengths {
		for _, b := range blob(n) {
			reqs = append(reqs,
				&request.Attestation{UserData: b},
				&request.Attestation{Nonce: b, PublicKey: make([]byte, 300)},
				&request.Attestation{UserData: b, Nonce: b, PublicKey: b},
				&request.ExtendPCR{Index: uint16(min(n, 0xffff)), Data: b},
			)
		}
		idx := uint16(min(n, 0xffff))
		reqs = append(reqs, &request.DescribePCR{Index: idx}, &request.LockPCR{Index: idx}, &request.LockPCRs{Range: idx})
	}
	reqs = append(reqs, &request.DescribeNSM{}, &request.GetRandom{})
	for _, r := range reqs {
		b, err := cbor.Marshal(r.Encoded())
		if err != nil {
			t.Fatal(err)
		}
		if got := encodedSize(r); got != len(b) {
			t.Fatalf("%T%+v: worked out %d bytes, encoded %d", r, r, got, len(b))
		}
	}
}
