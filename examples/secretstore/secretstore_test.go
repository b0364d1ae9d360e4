// Package secretstore tests secretstore.py, seed 002's SecretStore as a
// relying party of attestd, against the real attestd binary on the software
// NSM, with an in-enclave stand-in that opens what it sealed through the local
// API.
package secretstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/attestd/attestd/internal/testbin"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/vsockrpc"
)

// python returns Debian's python3 with the three packages the program uses.
// Missing ones fail the test in CI (CI set) and skip it elsewhere.
func python(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3" // Debian's, whose dist-packages hold the python3-* packages
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			missing(t, "python3 is not installed")
		}
	}
	out, err := exec.Command(py, "-c", "import cbor2, cryptography\ntry:\n import Cryptodome\nexcept ImportError:\n import Crypto").CombinedOutput()
	if err != nil {
		missing(t, fmt.Sprintf("%s lacks python3-cbor2, python3-cryptography or python3-pycryptodome: %s", py, bytes.TrimSpace(out)))
	}
	return py
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (scripts/ensure-tools.sh installs them)", why)
	}
	t.Skipf("%s: run scripts/ensure-tools.sh (make tools) to run this test", why)
}

// agentd is attestd on the software NSM, serving on unix sockets.
type agentd struct {
	parent, local string
	root          string // the mock root's PEM file
	pcrs          []string
}

// The binaries under test, built once by TestMain.
var attestdBin, openLocalBin string

func TestMain(m *testing.M) {
	testbin.Main(m, map[string]*string{
		"github.com/attestd/attestd/cmd/attestd":         &attestdBin,
		"github.com/attestd/attestd/examples/open-local": &openLocalBin,
	})
}

func startAttestd(t *testing.T) *agentd {
	t.Helper()
	mock := filepath.Join(t.TempDir(), "mock")
	if err := mocknsm.Init(mock, mocknsm.Config{}); err != nil {
		t.Fatal(err)
	}
	sock, err := os.MkdirTemp("", "secretstore") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	a := &agentd{parent: "unix://" + filepath.Join(sock, "p"), local: "unix://" + filepath.Join(sock, "l"),
		root: filepath.Join(mock, "root.pem")}
	// The software NSM relaxes the host gates by itself (this host is no enclave).
	cmd := exec.Command(attestdBin, "--nsm", "mock:"+mock, "--listen", a.parent, "--local", a.local)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("attestd log:\n%s", log.String())
		}
	})
	// Wait for the ready line, then keep draining the log.
	sc := bufio.NewScanner(stderr)
	for !strings.Contains(log.String(), "attestd ready") {
		if !sc.Scan() {
			cmd.Wait()
			t.Fatalf("attestd did not start:\n%s", log.String())
		}
		log.Write(append(sc.Bytes(), '\n'))
	}
	go io.Copy(io.Discard, stderr)

	c := dial(t, a.parent)
	d, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint16{0, 1, 2} {
		a.pcrs = append(a.pcrs, "--pcr", strconv.Itoa(int(i))+"="+hex.EncodeToString(d.PCRs[i]))
	}
	return a
}

func dial(t *testing.T, addr string) *vsockrpc.Client {
	t.Helper()
	c, err := vsockrpc.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// store runs secretstore.py with the secret on stdin and returns its exit
// code, stdout and stderr.
func store(t *testing.T, py, secret string, args ...string) (int, string, string) {
	t.Helper()
	return runCmd(t, secret, py, append([]string{"secretstore.py"}, args...)...)
}

// runCmd runs a program with stdin and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, stdin, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatal(err)
	return 0, "", ""
}

func TestSecretStoreSealsToTheEnclave(t *testing.T) {
	py := python(t)
	a := startAttestd(t)
	secret := `[{"name": "Ronan Munro", "credit_card_no": "4087732854932734"}]`
	code, out, errOut := store(t, py, secret, append([]string{"--addr", a.parent, "--root", a.root}, a.pcrs...)...)
	if code != 0 {
		t.Fatalf("secretstore.py: exit %d: %s", code, errOut)
	}
	ct, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
	if err != nil || len(ct) != 256 {
		t.Fatalf("not a base64 RSA-2048 ciphertext: %q (%v)", out, err)
	}

	// The in-enclave stand-in (examples/open-local) opens it through the
	// local API, told the hash, reading the store's base64 as it printed it.
	open := openLocalBin
	code, pt, errOut := runCmd(t, out, open, "--addr", a.local, "--key", "rsa", "--oaep-hash", "sha1", "--base64")
	if code != 0 || pt != secret {
		t.Fatalf("open-local: exit %d, opened %q (%s), want %q", code, pt, errOut, secret)
	}
	// It is pycryptodome's SHA-1 OAEP: under SHA-256 it does not open, with the one error.
	if code, pt, errOut := runCmd(t, out, open, "--addr", a.local, "--key", "rsa", "--oaep-hash", "sha256", "--base64"); code != 1 || pt != "" ||
		!strings.Contains(errOut, vsockrpc.CodeOpenFailed) {
		t.Errorf("open with sha256: exit %d, %q, %q", code, pt, errOut)
	}
	// The parent, which relays the ciphertext, cannot open it: its API has no open.
	if code, pt, errOut := runCmd(t, out, open, "--addr", a.parent, "--key", "rsa", "--oaep-hash", "sha1", "--base64"); code != 1 || pt != "" ||
		!strings.Contains(errOut, vsockrpc.CodeUnknownMethod) {
		t.Errorf("open on the parent API: exit %d, %q, %q", code, pt, errOut)
	}
}

// TestSecretStoreRefuses: the store releases nothing for a wrong PCR, a
// document that does not carry its nonce, a forged signature or another root.
func TestSecretStoreRefuses(t *testing.T) {
	py := python(t)
	a := startAttestd(t)
	root := []string{"--root", a.root}

	wrongPCR := append(append([]string{"--addr", a.parent}, root...), a.pcrs...)
	wrongPCR[len(wrongPCR)-1] = "2=" + strings.Repeat("00", 48)
	if code, out, errOut := store(t, py, "s", wrongPCR...); code != 1 || out != "" || !strings.Contains(errOut, "PCR2") {
		t.Errorf("wrong PCR2: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A document the enclave handed over, fetched for the nonce 0a0b.
	res, err := dial(t, a.parent).Attest(context.Background(), []byte{0x0a, 0x0b}, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	doc := filepath.Join(t.TempDir(), "doc")
	write := func(b []byte) {
		if err := os.WriteFile(doc, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(res.Document)
	offline := append(append([]string{"--doc", doc}, root...), a.pcrs...)
	// The control: with its nonce the document is accepted...
	if code, out, errOut := store(t, py, "s", append(offline, "--nonce", "0a0b")...); code != 0 || out == "" {
		t.Fatalf("the document with its nonce: exit %d: %s", code, errOut)
	}
	// ... with another nonce it is refused.
	if code, out, errOut := store(t, py, "s", append(offline, "--nonce", "0a0c")...); code != 1 || out != "" || !strings.Contains(errOut, "nonce") {
		t.Errorf("wrong nonce: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A flipped signature bit (the signature is the document's last 96 bytes).
	forged := bytes.Clone(res.Document)
	forged[len(forged)-1] ^= 1
	write(forged)
	if code, _, errOut := store(t, py, "s", append(offline, "--nonce", "0a0b")...); code != 1 || !strings.Contains(errOut, "signature") {
		t.Errorf("forged signature: exit %d, stderr %q", code, errOut)
	}
	// Trailing bytes after the COSE_Sign1 item.
	write(append(bytes.Clone(res.Document), 0))
	if code, _, errOut := store(t, py, "s", append(offline, "--nonce", "0a0b")...); code != 1 || !strings.Contains(errOut, "after the CBOR item") {
		t.Errorf("trailing byte: exit %d, stderr %q", code, errOut)
	}
	// A document older than --max-age (any document is older than 0 s).
	write(res.Document)
	if code, _, errOut := store(t, py, "s", append(offline, "--nonce", "0a0b", "--max-age", "0")...); code != 1 || !strings.Contains(errOut, "freshness") {
		t.Errorf("stale: exit %d, stderr %q", code, errOut)
	}
	// The real AWS root is not the mock's: the chain is refused.
	write(res.Document)
	aws := append(append([]string{"--doc", doc, "--root", "../../attestation/aws_nitro_root_g1.pem"}, a.pcrs...), "--nonce", "0a0b")
	if code, _, errOut := store(t, py, "s", aws...); code != 1 || !strings.Contains(errOut, "chain") {
		t.Errorf("AWS root: exit %d, stderr %q", code, errOut)
	}
	// No PCR policy is a usage error.
	if code, _, _ := store(t, py, "s", "--addr", a.parent, "--root", a.root); code != 2 {
		t.Errorf("no --pcr: exit %d, want 2", code)
	}
}
