//go:build linux

package fusee2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/mocknsm/fusedev/fusetest"
)

// goBuild builds packages of this module (in one go build, so shared
// dependencies compile once) into a temporary directory and returns it.
func goBuild(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, b)
	}
	return dir
}

// TestNSMRunScript runs an unmodified client that opens /dev/nsm through
// scripts/nsm-run.sh and checks that the host's /dev is untouched afterwards.
func TestNSMRunScript(t *testing.T) {
	fusetest.Require(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare (util-linux) is required for nsm-run.sh")
	}
	if _, err := os.Lstat("/dev/nsm"); !errors.Is(err, fs.ErrNotExist) {
		t.Skipf("the host has a /dev/nsm (%v): cannot prove it stays untouched", err)
	}
	bin := goBuild(t, "../../cmd/nsm-mock", "./testdata/nsmclient")
	mock, client := filepath.Join(bin, "nsm-mock"), filepath.Join(bin, "nsmclient")
	state := filepath.Join(t.TempDir(), "state")
	scratch := t.TempDir() // the script's TMPDIR: must be empty afterwards

	nonce := []byte("nsm-run nonce")
	cmd := exec.Command("../../scripts/nsm-run.sh", "--dir", state, "--nsm-mock", mock, "--",
		client, "-nonce", hex.EncodeToString(nonce))
	cmd.Env = append(os.Environ(), "TMPDIR="+scratch)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nsm-run.sh: %v\nstderr:\n%s", err, stderr.String())
	}

	var out struct {
		ModuleID   string `json:"module_id"`
		RandomLen  int    `json:"random_len"`
		Document   []byte `json:"document"`
		DevicePath string `json:"device_path"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("client output %q: %v", stdout.String(), err)
	}
	if out.DevicePath != "/dev/nsm" || out.RandomLen != 256 || !strings.HasPrefix(out.ModuleID, "i-") {
		t.Fatalf("client output: %+v", out)
	}
	// The script created the state (nsm-mock init) and kept it: the document
	// verifies against its root afterwards.
	p, err := verifyDocument(out.Document, filepath.Join(state, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Nonce, nonce) || p.ModuleID != out.ModuleID {
		t.Fatalf("document nonce %q module %q", p.Nonce, p.ModuleID)
	}

	if _, err := os.Lstat("/dev/nsm"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("/dev/nsm on the host after nsm-run.sh: %v", err)
	}
	if ents, err := os.ReadDir(scratch); err != nil || len(ents) != 0 {
		t.Fatalf("nsm-run.sh left %v in its TMPDIR (%v)", ents, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mounts, []byte("nsm-mock")) || bytes.Contains(mounts, []byte(scratch)) {
		t.Fatalf("a mock mount is visible on the host:\n%s", mounts)
	}

	// The script passes the program's exit status through.
	cmd = exec.Command("../../scripts/nsm-run.sh", "--dir", state, "--nsm-mock", mock, "--", "sh", "-c", "exit 7")
	cmd.Env = append(os.Environ(), "TMPDIR="+scratch)
	var exitErr *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Fatalf("exit status: %v, want 7", err)
	}
}
