package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/eif"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
)

const (
	eifVector = "../../testdata/eif/synthetic-unsigned.eif"
	eifInputs = "../../testdata/eif/inputs/"
	// From testdata/eif/EXPECTED.md.
	eifVectorPCR0 = "926d2bb27695e7baee86e2e0909c7e5309af449de99c7d9b90c2faf46ac79bd6296abba1a368986e076d8b8a2b222476"
	eifVectorPCR1 = "5578ee48934838185b9c1b719d19612f853a701c6e39115571e9244d96b8611ae55ac69bf6bad60beb9963b9d3ff68d1"
	eifVectorPCR2 = "708d0db9748df9037bf2a5e5b9a82c6d60d8661c6f301152b5bc9ff22d62820e91b33bc5a72f04a93869e82c6bfbe604"
	// PCR8 of inputs/signing-cert.pem, computed with openssl.
	eifVectorPCR8 = "4f5aafa4322c6ed9ecd2fb139a0eeb99b457f571047fb217e5cb0096fa870e240f5d31c96bc68c45c2ca1f705fddc632"
)

// attestRun runs the attest command line and returns exit code, stdout and stderr.
func attestRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestEIFDescribe(t *testing.T) {
	code, out, errOut := attestRun(t, "eif", "describe", eifVector)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"PCR0          " + eifVectorPCR0, "PCR1          " + eifVectorPCR1, "PCR2          " + eifVectorPCR2, "CRC 3a8129e7 ok", "signature     none"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	policy := filepath.Join(t.TempDir(), "policy.json")
	code, out, errOut = attestRun(t, "eif", "describe", "--json", eifVector, "--policy", policy)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var d struct {
		EifVersion   int
		Measurements map[string]string
		IsSigned     bool
		CheckCRC     bool
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	if d.EifVersion != 4 || d.IsSigned || !d.CheckCRC || d.Measurements["PCR0"] != eifVectorPCR0 || d.Measurements["HashAlgorithm"] != "Sha384 { ... }" {
		t.Errorf("describe JSON: %+v", d)
	}
	var p struct{ PCRs map[string][]string }
	b, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.PCRs) != 3 || p.PCRs["0"][0] != eifVectorPCR0 || p.PCRs["1"][0] != eifVectorPCR1 || p.PCRs["2"][0] != eifVectorPCR2 {
		t.Errorf("policy: %s", b)
	}
}

func TestEIFBuild(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "vector.eif")
	base := []string{"eif", "build", "--kernel", eifInputs + "kernel.bin", "--cmdline-file", eifInputs + "cmdline.txt",
		"--ramdisk", eifInputs + "ramdisk0.bin", "--ramdisk", eifInputs + "ramdisk1.bin"}

	// With the vector's metadata the CLI writes the vector.
	code, stdout, errOut := attestRun(t, append(base, "--metadata", eifInputs+"metadata.json", "--output", out, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(eifVector)
	if !bytes.Equal(got, want) {
		t.Error("attest eif build did not reproduce the vector")
	}
	if !strings.Contains(stdout, `"PCR0": "`+eifVectorPCR0+`"`) {
		t.Errorf("build output: %s", stdout)
	}

	// Signed: PCR8 from the certificate, PCR0-2 unchanged.
	signed := filepath.Join(dir, "signed.eif")
	code, stdout, errOut = attestRun(t, append(base, "--signing-key", eifInputs+"signing-key.pem", "--signing-cert", eifInputs+"signing-cert.pem", "--output", signed)...)
	if code != 0 {
		t.Fatalf("signed: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"PCR0          " + eifVectorPCR0, "PCR8          " + eifVectorPCR8, "ES384, verified", "(valid now)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("signed build output lacks %q:\n%s", want, stdout)
		}
	}
	policy := filepath.Join(dir, "policy.json")
	if code, _, errOut := attestRun(t, "eif", "describe", signed, "--policy", policy); code != 0 {
		t.Fatalf("describe signed: %s", errOut)
	}
	if b, _ := os.ReadFile(policy); !strings.Contains(string(b), `"8": [`+"\n"+`      "`+eifVectorPCR8+`"`) {
		t.Errorf("signed policy lacks PCR8: %s", b)
	}

	// Metadata from flags with SOURCE_DATE_EPOCH: two builds are byte-identical.
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	var images [][]byte
	for i := range 2 {
		p := filepath.Join(dir, []string{"a.eif", "b.eif"}[i])
		if code, _, errOut := attestRun(t, append(base, "--name", "img", "--version", "2", "--output", p)...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		b, _ := os.ReadFile(p)
		images = append(images, b)
	}
	if !bytes.Equal(images[0], images[1]) || !bytes.Contains(images[0], []byte(`"BuildTime":"2023-11-14T22:13:20+00:00"`)) {
		t.Error("builds with SOURCE_DATE_EPOCH differ or lack the build time")
	}

	// A tampered image is rejected with exit 1.
	bad := append([]byte{}, got...)
	bad[1000] ^= 1
	badPath := filepath.Join(dir, "bad.eif")
	if err := os.WriteFile(badPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := attestRun(t, "eif", "describe", badPath); code != 1 || !strings.Contains(errOut, "CRC mismatch") {
		t.Errorf("tampered: exit %d, %s", code, errOut)
	}
	// Mismatched key and certificate: exit 1, nothing written.
	failed := filepath.Join(dir, "failed.eif")
	if code, _, _ := attestRun(t, append(base, "--signing-key", eifInputs+"signing-key.pem", "--signing-cert", eifVector, "--output", failed)...); code != 1 {
		t.Errorf("bad certificate: exit %d", code)
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Error("a failed build left a file")
	}
}

func TestEIFUsage(t *testing.T) {
	k, r := eifInputs+"kernel.bin", eifInputs+"ramdisk0.bin"
	for _, args := range [][]string{
		{"eif"},
		{"eif", "frobnicate"},
		{"eif", "describe"},
		{"eif", "describe", "a.eif", "b.eif"},
		{"eif", "describe", "--bogus", eifVector},
		{"eif", "build", "--cmdline", "x", "--ramdisk", r, "--output", "o"},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--output", "o"},
		{"eif", "build", "--kernel", k, "--ramdisk", r, "--output", "o"},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--cmdline-file", k, "--ramdisk", r, "--output", "o"},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r, "--output", "o", "--signing-key", k},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r, "--output", "o", "--arch", "riscv"},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r, "--output", "o", "--metadata", k, "--name", "n"},
		{"eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r, "--output", "o", "extra"},
	} {
		if code, _, _ := attestRun(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, out, _ := attestRun(t, "eif", "--help"); code != 0 || !strings.Contains(out, "usage: attest eif describe") {
		t.Errorf("--help: exit %d", code)
	}
}

// attest verify --pcrs-from IMAGE.eif pins the image's PCR0/1/2/8: a document from the
// software NSM booted with the signed image's measurements verifies, one booted with
// another image's does not.
func TestVerifyPCRsFromEIF(t *testing.T) {
	dir := t.TempDir()
	signed := filepath.Join(dir, "signed.eif")
	if code, _, errOut := attestRun(t, "eif", "build", "--kernel", eifInputs+"kernel.bin", "--cmdline-file", eifInputs+"cmdline.txt",
		"--ramdisk", eifInputs+"ramdisk0.bin", "--ramdisk", eifInputs+"ramdisk1.bin",
		"--signing-key", eifInputs+"signing-key.pem", "--signing-cert", eifInputs+"signing-cert.pem", "--output", signed); code != 0 {
		t.Fatalf("build: %s", errOut)
	}
	img, err := eif.ParseFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	m := img.Measurements
	document := func(name string, pcrs map[uint16][]byte) (doc, root string) {
		enc := mockenclave.New(t, mocknsm.Config{PCRs: pcrs})
		d, err := enc.Session.Attestation(context.Background(), nsm.AttestationRequest{})
		if err != nil {
			t.Fatal(err)
		}
		doc, root = filepath.Join(dir, name+".cbor"), filepath.Join(dir, name+"-root.pem")
		if err := os.WriteFile(doc, d, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root, enc.Mock.RootPEM(), 0o600); err != nil {
			t.Fatal(err)
		}
		return doc, root
	}
	doc, root := document("good", map[uint16][]byte{0: m.PCR0, 1: m.PCR1, 2: m.PCR2, 8: m.PCR8})
	if code, _, errOut := attestRun(t, "verify", "--root", root, "--pcrs-from", signed, doc); code != 0 {
		t.Errorf("document of the image: exit %d: %s", code, errOut)
	}
	// Same PCR0/1/2, other signing certificate: PCR8 differs.
	other := append([]byte{}, m.PCR8...)
	other[0] ^= 1
	doc, root = document("resigned", map[uint16][]byte{0: m.PCR0, 1: m.PCR1, 2: m.PCR2, 8: other})
	if code, _, errOut := attestRun(t, "verify", "--root", root, "--pcrs-from", signed, doc); code != 1 || !strings.Contains(errOut, "PCR8") {
		t.Errorf("other PCR8: exit %d: %s", code, errOut)
	}
	// A broken image was read and is rejected, naming the EIF problem.
	broken := filepath.Join(dir, "broken.eif")
	b, _ := os.ReadFile(signed)
	if err := os.WriteFile(broken, b[:1000], 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := attestRun(t, "verify", "--root", root, "--pcrs-from", broken, doc); code != 1 || !strings.Contains(errOut, "eif: truncated") {
		t.Errorf("broken image: exit %d: %s", code, errOut)
	}
}

// TestEIFOutputPath (item 10): an --output that is a directory or lies in a
// missing directory is a usage error naming the path as given, and nothing is
// written beside it.
func TestEIFOutputPath(t *testing.T) {
	dir := t.TempDir()
	k, r := eifInputs+"kernel.bin", eifInputs+"ramdisk0.bin"
	missing := filepath.Join(dir, "missing", "app.eif")
	for _, c := range []struct{ output, want string }{
		{dir, "--output " + dir + ": is a directory"},
		{dir + "/", "--output " + dir + "/: is a directory"},
		{missing, "--output " + missing + ": directory " + filepath.Dir(missing) + ": no such file or directory"},
	} {
		wantExit(t, 2, c.want, "eif", "build", "--kernel", k, "--cmdline", "x", "--ramdisk", r, "--output", c.output)
	}
	// describe --policy too.
	wantExit(t, 2, "--policy "+dir+": is a directory", "eif", "describe", eifVector, "--policy", dir)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("left behind in %s: %v %v", dir, entries, err)
	}
}

// TestEIFNitroCLINames (item 13): eif build takes nitro-cli's flag names, and
// --pcrs-from reads what eif build --json and eif describe --json print (nitro-cli's
// build-enclave and describe-eif shapes).
func TestEIFNitroCLINames(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "signed.eif")
	args := []string{"eif", "build", "--kernel", eifInputs + "kernel.bin", "--cmdline-file", eifInputs + "cmdline.txt",
		"--ramdisk", eifInputs + "ramdisk0.bin", "--ramdisk", eifInputs + "ramdisk1.bin", "--json",
		"--private-key", eifInputs + "signing-key.pem", "--signing-certificate", eifInputs + "signing-cert.pem", "--output-file", out}
	built := wantExit(t, 0, "", args...)
	img, err := eif.ParseFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(img.Measurements.PCR8) != eifVectorPCR8 {
		t.Errorf("PCR8 %x: not signed with --private-key/--signing-certificate", img.Measurements.PCR8)
	}
	described := wantExit(t, 0, "", "eif", "describe", "--json", out)
	for name, j := range map[string]string{"build --json": built, "describe --json": described} {
		p, err := parsePCRPolicy([]byte(j))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, j)
		}
		m := img.Measurements
		if len(p) != 4 || !bytes.Equal(p[0][0], m.PCR0) || !bytes.Equal(p[1][0], m.PCR1) || !bytes.Equal(p[2][0], m.PCR2) || !bytes.Equal(p[8][0], m.PCR8) {
			t.Errorf("%s: policy %x", name, p)
		}
	}
	// nitro-cli's describe-eif object for the project's vector, with the PCRs testdata/eif/EXPECTED.md
	// gives, is the policy of the image itself.
	nitro, err := parsePCRPolicy([]byte(`{"EifVersion": 4, "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "` +
		eifVectorPCR0 + `", "PCR1": "` + eifVectorPCR1 + `", "PCR2": "` + eifVectorPCR2 + `"}, "IsSigned": false, "CheckCRC": true}`))
	if err != nil {
		t.Fatal(err)
	}
	measured, err := loadPCRPolicyFile(eifVector)
	if err != nil {
		t.Fatal(err)
	}
	if len(nitro) != 3 || len(measured) != 3 {
		t.Fatalf("policies %x, %x", nitro, measured)
	}
	for i := range 3 {
		if !bytes.Equal(nitro[i][0], measured[i][0]) {
			t.Errorf("PCR%d: nitro-cli JSON %x, measured %x", i, nitro[i][0], measured[i][0])
		}
	}
	// One flag under two names is given once.
	for _, pair := range [][]string{{"--output", "--output-file"}, {"--signing-key", "--private-key"}, {"--signing-cert", "--signing-certificate"}} {
		a := append(append([]string{}, args...), pair[0], out)
		if code, _, errOut := attestRun(t, a...); code != 2 || !strings.Contains(errOut, "one flag") {
			t.Errorf("%s with %s: exit %d: %s", pair[0], pair[1], code, errOut)
		}
	}
	// attest pcr --signing-certificate, nitro-cli pcr's name.
	if out := wantExit(t, 0, "", "pcr", "--signing-certificate", eifInputs+"signing-cert.pem"); !strings.Contains(out, eifVectorPCR8) {
		t.Errorf("pcr --signing-certificate: %s", out)
	}
}
