package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
)

func sealCmd(t *testing.T, want int, stdin string, args ...string) (stdout, stderr string) {
	t.Helper()
	old := verifyStdin
	verifyStdin = strings.NewReader(stdin)
	defer func() { verifyStdin = old }()
	var out, errb bytes.Buffer
	code := run(append([]string{"seal"}, args...), &out, &errb)
	if code != want {
		t.Fatalf("attest seal %s: exit %d, want %d\nstdout: %q\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	if want != 0 && !strings.HasPrefix(errb.String(), "attest seal: ") {
		t.Fatalf("want an error line, got %q", errb.String())
	}
	return out.String(), errb.String()
}

// enclaveKey is the test agent's private key name: the opener's side.
func enclaveKey(t *testing.T, name string) *keys.Key {
	t.Helper()
	set, err := mockenclave.Keys(keys.Config{}) // the test agent's key set
	if err != nil {
		t.Fatal(err)
	}
	k, err := set.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (ta *testAgent) pcrArgs() []string {
	var a []string
	for _, i := range []uint16{0, 1, 2} {
		a = append(a, "--pcr", strconv.Itoa(int(i))+"="+hex.EncodeToString(ta.pcrs[i]))
	}
	return a
}

func TestSealOnline(t *testing.T) {
	ta := startFetchAgent(t, nil)
	verify := append([]string{"--addr", ta.addr, "--root", ta.root}, ta.pcrArgs()...)
	dir := t.TempDir()
	secret := "the database password"

	// hpke, aad, --in and --out files: the enclave's key opens it and gets the aad back.
	in, out := filepath.Join(dir, "secret"), filepath.Join(dir, "sealed")
	if err := os.WriteFile(in, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if stdout, _ := sealCmd(t, 0, "", append(verify, "--key", "hpke", "--aad", "db v1", "--in", in, "--out", out)...); stdout != "" {
		t.Errorf("stdout %q with --out FILE", stdout)
	}
	env, _ := os.ReadFile(out)
	if pt, aad, err := enclaveKey(t, keys.HPKE).OpenHPKE(env); err != nil || string(pt) != secret || string(aad) != "db v1" {
		t.Errorf("open the hpke envelope: %q, %q, %v", pt, aad, err)
	}
	// --aad-file, stdin, binary to stdout (the default key is hpke).
	aadFile := filepath.Join(dir, "aad")
	os.WriteFile(aadFile, []byte{0, 1, 2}, 0o600)
	stdout, _ := sealCmd(t, 0, secret, append(verify, "--aad-file", aadFile)...)
	if pt, aad, err := enclaveKey(t, keys.HPKE).OpenHPKE([]byte(stdout)); err != nil || string(pt) != secret || !bytes.Equal(aad, []byte{0, 1, 2}) {
		t.Errorf("open the stdout envelope: %q, %x, %v", pt, aad, err)
	}

	// rsa: sha256 by default, sha1 when asked; --base64 is one line of standard base64.
	for _, h := range []string{"", seal.OAEPSHA256, seal.OAEPSHA1} {
		args := append(verify, "--key", "rsa", "--base64")
		if h != "" {
			args = append(args, "--oaep-hash", h)
		}
		stdout, _ := sealCmd(t, 0, secret, args...)
		ct, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(stdout, "\n"))
		if err != nil || len(ct) != seal.RSACiphertextSize || strings.Count(stdout, "\n") != 1 {
			t.Fatalf("rsa %q: %q (%v)", h, stdout, err)
		}
		want := h
		if want == "" {
			want = seal.OAEPSHA256
		}
		if pt, err := enclaveKey(t, keys.RSA).OpenRSA(want, ct); err != nil || string(pt) != secret {
			t.Errorf("rsa %q: open with %s: %q, %v", h, want, pt, err)
		}
	}

	// --json: the verified document, the key and the result.
	stdout, _ = sealCmd(t, 0, secret, append(verify, "--json", "--aad", "x")...)
	var j struct {
		Document struct {
			Nonce string `json:"nonce"`
		} `json:"document"`
		Key struct {
			Name string `json:"name"`
		} `json:"key"`
		Bytes  int    `json:"sealed_bytes"`
		Sealed string `json:"sealed"` // hex, as every byte string under --json
	}
	if err := json.Unmarshal([]byte(stdout), &j); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	sealed, _ := hex.DecodeString(j.Sealed)
	if pt, _, err := enclaveKey(t, keys.HPKE).OpenHPKE(sealed); err != nil || string(pt) != secret || j.Bytes != len(sealed) ||
		j.Key.Name != "hpke" || len(j.Document.Nonce) != 64 {
		t.Errorf("--json: %s (open: %v)", stdout, err)
	}
}

func TestSealOffline(t *testing.T) {
	ta := startFetchAgent(t, nil)
	dir := t.TempDir()
	for _, key := range []string{"hpke", "rsa"} {
		doc, pub := filepath.Join(dir, key+".doc"), filepath.Join(dir, key+".key")
		fetch(t, 0, append([]string{"--addr", ta.addr, "--root", ta.root, "--key", key, "--nonce", "0102", "--out", doc, "--out-key", pub}, ta.pcrArgs()...)...)
		// attest verify checks the same pair.
		var vout, verr bytes.Buffer
		if code := run(append([]string{"verify", doc, "--public-key", pub, "--root", ta.root, "--nonce", "0102"}, ta.pcrArgs()...), &vout, &verr); code != 0 {
			t.Errorf("%s: attest verify --public-key of fetch's --out-key: exit %d: %s", key, code, verr.String())
		}
		verify := append([]string{"--doc", doc, "--public-key", pub, "--root", ta.root, "--key", key}, ta.pcrArgs()...)
		stdout, _ := sealCmd(t, 0, "offline secret", append(verify, "--nonce", "0102")...)
		var pt []byte
		var err error
		if key == keys.HPKE {
			pt, _, err = enclaveKey(t, key).OpenHPKE([]byte(stdout))
		} else {
			pt, err = enclaveKey(t, key).OpenRSA(seal.OAEPSHA256, []byte(stdout))
		}
		if err != nil || string(pt) != "offline secret" {
			t.Errorf("%s offline: %q, %v", key, pt, err)
		}
		// A stale document is refused: max-age applies offline (any saved document is older than 1 ns).
		if _, errOut := sealCmd(t, 1, "x", append(verify, "--nonce", "0102", "--max-age", "1ns")...); !strings.Contains(errOut, "freshness") {
			t.Errorf("%s stale: %q", key, errOut)
		}
		// Another nonce than the one fetched with is refused.
		if _, errOut := sealCmd(t, 1, "x", append(verify, "--nonce", "0103")...); !strings.Contains(errOut, "nonce") {
			t.Errorf("%s other nonce: %q", key, errOut)
		}
	}
	// A key file the document does not bind is refused.
	_, errOut := sealCmd(t, 1, "x", append([]string{"--doc", filepath.Join(dir, "hpke.doc"), "--public-key", filepath.Join(dir, "rsa.key"),
		"--root", ta.root, "--key", "hpke"}, ta.pcrArgs()...)...)
	if !strings.Contains(errOut, "does not bind") {
		t.Errorf("hpke document with the rsa key: %q", errOut)
	}
}

func TestSealRejects(t *testing.T) {
	ta := startFetchAgent(t, nil)
	out := filepath.Join(t.TempDir(), "sealed")
	zero := strings.Repeat("00", 48)
	for _, c := range []struct {
		name, stdin, substr string
		args                []string
	}{
		{"wrong PCR0", "s", "PCR", []string{"--root", ta.root, "--pcr", "0=" + zero}},
		{"AWS root", "s", "chain", []string{"--any-pcrs"}},
		{"hpke input over 64 KiB", strings.Repeat("a", seal.MaxPlaintext+1), "larger than", []string{"--root", ta.root, "--any-pcrs"}},
		{"rsa input over 190 bytes", strings.Repeat("a", 191), "too long", []string{"--root", ta.root, "--any-pcrs", "--key", "rsa"}},
	} {
		_, errOut := sealCmd(t, 1, c.stdin, append([]string{"--addr", ta.addr, "--out", out}, c.args...)...)
		if !strings.Contains(errOut, c.substr) {
			t.Errorf("%s: stderr %q lacks %q", c.name, errOut, c.substr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: --out written", c.name)
		}
	}
	// Under --json each rejection is a JSON error object naming its check.
	longSecret := filepath.Join(t.TempDir(), "long")
	os.WriteFile(longSecret, make([]byte, 191), 0o600)
	for _, c := range []struct {
		check string
		args  []string
	}{
		{"pcr-policy", []string{"--addr", ta.addr, "--root", ta.root, "--pcr", "0=" + zero}},
		{"agent", []string{"--addr", "unix://" + filepath.Join(t.TempDir(), "none"), "--root", ta.root, "--any-pcrs"}},
		{"input", []string{"--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--key", "rsa", "--in", longSecret}},
	} {
		stdout, _ := sealCmd(t, 1, "s", append(c.args, "--json")...)
		var j struct {
			Error struct{ Check string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(stdout), &j); err != nil || j.Error.Check != c.check {
			t.Errorf("--json %s: %q", c.check, stdout)
		}
	}
	// rsa with sha1 takes 214 bytes, not 215.
	sealCmd(t, 0, strings.Repeat("a", 214), "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--key", "rsa", "--oaep-hash", "sha1")
	sealCmd(t, 1, strings.Repeat("a", 215), "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--key", "rsa", "--oaep-hash", "sha1")
}

func TestSealUsageErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o600)
	missing := filepath.Join(dir, "missing")
	online := []string{"--addr", "unix:///x", "--any-pcrs"}
	offline := []string{"--doc", f, "--public-key", f, "--any-pcrs"}
	for name, args := range map[string][]string{
		"neither online nor offline": {"--any-pcrs"},
		"both":                       {"--addr", "unix:///x", "--doc", f, "--public-key", f, "--any-pcrs"},
		"doc without key":            {"--doc", f, "--any-pcrs"},
		"no PCR policy":              {"--addr", "unix:///x"},
		"bad addr":                   {"--addr", "http://x", "--any-pcrs"},
		"empty addr":                 {"--addr", "", "--any-pcrs"},
		"bad key":                    append(online, "--key", "ed25519"),
		"aad with rsa":               append(online, "--key", "rsa", "--aad", "x"),
		"aad-file with rsa":          append(online, "--key", "rsa", "--aad-file", f),
		"aad and aad-file":           append(online, "--aad", "x", "--aad-file", f),
		"empty aad":                  append(online, "--aad", ""),
		"aad over 1024":              append(online, "--aad", strings.Repeat("a", 1025)),
		"missing aad-file":           append(online, "--aad-file", missing),
		"oaep-hash with hpke":        append(online, "--oaep-hash", "sha1"),
		"oaep-hash md5":              append(online, "--key", "rsa", "--oaep-hash", "md5"),
		"empty oaep-hash":            append(online, "--key", "rsa", "--oaep-hash", ""),
		"missing in":                 append(online, "--in", missing),
		"empty in":                   append(online, "--in", ""),
		"empty out":                  append(online, "--out", ""),
		"random nonce offline":       append(offline, "--nonce", "random"),
		"missing doc":                {"--doc", missing, "--public-key", f, "--any-pcrs"},
		"missing public-key":         {"--doc", f, "--public-key", missing, "--any-pcrs"},
		"stray argument":             append(online, "extra"),
		"at-doc-time":                append(offline, "--at-doc-time"),
		"at":                         append(online, "--at", "2026-01-01T00:00:00Z"),
	} {
		var out, errb bytes.Buffer
		verifyStdin = strings.NewReader("s")
		code := run(append([]string{"seal"}, args...), &out, &errb)
		if code != 2 || !strings.HasPrefix(errb.String(), "attest seal: ") || out.Len() != 0 {
			t.Errorf("%s: exit %d, want 2 with an error (%q, stdout %q)", name, code, errb.String(), out.String())
		}
	}
	verifyStdin = os.Stdin
	var out, errb bytes.Buffer
	if code := run([]string{"seal", "--help"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "usage: attest seal") {
		t.Errorf("--help: exit %d", code)
	}
	// Under --json a usage error is a JSON error object too.
	out.Reset()
	if code := run([]string{"seal", "--json", "--any-pcrs"}, &out, &errb); code != 2 || !strings.Contains(out.String(), `"check": "usage"`) {
		t.Errorf("--json usage error: exit %d, %q", code, out.String())
	}
}

// BenchmarkSealVsFetch runs attest fetch and attest seal end to end (minus
// process start-up) against the same in-process agent, alternating them
// operation by operation so that load from elsewhere hits both alike, and
// reports each one's time and their ratio: sealing should add at most 5%.
func BenchmarkSealVsFetch(b *testing.B) {
	ta := startFetchAgent(b, nil)
	dir := b.TempDir()
	verify := append([]string{"--addr", ta.addr, "--root", ta.root}, ta.pcrArgs()...)
	for _, c := range []struct {
		key  string
		size int      // the secret: 1 KiB to hpke, 200 bytes (near the SHA-1 limit) to rsa
		more []string // seal's own flags
	}{
		{"hpke", 1024, []string{"--aad", "bench"}},
		{"rsa", 200, []string{"--oaep-hash", "sha1"}},
	} {
		secret := filepath.Join(dir, c.key)
		os.WriteFile(secret, bytes.Repeat([]byte{0x5a}, c.size), 0o600)
		fetchArgs := append([]string{"fetch", "--key", c.key}, verify...)
		// Both write to standard output: rewriting an --out file costs either
		// command a few hundred microseconds on ext4 (truncate, reallocate).
		sealArgs := append(append([]string{"seal", "--key", c.key, "--in", secret}, c.more...), verify...)
		b.Run(c.key, func(b *testing.B) {
			var fetchTime, sealTime time.Duration
			n := 0
			for b.Loop() {
				for i, args := range [][]string{fetchArgs, sealArgs} {
					if n%2 == 1 { // alternate which arm goes first
						args = [][]string{sealArgs, fetchArgs}[i]
					}
					var out, errb bytes.Buffer
					start := time.Now()
					if code := run(args, &out, &errb); code != 0 {
						b.Fatalf("exit %d: %s", code, errb.String())
					}
					if args[0] == "seal" {
						sealTime += time.Since(start)
					} else {
						fetchTime += time.Since(start)
					}
				}
				n++
			}
			b.ReportMetric(float64(fetchTime.Nanoseconds())/float64(n), "fetch-ns/op")
			b.ReportMetric(float64(sealTime.Nanoseconds())/float64(n), "seal-ns/op")
			b.ReportMetric(float64(sealTime)/float64(fetchTime), "seal/fetch")
		})
	}
}
