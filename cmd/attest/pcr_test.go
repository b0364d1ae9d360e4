package main

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestPCR(t *testing.T) {
	code, out, errOut := attestRun(t, "pcr", "--json", "--role-arn", "arn:aws:iam::123456789012:role/Webserver",
		"--instance-id", "i-1234567890abcdef0", "--signing-cert", eifInputs+"signing-cert.pem", "--input", eifInputs+"kernel.bin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile(eifInputs + "kernel.bin")
	inner := sha512.Sum384(kernel)
	input := sha512.Sum384(append(make([]byte, 48), inner[:]...))
	want := map[string]string{
		// AWS's published examples.
		"PCR3": "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6",
		"PCR4": "08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0",
		"PCR8": eifVectorPCR8,
		"PCR":  hex.EncodeToString(input[:]),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	code, out, _ = attestRun(t, "pcr", "--instance-id", "i-1234567890abcdef0")
	if code != 0 || !strings.HasPrefix(out, "PCR4  "+want["PCR4"]) {
		t.Errorf("readable: exit %d: %s", code, out)
	}
	for _, args := range [][]string{
		{"pcr"},
		{"pcr", "--instance-id", "i-XYZ"},
		{"pcr", "--role-arn", "arn:aws:iam::123456789012:instance-profile/Webserver"},
		{"pcr", "extra"},
	} {
		if code, _, _ := attestRun(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := attestRun(t, "pcr", "--signing-cert", eifInputs+"kernel.bin"); code != 1 {
		t.Errorf("not a certificate: exit %d, want 1", code)
	}
}
