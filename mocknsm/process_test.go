package mocknsm

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

const testModuleID = "i-0123456789abcdef0-enc0123456789abcdef"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hx(s string) string { return hex.EncodeToString([]byte(s)) }

// newTestNSM initialises a state directory with cfg and opens it.
func newTestNSM(t testing.TB, cfg Config) (*NSM, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nsm")
	if err := Init(dir, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n, dir
}

// enc encodes a request exactly as hf/nsm does.
func enc(t testing.TB, r request.Request) []byte {
	t.Helper()
	b, err := cbor.Marshal(r.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func process(t testing.TB, n *NSM, req []byte) []byte {
	t.Helper()
	resp, errno := n.Process(req)
	if errno != 0 {
		t.Fatalf("Process(%x): errno %v", req, errno)
	}
	return resp
}

func errResp(code nsm.ErrorCode) []byte {
	return append([]byte{0xa1, 0x65, 'E', 'r', 'r', 'o', 'r'}, encode(string(code))...)
}

func sha384(parts ...[]byte) []byte {
	h := sha512.New384()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

// TestResponseEncodings checks every response form byte for byte against nitro-specs §4.4.
func TestResponseEncodings(t *testing.T) {
	n, _ := newTestNSMShared(t)
	pcr0 := n.st.PCRs[0]

	got := process(t, n, enc(t, &request.DescribePCR{Index: 0}))
	want := unhex(t, "a1 6b4465736372696265504352 a2 646c6f636b f5 6464617461 5830"+hex.EncodeToString(pcr0[:]))
	if !bytes.Equal(got, want) {
		t.Errorf("DescribePCR\n got %x\nwant %x", got, want)
	}

	got = process(t, n, enc(t, &request.ExtendPCR{Index: 16, Data: []byte("abc")}))
	want = unhex(t, "a1 69457874656e64504352 a1 6464617461 5830"+hex.EncodeToString(sha384(make([]byte, 48), []byte("abc"))))
	if !bytes.Equal(got, want) {
		t.Errorf("ExtendPCR\n got %x\nwant %x", got, want)
	}

	if got := process(t, n, enc(t, &request.LockPCR{Index: 16})); !bytes.Equal(got, unhex(t, "67 4c6f636b504352")) {
		t.Errorf("LockPCR = %x", got)
	}
	if got := process(t, n, enc(t, &request.LockPCRs{Range: 16})); !bytes.Equal(got, unhex(t, "68 4c6f636b50435273")) {
		t.Errorf("LockPCRs = %x", got)
	}

	got = process(t, n, enc(t, &request.DescribeNSM{}))
	want = unhex(t, "a1 6b44657363726962654e534d a7 6d76657273696f6e5f6d616a6f72 01 6d76657273696f6e5f6d696e6f72 00"+
		" 6d76657273696f6e5f7061746368 00 69 6d6f64756c655f6964 7827"+hx(testModuleID)+
		" 68 6d61785f70637273 1820 6b 6c6f636b65645f70637273 91 000102030405060708090a0b0c0d0e0f10"+
		" 66 646967657374 66 534841333834")
	if !bytes.Equal(got, want) {
		t.Errorf("DescribeNSM (PCR16 locked)\n got %x\nwant %x", got, want)
	}

	got = process(t, n, enc(t, &request.GetRandom{}))
	prefix := unhex(t, "a1 6947657452616e646f6d a1 6672616e646f6d 590100")
	if len(got) != len(prefix)+256 || !bytes.HasPrefix(got, prefix) {
		t.Errorf("GetRandom = %x", got)
	}

	got = process(t, n, enc(t, &request.Attestation{}))
	prefix = unhex(t, "a1 6b4174746573746174696f6e a1 68646f63756d656e74 59")
	if !bytes.HasPrefix(got, prefix) || int(got[len(prefix)])<<8|int(got[len(prefix)+1]) != len(got)-len(prefix)-2 {
		t.Errorf("Attestation response framing: %x", got[:40])
	}
	if doc := got[len(prefix)+2:]; !bytes.HasPrefix(doc, unhex(t, "84 44 a1013822 a0 59")) {
		t.Errorf("document starts %x", doc[:10])
	}

	got = process(t, n, enc(t, &request.DescribePCR{Index: 32}))
	if want := unhex(t, "a1654572726f726c496e76616c6964496e646578"); !bytes.Equal(got, want) {
		t.Errorf("Error(InvalidIndex) = %x, want %x", got, want)
	}
}

// TestRequestDecoding runs every request form of nitro-specs §4.3 and malformed variations through Process.
func TestRequestDecoding(t *testing.T) {
	m := func(variant, body string) string { return "a1 " + hex.EncodeToString(encode(variant)) + " " + body }
	idx := func(v string) string { return "a1 65696e646578 " + v }
	tests := []struct {
		name, req string
		want      string // response variant (a key of the response map or the unit name), or an error code
	}{
		// The exact requests of nitro-specs §4.3.
		{"DescribeNSM", "6b 44657363726962654e534d", DescribeNSM},
		{"GetRandom", "69 47657452616e646f6d", GetRandom},
		{"DescribePCR", "a1 6b4465736372696265504352 a1 65696e646578 00", DescribePCR},
		{"ExtendPCR", "a1 69457874656e64504352 a2 65696e646578 10 6464617461 43616263", ExtendPCR},
		{"LockPCR", "a1 674c6f636b504352 a1 65696e646578 10", LockPCR},
		{"LockPCRs", "a1 684c6f636b50435273 a1 6572616e6765 1820", LockPCRs},
		{"AttestationNone", "a1 6b4174746573746174696f6e a3 69757365725f64617461 f6 656e6f6e6365 f6 6a7075626c69635f6b6579 f6", Attestation},
		{"AttestationAll", "a1 6b4174746573746174696f6e a3 69757365725f64617461 427564 656e6f6e6365 416e 6a7075626c69635f6b6579 42706b", Attestation},
		{"AttestationEmpty", "a1 6b4174746573746174696f6e a3 69757365725f64617461 40 656e6f6e6365 f6 6a7075626c69635f6b6579 f6", Attestation},
		// Accepted variations (serde accepts them too).
		{"AttestationNoFields", m("Attestation", "a0"), Attestation},
		{"AttestationOnlyNonce", m("Attestation", "a1 656e6f6e6365 4101"), Attestation},
		{"IndefiniteBody", m("DescribePCR", "bf 65696e646578 00 ff"), DescribePCR},
		{"IndefiniteData", m("ExtendPCR", "a2 65696e646578 11 6464617461 5f 4161 4162 ff"), ExtendPCR},
		{"FieldOrder", m("ExtendPCR", "a2 6464617461 40 65696e646578 11"), ExtendPCR},
		{"NonMinimalIndex", m("DescribePCR", idx("1900 01")), DescribePCR},
		// Unidentifiable requests: InvalidOperation.
		{"Empty", "", string(nsm.InvalidOperation)},
		{"Null", "f6", string(nsm.InvalidOperation)},
		{"Uint", "00", string(nsm.InvalidOperation)},
		{"Array", "81 69 47657452616e646f6d", string(nsm.InvalidOperation)},
		{"UnknownUnit", hex.EncodeToString(encode("Bogus")), string(nsm.InvalidOperation)},
		{"StructVariantAsText", hex.EncodeToString(encode(DescribePCR)), string(nsm.InvalidOperation)},
		{"UnitVariantAsMap", m("GetRandom", "f6"), string(nsm.InvalidOperation)},
		{"UnknownVariant", m("Bogus", "a0"), string(nsm.InvalidOperation)},
		{"TwoVariants", "a2 6b4465736372696265504352 a1 65696e646578 00 674c6f636b504352 a1 65696e646578 10", string(nsm.InvalidOperation)},
		{"IntKey", "a1 01 a0", string(nsm.InvalidOperation)},
		{"InvalidUTF8", "62 fffe", string(nsm.InvalidOperation)},
		{"TrailingByte", "69 47657452616e646f6d 00", string(nsm.InvalidOperation)},
		{"TruncatedMap", "a1 6b4465736372696265504352 a1 65696e6465", string(nsm.InvalidOperation)},
		{"Tagged", "d818 69 47657452616e646f6d", string(nsm.InvalidOperation)},
		{"TaggedField", m("DescribePCR", idx("c0 00")), string(nsm.InvalidOperation)},
		// Known variants with bad fields: InvalidArgument.
		{"BodyNotMap", m("DescribePCR", "00"), string(nsm.InvalidArgument)},
		{"BodyNull", m("Attestation", "f6"), string(nsm.InvalidArgument)},
		{"BodyArray", m("DescribePCR", "81 00"), string(nsm.InvalidArgument)},
		{"MissingIndex", m("DescribePCR", "a0"), string(nsm.InvalidArgument)},
		{"MissingData", m("ExtendPCR", idx("10")), string(nsm.InvalidArgument)},
		{"MissingRange", m("LockPCRs", "a0"), string(nsm.InvalidArgument)},
		{"UnknownField", m("DescribePCR", "a2 65696e646578 00 6178 00"), string(nsm.InvalidArgument)},
		{"UnknownAttestationField", m("Attestation", "a1 69757365722d64617461 40"), string(nsm.InvalidArgument)},
		{"DuplicateField", m("DescribePCR", "a2 65696e646578 00 65696e646578 01"), string(nsm.InvalidArgument)},
		{"NegativeIndex", m("DescribePCR", idx("20")), string(nsm.InvalidArgument)},
		{"IndexTooBig", m("DescribePCR", idx("1a00010000")), string(nsm.InvalidArgument)},
		{"IndexText", m("LockPCR", idx("6131")), string(nsm.InvalidArgument)},
		{"IndexFloat", m("LockPCR", idx("f90000")), string(nsm.InvalidArgument)},
		{"IndexBool", m("LockPCR", idx("f4")), string(nsm.InvalidArgument)},
		{"DataNull", m("ExtendPCR", "a2 65696e646578 10 6464617461 f6"), string(nsm.InvalidArgument)},
		{"DataText", m("ExtendPCR", "a2 65696e646578 10 6464617461 63616263"), string(nsm.InvalidArgument)},
		{"UserDataText", m("Attestation", "a1 69757365725f64617461 6161"), string(nsm.InvalidArgument)},
		{"NonceUndefined", m("Attestation", "a1 656e6f6e6365 f7"), string(nsm.InvalidArgument)},
		{"PublicKeyArray", m("Attestation", "a1 6a7075626c69635f6b6579 80"), string(nsm.InvalidArgument)},
		// Decoded, then range-checked by the handler.
		{"IndexMaxU16", m("DescribePCR", idx("19ffff")), string(nsm.InvalidIndex)},
		{"Range33", m("LockPCRs", "a1 6572616e6765 1821"), string(nsm.InvalidIndex)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := newTestNSMShared(t)
			resp := process(t, n, unhex(t, tc.req))
			var r response.Response
			if err := cbor.Unmarshal(resp, &r); err != nil {
				t.Fatalf("response %x does not decode: %v", resp, err)
			}
			got := variant(r)
			if got != tc.want {
				t.Fatalf("answered %s (%x), want %s", got, resp, tc.want)
			}
		})
	}
}

// variant names the variant of a decoded response, or its error code.
func variant(r response.Response) string {
	var names []string
	if r.Error != "" {
		names = append(names, string(r.Error))
	}
	for name, set := range map[string]bool{
		DescribePCR: r.DescribePCR != nil, ExtendPCR: r.ExtendPCR != nil, LockPCR: r.LockPCR != nil,
		LockPCRs: r.LockPCRs != nil, DescribeNSM: r.DescribeNSM != nil, Attestation: r.Attestation != nil,
		GetRandom: r.GetRandom != nil,
	} {
		if set {
			names = append(names, name)
		}
	}
	return strings.Join(names, "+")
}

var shared struct {
	dir string
	n   *NSM
}

// newTestNSMShared returns a freshly booted NSM (fresh PCR state) that shares one state directory and one
// signer (CA chain and leaf) with the other tests that do not care about the PKI: key generation and signing
// are slow under the race detector.
func newTestNSMShared(t testing.TB) (*NSM, string) {
	t.Helper()
	if shared.n == nil {
		dir, err := os.MkdirTemp("", "mocknsm-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = filepath.Join(dir, "nsm")
		if err := Init(shared.dir, Config{ModuleID: testModuleID}); err != nil {
			t.Fatal(err)
		}
		if shared.n, err = Open(shared.dir); err != nil {
			t.Fatal(err)
		}
	}
	n := newNSM(shared.n.st, shared.n.signer.cas, time.Now)
	n.signer = shared.n.signer
	return n, shared.dir
}

// copyShared copies the shared state directory to a new one, for tests that modify it.
func copyShared(t *testing.T) string {
	t.Helper()
	_, src := newTestNSMShared(t)
	dst := filepath.Join(t.TempDir(), "nsm")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(filepath.Dir(shared.dir))
	}
	os.Exit(code)
}

func TestRequestSizeLimit(t *testing.T) {
	n, _ := newTestNSMShared(t)
	// ExtendPCR{16, data}: 27 bytes of overhead, so 4069 bytes of data make exactly 4096.
	req := enc(t, &request.ExtendPCR{Index: 16, Data: make([]byte, 4069)})
	if len(req) != nsm.MaxRequestSize {
		t.Fatalf("request is %d bytes", len(req))
	}
	want := sha384(make([]byte, 48), make([]byte, 4069))
	if got := process(t, n, req); !bytes.Contains(got, want) {
		t.Fatalf("4096-byte ExtendPCR: %x", got)
	}
	req = enc(t, &request.ExtendPCR{Index: 16, Data: make([]byte, 4070)})
	if resp, errno := n.Process(req); errno != syscall.EMSGSIZE || resp != nil {
		t.Fatalf("4097-byte request: %x, %v; want EMSGSIZE", resp, errno)
	}
	if pcr := n.pcrs[16]; !bytes.Equal(pcr[:], want) {
		t.Fatal("the oversized request changed PCR16")
	}
}

// TestPCRStateMachine follows nitro-specs §4.5 and QEMU's error codes.
func TestPCRStateMachine(t *testing.T) {
	n, _ := newTestNSMShared(t)
	describe := func(i uint16) (bool, []byte) {
		t.Helper()
		var r response.Response
		if err := cbor.Unmarshal(process(t, n, enc(t, &request.DescribePCR{Index: i})), &r); err != nil || r.DescribePCR == nil {
			t.Fatalf("DescribePCR(%d): %v %+v", i, err, r)
		}
		return r.DescribePCR.Lock, r.DescribePCR.Data
	}
	call := func(r request.Request) []byte { t.Helper(); return process(t, n, enc(t, r)) }
	zero := make([]byte, 48)

	// Boot: 0..15 locked, 16..31 unlocked; 0,1,2,4 non-zero, every other PCR zero.
	for i := range uint16(NumPCRs) {
		locked, v := describe(i)
		if locked != (i < 16) {
			t.Errorf("PCR%d locked = %v at boot", i, locked)
		}
		if nonZero := !bytes.Equal(v, zero); nonZero != (i <= 2 || i == 4) {
			t.Errorf("PCR%d = %x at boot", i, v)
		}
	}
	if _, v := describe(4); !bytes.Equal(v, sha384(zero, []byte("i-0123456789abcdef0"))) {
		t.Errorf("PCR4 = %x, want SHA-384(0^48 || instance id)", v)
	}

	// Extend: new = SHA-384(old || data), chained.
	v1 := sha384(zero, []byte("a"))
	if got := call(&request.ExtendPCR{Index: 16, Data: []byte("a")}); !bytes.Contains(got, v1) {
		t.Fatalf("first extend: %x", got)
	}
	v2 := sha384(v1, []byte("bc"))
	if got := call(&request.ExtendPCR{Index: 16, Data: []byte("bc")}); !bytes.Contains(got, v2) {
		t.Fatalf("second extend: %x", got)
	}
	if v3 := sha384(zero, []byte{}); !bytes.Contains(call(&request.ExtendPCR{Index: 31, Data: []byte{}}), v3) {
		t.Fatal("empty extend of PCR31")
	}
	if locked, v := describe(16); locked || !bytes.Equal(v, v2) {
		t.Fatalf("PCR16 = %v %x", locked, v)
	}

	// Locked PCRs are read-only; out-of-range indexes are InvalidIndex; nothing changes on error.
	_, pcr0 := describe(0)
	for _, tc := range []struct {
		req  request.Request
		want nsm.ErrorCode
	}{
		{&request.ExtendPCR{Index: 0, Data: []byte("x")}, nsm.ReadOnlyIndex},
		{&request.ExtendPCR{Index: 15, Data: []byte("x")}, nsm.ReadOnlyIndex},
		{&request.ExtendPCR{Index: 32, Data: []byte("x")}, nsm.InvalidIndex},
		{&request.ExtendPCR{Index: 65535, Data: []byte("x")}, nsm.InvalidIndex},
		{&request.LockPCR{Index: 0}, nsm.ReadOnlyIndex},
		{&request.LockPCR{Index: 15}, nsm.ReadOnlyIndex},
		{&request.LockPCR{Index: 32}, nsm.InvalidIndex},
		{&request.DescribePCR{Index: 32}, nsm.InvalidIndex},
		{&request.DescribePCR{Index: 1000}, nsm.InvalidIndex},
		{&request.LockPCRs{Range: 33}, nsm.InvalidIndex},
		{&request.LockPCRs{Range: 65535}, nsm.InvalidIndex},
	} {
		if got := call(tc.req); !bytes.Equal(got, errResp(tc.want)) {
			t.Errorf("%T%+v = %x, want Error(%s)", tc.req, tc.req, got, tc.want)
		}
	}
	if _, v := describe(0); !bytes.Equal(v, pcr0) {
		t.Fatal("PCR0 changed")
	}

	// LockPCR on an unlocked PCR locks it for good.
	if got := call(&request.LockPCR{Index: 16}); !bytes.Equal(got, lockPCRResp) {
		t.Fatalf("LockPCR(16) = %x", got)
	}
	if locked, v := describe(16); !locked || !bytes.Equal(v, v2) {
		t.Fatalf("PCR16 after lock = %v %x", locked, v)
	}
	if got := call(&request.ExtendPCR{Index: 16, Data: []byte("x")}); !bytes.Equal(got, errResp(nsm.ReadOnlyIndex)) {
		t.Fatalf("extend locked PCR16 = %x", got)
	}
	if got := call(&request.LockPCR{Index: 16}); !bytes.Equal(got, errResp(nsm.ReadOnlyIndex)) {
		t.Fatalf("relock PCR16 = %x", got)
	}

	// LockPCRs locks [0, range): 0 is a no-op, 20 locks up to 19, 32 locks all.
	if got := call(&request.LockPCRs{Range: 0}); !bytes.Equal(got, lockPCRsResp) {
		t.Fatalf("LockPCRs(0) = %x", got)
	}
	if locked, _ := describe(17); locked {
		t.Fatal("LockPCRs(0) locked PCR17")
	}
	call(&request.LockPCRs{Range: 20})
	if l19, _ := describe(19); !l19 {
		t.Fatal("PCR19 not locked by LockPCRs(20)")
	}
	if l20, _ := describe(20); l20 {
		t.Fatal("PCR20 locked by LockPCRs(20)")
	}
	if got := call(&request.LockPCRs{Range: 20}); !bytes.Equal(got, lockPCRsResp) {
		t.Fatalf("LockPCRs over locked PCRs = %x", got)
	}
	if got := call(&request.LockPCRs{Range: 32}); !bytes.Equal(got, lockPCRsResp) {
		t.Fatalf("LockPCRs(32) = %x", got)
	}
	var r response.Response
	if err := cbor.Unmarshal(call(&request.DescribeNSM{}), &r); err != nil || len(r.DescribeNSM.LockedPCRs) != 32 {
		t.Fatalf("DescribeNSM after LockPCRs(32): %v %+v", err, r.DescribeNSM)
	}
	if got := call(&request.ExtendPCR{Index: 31, Data: []byte("x")}); !bytes.Equal(got, errResp(nsm.ReadOnlyIndex)) {
		t.Fatalf("extend after LockPCRs(32) = %x", got)
	}
}

func TestConfig(t *testing.T) {
	pcr := func(b byte) []byte { return bytes.Repeat([]byte{b}, 48) }
	n, dir := newTestNSM(t, Config{
		ModuleID: "i-0aaaaaaaaaaaaaaaa-enc0bbbbbbbbbbbbbbb",
		Region:   "eu-west-2",
		PCRs:     map[uint16][]byte{0: pcr(1), 1: pcr(2), 2: pcr(3), 3: pcr(4), 4: pcr(5), 8: pcr(9)},
	})
	for i, b := range map[int]byte{0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 8: 9} {
		if !bytes.Equal(n.pcrs[i][:], pcr(b)) {
			t.Errorf("PCR%d = %x", i, n.pcrs[i])
		}
	}
	for _, i := range []int{5, 6, 7, 9, 15, 16, 31} {
		if n.pcrs[i] != [48]byte{} {
			t.Errorf("PCR%d = %x", i, n.pcrs[i])
		}
	}
	if n.st.ModuleID != "i-0aaaaaaaaaaaaaaaa-enc0bbbbbbbbbbbbbbb" || n.st.Region != "eu-west-2" {
		t.Fatalf("state %+v", n.st)
	}
	cfgFile, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || !bytes.Contains(cfgFile, []byte(`"region": "eu-west-2"`)) {
		t.Fatalf("config.json: %s %v", cfgFile, err)
	}
	if cn := n.signer.cas[levelRegional].cert.Subject.CommonName; !strings.HasSuffix(cn, ".eu-west-2.mock.nitro-enclaves") {
		t.Fatalf("regional CN %s", cn)
	}

	// Defaults: PCR0/1/2 the same for every mock and non-zero, PCR3/8 zero, a random module id.
	resolve := func(cfg Config) *state {
		t.Helper()
		st, err := cfg.resolve()
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	a, b := resolve(Config{}), resolve(Config{})
	if a.PCRs[0] != b.PCRs[0] || a.PCRs[0] == [48]byte{} || a.PCRs[1] == a.PCRs[0] || a.PCRs[2] == [48]byte{} ||
		a.PCRs[3] != [48]byte{} || a.PCRs[8] != [48]byte{} || a.Region != "us-east-1" {
		t.Fatal("default PCRs")
	}
	if a.ModuleID == b.ModuleID || !moduleIDPattern.MatchString(a.ModuleID) {
		t.Fatalf("module ids %s %s", a.ModuleID, b.ModuleID)
	}
	inst, _ := splitModuleID(a.ModuleID)
	if a.PCRs[4] != extendFromZero([]byte(inst)) || a.PCRs[4] == b.PCRs[4] {
		t.Fatal("PCR4 does not follow the module id")
	}

	// Debug mode: PCR0/1/2/8 zero, PCR3/4 may be set.
	d := resolve(Config{Debug: true, PCRs: map[uint16][]byte{3: pcr(7)}})
	for _, i := range []uint16{0, 1, 2, 8} {
		if d.PCRs[i] != [48]byte{} {
			t.Errorf("debug PCR%d = %x", i, d.PCRs[i])
		}
	}
	if d.PCRs[3] != [48]byte(pcr(7)) || d.PCRs[4] == [48]byte{} {
		t.Error("debug PCR3/PCR4")
	}

	for name, cfg := range map[string]Config{
		"module id":        {ModuleID: "i-123-enc456"},
		"module id upper":  {ModuleID: "i-0123456789ABCDEF0-enc0123456789abcdef"},
		"region":           {Region: "Mars"},
		"PCR5":             {PCRs: map[uint16][]byte{5: pcr(1)}},
		"PCR short":        {PCRs: map[uint16][]byte{0: pcr(1)[:47]}},
		"debug PCR0":       {Debug: true, PCRs: map[uint16][]byte{0: pcr(1)}},
		"debug PCR8":       {Debug: true, PCRs: map[uint16][]byte{8: pcr(1)}},
		"PCR16 configured": {PCRs: map[uint16][]byte{16: pcr(1)}},
	} {
		dir := filepath.Join(t.TempDir(), "x")
		if err := Init(dir, cfg); err == nil {
			t.Errorf("%s: Init accepted %+v", name, cfg)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s: a failed Init left %s", name, dir)
		}
	}
}

func TestInitOpen(t *testing.T) {
	dir := copyShared(t)
	if err := Init(dir, Config{}); err == nil {
		t.Fatal("Init over an initialised directory")
	}
	for _, f := range []string{"root.key", "regional.key", "zonal.key", "instance.key", "config.json"} {
		st, err := os.Stat(filepath.Join(shared.dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, st.Mode(), err)
		}
	}
	if st, err := os.Stat(shared.dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v %v", st.Mode(), err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root.pem"))
	n, err2 := Open(dir)
	if err != nil || err2 != nil || !bytes.Equal(rootPEM, n.RootPEM()) {
		t.Fatalf("root.pem differs from RootPEM: %v %v", err, err2)
	}

	// A failed Init removes what it wrote and nothing else.
	partial := t.TempDir()
	if err := os.WriteFile(filepath.Join(partial, "zonal.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Init(partial, Config{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Init over a stray zonal.key = %v", err)
	}
	if ents, _ := os.ReadDir(partial); len(ents) != 1 || ents[0].Name() != "zonal.key" {
		t.Fatalf("a failed Init left %v", ents)
	}

	if _, err := Open(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing) = %v", err)
	}

	// A damaged state is refused.
	_, other := newTestNSM(t, Config{})
	damage := map[string]func(dir string){
		"swapped keys": func(dir string) {
			a, _ := os.ReadFile(filepath.Join(dir, "zonal.key"))
			b, _ := os.ReadFile(filepath.Join(dir, "regional.key"))
			os.WriteFile(filepath.Join(dir, "zonal.key"), b, 0o600)
			os.WriteFile(filepath.Join(dir, "regional.key"), a, 0o600)
		},
		"foreign chain": func(dir string) {
			b, _ := os.ReadFile(filepath.Join(other, "zonal.pem"))
			k, _ := os.ReadFile(filepath.Join(other, "zonal.key"))
			os.WriteFile(filepath.Join(dir, "zonal.pem"), b, 0o600)
			os.WriteFile(filepath.Join(dir, "zonal.key"), k, 0o600)
		},
		"missing key":     func(dir string) { os.Remove(filepath.Join(dir, "instance.key")) },
		"two PEM blocks":  func(dir string) { appendFile(dir, "root.pem", "root.pem") },
		"bad config":      func(dir string) { os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"module_id": 1}`), 0o600) },
		"unknown field":   func(dir string) { rewriteConfig(t, dir, `"debug"`, `"extra": 1, "debug"`) },
		"short PCR":       func(dir string) { rewriteConfig(t, dir, `"0": "`, `"0": "00`) },
		"missing PCR":     func(dir string) { rewriteConfig(t, dir, `"8":`, `"9":`) },
		"trailing config": func(dir string) { appendFile(dir, "config.json", "config.json") },
		"bad faults":      func(dir string) { os.WriteFile(filepath.Join(dir, "faults.json"), []byte(`{"Bogus": {}}`), 0o600) },
	}
	for name, f := range damage {
		dir := copyShared(t)
		if _, err := Open(dir); err != nil {
			t.Fatalf("%s: the pristine copy does not open: %v", name, err)
		}
		f(dir)
		if _, err := Open(dir); err == nil {
			t.Errorf("%s: Open accepted the state", name)
		}
	}
}

func appendFile(dir, dst, src string) {
	b, _ := os.ReadFile(filepath.Join(dir, src))
	f, _ := os.OpenFile(filepath.Join(dir, dst), os.O_APPEND|os.O_WRONLY, 0)
	f.Write(b)
	f.Close()
}

func rewriteConfig(t *testing.T, dir, old, new string) {
	path := filepath.Join(dir, "config.json")
	b, _ := os.ReadFile(path)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("config.json has no %s: %s", old, b)
	}
	os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o600)
}
