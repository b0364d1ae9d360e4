// Package scripts holds tests of the shell scripts beside it: help, argument validation
// and, with fake docker and nitro-cli on PATH, the plumbing of the EIF scripts (the real
// tools cannot run here: no Docker daemon, no Nitro hypervisor).
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/testbin"
)

// script runs a script with env added and returns exit code and combined output.
func script(t *testing.T, env []string, name string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestHelp(t *testing.T) {
	for _, s := range []string{"build-eif.sh", "run-enclave.sh", "repro-check.sh", "bench-eif.sh"} {
		code, out := script(t, nil, s, "--help")
		if code != 0 || !strings.HasPrefix(out, "usage: scripts/"+s) {
			t.Errorf("%s --help: exit %d: %s", s, code, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	eif := "../testdata/eif/synthetic-unsigned.eif"
	for _, c := range []struct {
		script string
		args   []string
		want   string
	}{
		{"build-eif.sh", []string{"--bogus"}, "unknown argument --bogus"},
		{"build-eif.sh", []string{"--output"}, "--output needs a value"},
		{"build-eif.sh", []string{"--output", "x.img"}, "should end in .eif"},
		{"build-eif.sh", []string{"--signing-key", "k.pem"}, "go together"},
		{"build-eif.sh", []string{"--signing-cert", "c.pem"}, "go together"},
		{"build-eif.sh", []string{"--dockerfile", "nope"}, "no Dockerfile"},
		{"run-enclave.sh", nil, "--eif is required"},
		{"run-enclave.sh", []string{"--eif", "missing.eif"}, "cannot read missing.eif"},
		{"run-enclave.sh", []string{"--eif", eif, "--memory", "lots"}, "--memory must be a number"},
		{"run-enclave.sh", []string{"--eif", eif, "--cid", "-3"}, "--cid must be a number"},
		{"run-enclave.sh", []string{"--eif", eif, "--wait"}, "--wait needs a value"},
		{"run-enclave.sh", []string{"--eif", eif, "--pcrs-from", "nope.json"}, "cannot read nope.json"},
		{"repro-check.sh", []string{"--frobnicate"}, "unknown argument"},
		{"bench-eif.sh", []string{"--size-mib", "1"}, "--size-mib must be a number >= 16"},
		{"bench-eif.sh", []string{"--runs", "0"}, "--runs must be a positive number"},
	} {
		code, out := script(t, nil, c.script, c.args...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%s %q: exit %d, want 2 and %q:\n%s", c.script, c.args, code, c.want, out)
		}
	}
}

// fakeTools writes fake docker and nitro-cli into a directory put first on PATH, builds
// attest, and returns the environment for the scripts. The fake nitro-cli logs its
// arguments, "builds" an EIF with attest eif build from the test vector's inputs and
// "runs" an enclave with CID 16.
func fakeTools(t *testing.T) (env []string, dir, log string) {
	t.Helper()
	dir = t.TempDir()
	attest := testbin.Build(t, "github.com/attestd/attestd/cmd/attest")
	inputs, err := filepath.Abs("../testdata/eif/inputs")
	if err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "calls.log")
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/usr/bin/env bash\nset -euo pipefail\necho \""+name+" $*\" >>"+log+"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("docker", `[[ "$1" != buildx ]] || exit 1  # no buildx: the plain docker build path
`)
	write("nitro-cli", `case "$1" in
build-enclave)
  out=""; sign=()
  while (($#)); do
    case "$1" in
      --output-file) out="$2"; shift 2 ;;
      --signing-certificate) sign+=(--signing-cert "$2"); shift 2 ;;
      --private-key) sign+=(--signing-key "$2"); shift 2 ;;
      *) shift ;;
    esac
  done
  I=`+inputs+`
  "$ATTEST" eif build --kernel "${FAKE_KERNEL:-$I/kernel.bin}" --cmdline-file "$I/cmdline.txt" --ramdisk "$I/ramdisk0.bin" \
    --ramdisk "$I/ramdisk1.bin" --metadata "$I/metadata.json" "${sign[@]}" --output "$out" --json ;;
run-enclave)
  echo '{ "EnclaveName": "x", "EnclaveID": "i-0123456789abcdef0-enc0123456789abcdef", "ProcessID": 1, "EnclaveCID": 16, "NumberOfCPUs": 2 }' ;;
terminate-enclave) ;;
esac
`)
	// attest fetch cannot reach a vsock enclave here: a stand-in records its arguments.
	write("fake-attest", `[[ "$1" == fetch ]] && exit 0
exec "`+attest+`" "$@"
`)
	env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "ATTEST=" + attest}
	return env, dir, log
}

func TestBuildEIFWithFakeTools(t *testing.T) {
	env, dir, log := fakeTools(t)
	out := filepath.Join(dir, "img.eif")
	code, output := script(t, append(env, "SOURCE_DATE_EPOCH=1700000000"), "build-eif.sh", "--output", out, "--tag", "test:1",
		"--signing-key", "../testdata/eif/inputs/signing-key.pem", "--signing-cert", "../testdata/eif/inputs/signing-cert.pem")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, output)
	}
	calls, _ := os.ReadFile(log)
	for _, want := range []string{
		"docker build --file ", "--build-arg SOURCE_DATE_EPOCH --tag test:1",
		"nitro-cli build-enclave --docker-uri test:1 --output-file " + out + " --signing-certificate ../testdata/eif/inputs/signing-cert.pem --private-key ../testdata/eif/inputs/signing-key.pem",
	} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	// attest eif describe printed the PCRs and wrote the policy beside the image.
	if !strings.Contains(output, "PCR0          926d2bb2") || !strings.Contains(output, "PCR8          4f5aafa4") {
		t.Errorf("output lacks the PCRs:\n%s", output)
	}
	policy, err := os.ReadFile(filepath.Join(dir, "img.pcrs.json"))
	if err != nil || !strings.Contains(string(policy), `"8": [`) {
		t.Errorf("policy %s: %v", policy, err)
	}
}

func TestRunEnclaveWithFakeTools(t *testing.T) {
	env, dir, log := fakeTools(t)
	env[1] = "ATTEST=" + filepath.Join(dir, "bin", "fake-attest")
	eif := "../testdata/eif/synthetic-unsigned.eif"
	code, output := script(t, env, "run-enclave.sh", "--eif", eif, "--memory", "2048", "--terminate", "--", "--key", "rsa")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, output)
	}
	calls, _ := os.ReadFile(log)
	for _, want := range []string{
		"nitro-cli run-enclave --eif-path " + eif + " --memory 2048 --cpu-count 2",
		"fake-attest fetch --addr vsock://16:5005 --timeout 5s --allow-debug --any-pcrs",
		"fake-attest fetch --addr vsock://16:5005 --pcrs-from " + eif + " --key rsa",
		"nitro-cli terminate-enclave --enclave-id i-0123456789abcdef0-enc0123456789abcdef",
	} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	// Debug mode: no PCR policy can hold (PCR0-2 are zeros), said loudly.
	code, output = script(t, env, "run-enclave.sh", "--eif", eif, "--debug-mode", "--cid", "20")
	calls, _ = os.ReadFile(log)
	if code != 0 || !strings.Contains(output, "accepted without a PCR policy") ||
		!strings.Contains(string(calls), "--enclave-cid 20 --debug-mode") ||
		!strings.Contains(string(calls), "fetch --addr vsock://16:5005 --allow-debug --any-pcrs\n") {
		t.Errorf("debug mode: exit %d\n%s\n%s", code, output, calls)
	}
}

func TestMissingTools(t *testing.T) {
	env := []string{"PATH=/nonexistent:/usr/bin:/bin", "NITRO_CLI=no-such-nitro-cli", "DOCKER=no-such-docker"}
	if code, out := script(t, env, "build-eif.sh"); code != 1 || !strings.Contains(out, "no-such-docker is not installed") {
		t.Errorf("build-eif without docker: exit %d: %s", code, out)
	}
	if code, out := script(t, env, "run-enclave.sh", "--eif", "../testdata/eif/synthetic-unsigned.eif"); code != 1 || !strings.Contains(out, "no-such-nitro-cli is not installed") {
		t.Errorf("run-enclave without nitro-cli: exit %d: %s", code, out)
	}
}
