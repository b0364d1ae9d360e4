package pcr

import (
	"bytes"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AWS's published examples (Nitro Enclaves user guide, "Where to get an enclave's
// measurements"), also asserted by tkhq/qos.
func TestAWSExamples(t *testing.T) {
	pcr3, err := RoleARN("arn:aws:iam::123456789012:role/Webserver")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Hex(pcr3), "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6"; got != want {
		t.Errorf("PCR3 = %s, want %s", got, want)
	}
	pcr4, err := InstanceID("i-1234567890abcdef0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Hex(pcr4), "08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0"; got != want {
		t.Errorf("PCR4 = %s, want %s", got, want)
	}
}

// PCR4 of every genuine AWS-signed document equals InstanceID(the instance id in module_id).
func TestInstanceIDRealDocuments(t *testing.T) {
	files, err := filepath.Glob("../testdata/nitro/real/*.cbor")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "badsig") {
			continue // negative fixtures: not genuine documents
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var envelope []cbor.RawMessage
		if err := cbor.Unmarshal(raw, &envelope); err != nil || len(envelope) != 4 {
			t.Fatalf("%s: COSE_Sign1: %v (%d items)", f, err, len(envelope))
		}
		var payload []byte
		if err := cbor.Unmarshal(envelope[2], &payload); err != nil {
			t.Fatalf("%s: payload: %v", f, err)
		}
		var doc struct {
			ModuleID string         `cbor:"module_id"`
			PCRs     map[int][]byte `cbor:"pcrs"`
		}
		if err := cbor.Unmarshal(payload, &doc); err != nil {
			t.Fatalf("%s: document: %v", f, err)
		}
		id, _, ok := strings.Cut(doc.ModuleID, "-enc")
		if !ok {
			t.Fatalf("%s: module_id %q has no -enc", f, doc.ModuleID)
		}
		want, err := InstanceID(id)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !bytes.Equal(doc.PCRs[4], want) {
			t.Errorf("%s: PCR4 %x, InstanceID(%q) = %x", f, doc.PCRs[4], id, want)
		}
		checked++
	}
	if checked != 34 {
		t.Fatalf("checked %d genuine documents, want 34", checked)
	}
}

// Expected values computed with openssl / Python hashlib, not with this package.
func TestMeasure(t *testing.T) {
	if got, want := Hex(Measure([]byte("hello"))), "1d9b87caf048435fc39a4a0a8e4e864af9c9a584b3a3b436193bb8b60125698089f57479f370637f16fcce8a1852d1bc"; got != want {
		t.Errorf("Measure(hello) = %s, want %s", got, want)
	}
	r, err := MeasureReader(strings.NewReader("hello"))
	if err != nil || Hex(r) != Hex(Measure([]byte("hello"))) {
		t.Errorf("MeasureReader = %x, %v", r, err)
	}
	// PCR2 of a single-ramdisk image (empty input), as real single-ramdisk enclaves report.
	if got, want := Hex(Measure(nil)), "21b9efbc184807662e966d34f390821309eeac6802309798826296bf3e8bec7c10edb30948c90ba67310f7b964fc500a"; got != want {
		t.Errorf("Measure(empty) = %s, want %s", got, want)
	}
}

func TestSigningCertificate(t *testing.T) {
	pemBytes, err := os.ReadFile("../testdata/eif/inputs/signing-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	// openssl x509 -outform DER | sha384, then extended from zero with openssl dgst.
	const want = "4f5aafa4322c6ed9ecd2fb139a0eeb99b457f571047fb217e5cb0096fa870e240f5d31c96bc68c45c2ca1f705fddc632"
	got, err := SigningCertificate(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if Hex(got) != want {
		t.Errorf("PCR8(PEM) = %x, want %s", got, want)
	}
	block, _ := pem.Decode(pemBytes)
	got, err = SigningCertificate(block.Bytes)
	if err != nil || Hex(got) != want {
		t.Errorf("PCR8(DER) = %x, %v; want %s", got, err, want)
	}

	bad := map[string][]byte{
		"garbage":        []byte("not a certificate"),
		"trailing data":  append(append([]byte{}, pemBytes...), []byte("junk")...),
		"leading data":   append([]byte("junk\n"), pemBytes...),
		"two blocks":     append(append([]byte{}, pemBytes...), pemBytes...),
		"wrong type":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: block.Bytes}),
		"truncated DER":  block.Bytes[:len(block.Bytes)-1],
		"PEM of garbage": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x00}}),
	}
	for name, in := range bad {
		if _, err := SigningCertificate(in); !errors.Is(err, ErrCertificate) {
			t.Errorf("%s: err = %v, want ErrCertificate", name, err)
		}
	}
	// Whitespace around the block is fine (files end with a newline).
	if _, err := SigningCertificate(append([]byte("\n"), append(pemBytes, '\n')...)); err != nil {
		t.Errorf("whitespace around PEM: %v", err)
	}
}

func TestValidation(t *testing.T) {
	for _, arn := range []string{
		"",
		"arn:aws:iam::123456789012:instance-profile/Webserver",
		"arn:aws:iam::12345678901:role/Short",
		"arn:aws:iam::123456789012:role/",
		"arn:aws:iam::123456789012:role/With Space",
		" arn:aws:iam::123456789012:role/Webserver",
		"arn:aws:sts::123456789012:assumed-role/Webserver/i-1234567890abcdef0",
		"arn:aws:iam::123456789012:role/" + strings.Repeat("r", 513),
	} {
		if _, err := RoleARN(arn); !errors.Is(err, ErrRoleARN) {
			t.Errorf("RoleARN(%q) err = %v, want ErrRoleARN", arn, err)
		}
	}
	for _, arn := range []string{
		"arn:aws:iam::123456789012:role/path/to/Role",
		"arn:aws-cn:iam::123456789012:role/Webserver",
		"arn:aws-us-gov:iam::123456789012:role/Webserver",
		"arn:aws:iam::123456789012:role/" + strings.Repeat("r", 512),
	} {
		if _, err := RoleARN(arn); err != nil {
			t.Errorf("RoleARN(%q): %v", arn, err)
		}
	}
	for _, id := range []string{"", "i-1234567890ABCDEF0", "i-1234567890abcdef", "1234567890abcdef0", "i-1234567890abcdef0\n", "i-0ec0e572c8263d8ff-enc018"} {
		if _, err := InstanceID(id); !errors.Is(err, ErrInstanceID) {
			t.Errorf("InstanceID(%q) err = %v, want ErrInstanceID", id, err)
		}
	}
	if _, err := InstanceID("i-12345678"); err != nil {
		t.Errorf("short-form instance id: %v", err)
	}
}

func TestExtend(t *testing.T) {
	zero := make([]byte, Size)
	v, err := Extend(zero, []byte("i-1234567890abcdef0"))
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, "08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0")
	if !bytes.Equal(v, want) {
		t.Errorf("Extend from zero = %x", v)
	}
	// A second extension chains from the first value (NSM ExtendPCR semantics).
	v2, err := Extend(v, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Python: hashlib.sha384(v + b"x")
	if want := "aa7899e34d246bc8ab5fa69957a28f79743b44ceeaeba87e7fe2a1023610ae1e8824c8a064b6281e0e50d6eb4149594d"; Hex(v2) != want {
		t.Errorf("second extend = %x, want %s", v2, want)
	}
	if _, err := Extend(zero[:47], nil); err == nil {
		t.Error("Extend accepted a 47-byte old value")
	}
}

func TestParseHex(t *testing.T) {
	h := strings.Repeat("aB", Size)
	v, err := ParseHex(h)
	if err != nil || len(v) != Size {
		t.Fatalf("ParseHex: %v", err)
	}
	for _, s := range []string{"", "zz", strings.Repeat("ab", Size-1), strings.Repeat("ab", Size+1)} {
		if _, err := ParseHex(s); err == nil {
			t.Errorf("ParseHex(%q) accepted", s)
		}
	}
}
