package seal

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestInterop seals with python3-cryptography (testdata/interop.py, one process for every job;
// scripts/ensure-tools.sh installs the Debian package) and opens in Go:
//   - RSA-OAEP with SHA-256 and SHA-1 (MGF1 the same, empty label): OpenRSA opens each with its
//     hash and refuses it with the other;
//   - an independent HPKE, which first reproduces RFC 9180's AES-256-GCM vector byte for byte,
//     builds attestd-seal-v1 envelopes that OpenHPKE opens, and that no other key opens.
func TestInterop(t *testing.T) {
	if err := exec.Command("python3", "-c", "import cryptography").Run(); err != nil {
		if os.Getenv("CI") != "" { // CI installs it (make tools): a missing package is a failure there
			t.Fatalf("python3 with cryptography not available (scripts/ensure-tools.sh installs python3-cryptography): %v", err)
		}
		t.Skipf("python3 with cryptography not available (scripts/ensure-tools.sh installs python3-cryptography): %v", err)
	}
	priv, spki := testRSA(t)
	r, other := exampleKey(t), x25519(t)
	h := func(b []byte) string {
		if len(b) == 0 {
			return "-"
		}
		return hex.EncodeToString(b)
	}
	type hpkeJob struct{ aad, pt []byte }
	hpkeJobs := []hpkeJob{{nil, nil}, {[]byte("example context"), []byte("attested secret")},
		{make([]byte, MaxAAD), bytes.Repeat([]byte{1}, MaxPlaintext)}}
	hashes := []string{OAEPSHA256, OAEPSHA1}
	var in strings.Builder
	in.WriteString("rfc9180\n")
	for _, hash := range hashes {
		in.WriteString("rsa " + h(spki) + " " + hash + " " + h([]byte("sealed by python, "+hash)) + "\n")
	}
	for _, j := range hpkeJobs {
		in.WriteString("hpke " + h(r.binding) + " " + h(r.public) + " " + h(j.aad) + " " + h(j.pt) + "\n")
	}
	cmd := exec.Command("python3", "testdata/interop.py")
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.py: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 1+len(hashes)+len(hpkeJobs) {
		t.Fatalf("%d lines from interop.py", len(lines))
	}
	const wantRFC = "6c93e09869df3402d7bf231bf540fadd35cd56be14f97178f0954db94b7fc256 " +
		"e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be9931980a41de125a925cdad859d5b7a"
	if lines[0] != wantRFC {
		t.Fatalf("python's HPKE does not reproduce RFC 9180: %s", lines[0])
	}
	for i, hash := range hashes {
		ct := unhex(t, lines[1+i])
		other := hashes[1-i]
		if pt, err := OpenRSA(priv, hash, ct); err != nil || string(pt) != "sealed by python, "+hash || len(ct) != RSACiphertextSize {
			t.Errorf("rsa %s: %q %v", hash, pt, err)
		}
		if _, err := OpenRSA(priv, other, ct); err != ErrOpenFailed {
			t.Errorf("rsa %s ciphertext opened as %s: %v", hash, other, err)
		}
	}
	for i, j := range hpkeJobs {
		env := unhex(t, lines[1+len(hashes)+i])
		pt, aad, err := OpenHPKE(r.priv, r.binding, env)
		if err != nil || !bytes.Equal(pt, j.pt) || !bytes.Equal(aad, j.aad) {
			t.Errorf("python envelope (%d-byte plaintext): %v", len(j.pt), err)
		}
		if _, _, err := OpenHPKE(other.priv, other.binding, env); err != ErrOpenFailed {
			t.Errorf("another key opened the python envelope: %v", err)
		}
	}
}
