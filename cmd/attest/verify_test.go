package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
)

const (
	realDocs    = "../../testdata/nitro/real/"
	prodDoc     = realDocs + "bedrock-20250827-prod.cbor" // nonce "some nonce", user_data, public_key
	prodPCR0    = "99b9dabd028fb12b46a2217555c12efd6703aa19f48ea87908f8e5b281ae078a0b227a6f5093c4a0f8811da4d33170c5"
	prodPCR1    = "4b4d5b3661b3efc12920900c80e126e4ce783c522de6c02a2a5bf7af3a2b9327b86776f188e4be1c1c404a129dbda493"
	prodTime    = "2025-08-27T17:43:35.981Z"
	debugDoc    = realDocs + "evervault-20221012-debug.cbor"
	badsigDoc   = realDocs + "veracruz-20221109-prod-badsig.cbor"
	otherPCR    = "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001"
	awsRootFile = "../../testdata/nitro/aws_nitro_root_g1.pem"
)

func runAttest(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// wantExit asserts the exit code and, for failures, a one-line stderr that
// contains substr.
func wantExit(t *testing.T, want int, substr string, args ...string) string {
	t.Helper()
	code, out, errOut := runAttest(t, args...)
	if code != want {
		t.Fatalf("attest %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), code, want, errOut)
	}
	if want == 1 && strings.Count(errOut, "\n") != 1 {
		t.Fatalf("rejection is not one line: %q", errOut)
	}
	if substr != "" && !strings.Contains(errOut, substr) {
		t.Fatalf("stderr %q does not contain %q", errOut, substr)
	}
	return out
}

func TestVerifyRealDocument(t *testing.T) {
	out := wantExit(t, 0, "", "verify", "--at-doc-time", "--any-pcrs", prodDoc)
	for _, want := range []string{"valid attestation document", "i-05ebc0d9607fc96a5-enc0198e8c6ffe03439", prodTime, "PCR0         " + prodPCR0,
		"nonce        10 bytes 736f6d65206e6f6e6365", "debug mode   no", "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestVerifyJSON(t *testing.T) {
	out := wantExit(t, 0, "", "verify", "--json", "--at-doc-time", "--pcr", "0="+prodPCR0, prodDoc)
	var j struct {
		ModuleID  string            `json:"module_id"`
		Timestamp string            `json:"timestamp"`
		Digest    string            `json:"digest"`
		PCRs      map[string]string `json:"pcrs"`
		Chain     []struct {
			Subject   string `json:"subject"`
			Issuer    string `json:"issuer"`
			NotBefore string `json:"not_before"`
			NotAfter  string `json:"not_after"`
			SHA256    string `json:"sha256"`
		} `json:"chain"`
		PublicKey  *string `json:"public_key"` // hex, like every byte string
		UserData   *string `json:"user_data"`
		Nonce      *string `json:"nonce"`
		Debug      *bool   `json:"debug"`
		VerifiedAt string  `json:"verified_at"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if j.ModuleID != "i-05ebc0d9607fc96a5-enc0198e8c6ffe03439" || j.Timestamp != prodTime || j.Digest != "SHA384" || j.VerifiedAt != prodTime {
		t.Errorf("document fields: %+v", j)
	}
	if len(j.PCRs) != 16 || j.PCRs["0"] != prodPCR0 || j.PCRs["1"] != prodPCR1 {
		t.Errorf("pcrs %v", j.PCRs)
	}
	if j.Nonce == nil || *j.Nonce != hex.EncodeToString([]byte("some nonce")) ||
		j.UserData == nil || *j.UserData != hex.EncodeToString([]byte("some user data")) || j.PublicKey == nil || !isHexString(*j.PublicKey) {
		t.Errorf("aux fields %v %v %v", j.Nonce, j.UserData, j.PublicKey)
	}
	if j.Debug == nil || *j.Debug {
		t.Errorf("debug %v", j.Debug)
	}
	if len(j.Chain) != 5 || j.Chain[4].SHA256 != attestation.AWSRootSHA256 || j.Chain[0].NotAfter != "2025-08-27T20:43:35Z" ||
		j.Chain[0].Issuer != j.Chain[1].Subject {
		t.Errorf("chain %+v", j.Chain)
	}
	// PCR keys come out in numeric order.
	if strings.Index(out, `"2":`) > strings.Index(out, `"10":`) {
		t.Error("pcrs not in numeric order")
	}
	// Absent fields are null.
	out = wantExit(t, 0, "", "verify", "--json", "--at-doc-time", "--any-pcrs", realDocs+"bedrock-20250829-prod.cbor")
	if !strings.Contains(out, `"nonce": null`) || !strings.Contains(out, `"user_data": null`) {
		t.Errorf("absent fields not null:\n%s", out)
	}
}

func TestVerifyRejections(t *testing.T) {
	ts := time.Date(2025, 8, 27, 17, 43, 35, 981e6, time.UTC)
	cases := []struct {
		name string
		args []string
		sub  string
	}{
		{"expired today", []string{"--any-pcrs", prodDoc}, "validity check failed"},
		{"debug", []string{"--at-doc-time", "--any-pcrs", debugDoc}, "debug check failed"},
		{"bad signature", []string{"--at-doc-time", "--any-pcrs", badsigDoc}, "signature check failed"},
		{"PCR0 differs", []string{"--at-doc-time", "--pcr", "0=" + otherPCR, prodDoc}, "pcr-policy check failed: PCR0"},
		{"PCR16 absent", []string{"--at-doc-time", "--pcr", "16=" + otherPCR, prodDoc}, "PCR16 is required"},
		{"nonce differs", []string{"--at-doc-time", "--any-pcrs", "--nonce", "00", prodDoc}, "nonce check failed"},
		{"nonce absent", []string{"--at-doc-time", "--any-pcrs", "--nonce", "00", realDocs + "bedrock-20250829-prod.cbor"}, "no nonce"},
		{"too old", []string{"--at", ts.Add(6 * time.Minute).Format(time.RFC3339), "--any-pcrs", prodDoc}, "freshness check failed"},
		{"too old for --max-age", []string{"--at", ts.Add(40 * time.Second).Format(time.RFC3339), "--max-age", "30s", "--any-pcrs", prodDoc}, "freshness"},
		{"not a document", []string{"--any-pcrs", "verify.go"}, "not valid hex or base64"},
		{"garbage COSE", []string{"--any-pcrs", "-"}, "cbor check failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			verifyStdin = bytes.NewReader([]byte{0x84, 0x44})
			defer func() { verifyStdin = os.Stdin }()
			wantExit(t, 1, c.sub, append([]string{"verify"}, c.args...)...)
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	ts := time.Date(2025, 8, 27, 17, 43, 35, 981e6, time.UTC)
	doc, err := os.ReadFile(prodDoc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hexFile := write("doc.hex", []byte(hex.EncodeToString(doc)+"\n"))
	b64 := base64.StdEncoding.EncodeToString(doc)
	var wrapped strings.Builder
	for i := 0; i < len(b64); i += 76 {
		wrapped.WriteString(b64[i:min(i+76, len(b64))] + "\n")
	}
	b64File := write("doc.b64", []byte(wrapped.String()))
	urlFile := write("doc.b64url", []byte(base64.RawURLEncoding.EncodeToString(doc)))
	taggedFile := write("doc.tagged", append([]byte{0xd2}, doc...))

	cases := []struct {
		name  string
		args  []string
		stdin []byte
	}{
		{"pinned PCR0 and PCR1", []string{"--at-doc-time", "--pcr", "0=" + prodPCR0, "--pcr", "1=" + prodPCR1, prodDoc}, nil},
		{"one of two PCR0 values", []string{"--at-doc-time", "--pcr", "0=" + otherPCR, "--pcr", "0=" + strings.ToUpper(prodPCR0), prodDoc}, nil},
		{"flags after DOC", []string{prodDoc, "--at-doc-time", "--any-pcrs"}, nil},
		{"--at", []string{"--at", ts.Add(2 * time.Minute).Format(time.RFC3339), "--any-pcrs", prodDoc}, nil},
		{"--max-age", []string{"--at", ts.Add(time.Hour).Format(time.RFC3339), "--max-age", "2h", "--any-pcrs", prodDoc}, nil},
		{"--max-age off", []string{"--at", ts.Add(time.Hour).Format(time.RFC3339), "--max-age", "off", "--any-pcrs", prodDoc}, nil},
		{"nonce", []string{"--at-doc-time", "--any-pcrs", "--nonce", hex.EncodeToString([]byte("some nonce")), prodDoc}, nil},
		{"--root", []string{"--at-doc-time", "--any-pcrs", "--root", awsRootFile, prodDoc}, nil},
		{"debug allowed", []string{"--at-doc-time", "--any-pcrs", "--allow-debug", debugDoc}, nil},
		{"hex text", []string{"--at-doc-time", "--any-pcrs", hexFile}, nil},
		{"base64 text wrapped", []string{"--at-doc-time", "--any-pcrs", b64File}, nil},
		{"base64url text", []string{"--at-doc-time", "--any-pcrs", urlFile}, nil},
		{"tag 18", []string{"--at-doc-time", "--any-pcrs", taggedFile}, nil},
		{"stdin raw", []string{"--at-doc-time", "--any-pcrs", "-"}, doc},
		{"stdin base64", []string{"--at-doc-time", "--any-pcrs", "-"}, []byte(b64)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.stdin != nil {
				verifyStdin = bytes.NewReader(c.stdin)
				defer func() { verifyStdin = os.Stdin }()
			}
			wantExit(t, 0, "", append([]string{"verify"}, c.args...)...)
		})
	}
	out := wantExit(t, 0, "", "verify", "--at-doc-time", "--any-pcrs", "--allow-debug", debugDoc)
	if !strings.Contains(out, "debug mode   YES") {
		t.Errorf("debug not shown:\n%s", out)
	}
}

func TestVerifyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := writePolicy(t, "not a certificate")
	cases := []struct {
		name string
		args []string
		sub  string
	}{
		{"no PCR policy", []string{prodDoc}, "--any-pcrs"},
		{"no DOC", []string{"--any-pcrs"}, "exactly one DOC"},
		{"two DOCs", []string{"--any-pcrs", prodDoc, prodDoc}, "exactly one DOC"},
		{"missing file", []string{"--any-pcrs", filepath.Join(dir, "absent")}, "no such file"},
		{"any-pcrs with pcr", []string{"--any-pcrs", "--pcr", "0=" + prodPCR0, prodDoc}, "cannot be combined"},
		{"pcr without =", []string{"--pcr", "0", prodDoc}, "N=HEX"},
		{"pcr index 32", []string{"--pcr", "32=" + prodPCR0, prodDoc}, "0..31"},
		{"pcr index 01", []string{"--pcr", "01=" + prodPCR0, prodDoc}, "0..31"},
		{"pcr short", []string{"--pcr", "0=abcd", prodDoc}, "48"},
		{"pcr not hex", []string{"--pcr", "0=xyz", prodDoc}, "not hex"},
		{"bad --at", []string{"--any-pcrs", "--at", "yesterday", prodDoc}, "RFC 3339"},
		{"--at with --at-doc-time", []string{"--any-pcrs", "--at", prodTime, "--at-doc-time", prodDoc}, "mutually exclusive"},
		{"bad nonce", []string{"--any-pcrs", "--nonce", "xyz", prodDoc}, "--nonce"},
		{"zero max-age", []string{"--any-pcrs", "--max-age", "0s", prodDoc}, "positive duration"},
		{"negative max-age", []string{"--any-pcrs", "--max-age", "-1m", prodDoc}, "positive duration"},
		{"missing policy file", []string{"--pcrs-from", filepath.Join(dir, "absent.json"), prodDoc}, "--pcrs-from"},
		{"unknown flag", []string{"--any-pcrs", "--frobnicate", prodDoc}, "frobnicate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantExit(t, 2, c.sub, append([]string{"verify"}, c.args...)...)
		})
	}
	if code, out, errOut := runAttest(t, "verify", "-h"); code != 0 || !strings.Contains(out, "usage: attest verify") || errOut != "" {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A --root that was read and is not a certificate is rejected (exit 1), not a usage error.
	wantExit(t, 1, "--root", "verify", "--any-pcrs", "--root", notPEM, prodDoc)
}

func writePolicy(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPCRPolicyFile(t *testing.T) {
	good := writePolicy(t, `{"pcrs": {"0": ["`+otherPCR+`", "`+prodPCR0+`"], "1": ["`+prodPCR1+`"]}}`)
	p, err := loadPCRPolicyFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || len(p[0]) != 2 || hex.EncodeToString(p[0][1]) != prodPCR0 || hex.EncodeToString(p[1][0]) != prodPCR1 {
		t.Fatalf("policy %x", p)
	}
	wantExit(t, 0, "", "verify", "--at-doc-time", "--pcrs-from", good, prodDoc)
	// File and flags combine: --pcr adds other PCRs to the file's policy.
	wantExit(t, 1, "PCR2", "verify", "--at-doc-time", "--pcrs-from", good, "--pcr", "2="+otherPCR, prodDoc)
	// ... but never names one of the file's PCRs again: that would widen the policy.
	wantExit(t, 2, "PCR0 is named by both --pcrs-from and --pcr", "verify", "--at-doc-time", "--pcrs-from", writePolicy(t, `{"pcrs": {"0": ["`+otherPCR+`"]}}`), "--pcr", "0="+prodPCR0, prodDoc)
	wrong := writePolicy(t, `{"pcrs": {"0": ["`+otherPCR+`"]}}`)
	wantExit(t, 1, "pcr-policy check failed", "verify", "--at-doc-time", "--pcrs-from", wrong, prodDoc)

	for name, content := range map[string]string{
		"empty":             ``,
		"not an object":     `[]`,
		"no pcrs":           `{}`,
		"empty pcrs":        `{"pcrs": {}}`,
		"unknown key":       `{"pcrs": {"0": ["` + prodPCR0 + `"]}, "name": "x"}`,
		"duplicate pcrs":    `{"pcrs": {"0": ["` + prodPCR0 + `"]}, "pcrs": {"1": ["` + prodPCR1 + `"]}}`,
		"duplicate index":   `{"pcrs": {"0": ["` + prodPCR0 + `"], "0": ["` + otherPCR + `"]}}`,
		"index 32":          `{"pcrs": {"32": ["` + prodPCR0 + `"]}}`,
		"index -1":          `{"pcrs": {"-1": ["` + prodPCR0 + `"]}}`,
		"index 00":          `{"pcrs": {"00": ["` + prodPCR0 + `"]}}`,
		"no values":         `{"pcrs": {"0": []}}`,
		"value not a list":  `{"pcrs": {"0": "` + prodPCR0 + `"}}`,
		"value short":       `{"pcrs": {"0": ["abcd"]}}`,
		"value not hex":     `{"pcrs": {"0": ["` + strings.Repeat("zz", 48) + `"]}}`,
		"value a number":    `{"pcrs": {"0": [1]}}`,
		"trailing data":     `{"pcrs": {"0": ["` + prodPCR0 + `"]}} {}`,
		"truncated":         `{"pcrs": {"0": ["` + prodPCR0 + `"]}`,
		"null pcrs":         `{"pcrs": null}`,
		"trailing garbage ": `{"pcrs": {"0": ["` + prodPCR0 + `"]}}x`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := loadPCRPolicyFile(writePolicy(t, content)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestPolicyFromEIFDescribe: the file `attest eif describe --policy` writes
// is what --pcrs-from reads.
func TestPolicyFromEIFDescribe(t *testing.T) {
	out := filepath.Join(t.TempDir(), "policy.json")
	if code, _, errOut := runAttest(t, "eif", "describe", "../../testdata/eif/synthetic-unsigned.eif", "--policy", out); code != 0 {
		t.Fatalf("eif describe --policy: exit %d: %s", code, errOut)
	}
	p, err := loadPCRPolicyFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 2} {
		if len(p[i]) != 1 || len(p[i][0]) != 48 {
			t.Fatalf("PCR%d: %x", i, p[i])
		}
	}
	// A real document does not match a synthetic image.
	wantExit(t, 1, "pcr-policy check failed: PCR0", "verify", "--at-doc-time", "--pcrs-from", out, prodDoc)
}
