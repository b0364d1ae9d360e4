package seal

import (
	"bytes"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// python runs testdata/interop.py (python3-cryptography, installed by scripts/ensure-tools.sh)
// and decodes the hex it prints.
func python(t *testing.T, stdin string, args ...string) []byte {
	t.Helper()
	b, err := hex.DecodeString(pythonText(t, stdin, args...))
	if err != nil {
		t.Fatalf("interop.py %s: %v", args[0], err)
	}
	return b
}

func pythonText(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	if err := exec.Command("python3", "-c", "import cryptography").Run(); err != nil {
		t.Skipf("python3 with cryptography not available (scripts/ensure-tools.sh installs python3-cryptography): %v", err)
	}
	cmd := exec.Command("python3", append([]string{"testdata/interop.py"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.py %s: %v", args[0], err)
	}
	return strings.TrimSpace(string(out))
}

// TestInteropRSA: python3-cryptography seals RSA-OAEP with SHA-256 and SHA-1 (MGF1 the same, empty
// label); OpenRSA opens each with its hash and refuses it with the other.
func TestInteropRSA(t *testing.T) {
	priv, spki := testRSA(t)
	for _, c := range []struct{ hash, other string }{{OAEPSHA256, OAEPSHA1}, {OAEPSHA1, OAEPSHA256}} {
		secret := []byte("sealed by python3-cryptography, " + c.hash)
		ct := python(t, "", "rsa", hex.EncodeToString(spki), c.hash, hex.EncodeToString(secret))
		if len(ct) != RSACiphertextSize {
			t.Fatalf("%s: %d bytes", c.hash, len(ct))
		}
		if pt, err := OpenRSA(priv, c.hash, ct); err != nil || !bytes.Equal(pt, secret) {
			t.Errorf("%s: %q %v", c.hash, pt, err)
		}
		if _, err := OpenRSA(priv, c.other, ct); err != ErrOpenFailed {
			t.Errorf("%s ciphertext opened as %s: %v", c.hash, c.other, err)
		}
	}
}

// TestInteropHPKE: an independent HPKE (testdata/interop.py, on python3-cryptography's X25519,
// HMAC and AES-GCM) first reproduces RFC 9180's AES-256-GCM vector byte for byte, then builds
// attestd-seal-v1 envelopes that OpenHPKE opens; and it opens nothing under another B.
func TestInteropHPKE(t *testing.T) {
	if out := pythonText(t, "", "rfc9180"); out != "ok" {
		t.Fatalf("rfc9180 self-check: %q", out)
	}
	r, other := exampleKey(t), x25519(t)
	for _, c := range []struct{ aad, pt []byte }{
		{nil, nil}, {[]byte("example context"), []byte("attested secret")}, {make([]byte, MaxAAD), bytes.Repeat([]byte{1}, MaxPlaintext)},
	} {
		env := python(t, hex.EncodeToString(c.pt), "hpke", hex.EncodeToString(r.binding), hex.EncodeToString(r.public), hex.EncodeToString(c.aad))
		pt, aad, err := OpenHPKE(r.priv, r.binding, env)
		if err != nil || !bytes.Equal(pt, c.pt) || !bytes.Equal(aad, c.aad) {
			t.Fatalf("python envelope (%d-byte plaintext): %v", len(c.pt), err)
		}
		if _, _, err := OpenHPKE(other.priv, other.binding, env); err != ErrOpenFailed {
			t.Fatalf("another key opened the python envelope: %v", err)
		}
	}
}
