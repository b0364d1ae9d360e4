package main

// End-to-end tests of the built attestd binary: the software NSM in-process
// (--nsm mock:DIR), and the FUSE mock device through the real ioctl
// (scripts/nsm-run.sh gives the binary a /dev/nsm; needs root and /dev/fuse).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/internal/testbin"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/mocknsm/fusedev"
	"github.com/attestd/attestd/mocknsm/fusedev/fusetest"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/platform"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/vsockrpc"
	"github.com/fxamacker/cbor/v2"
)

var attestdBin, nsmMockBin string

// notEnclave relaxes, on a device path, the start-up gates that depend on the
// host, which is not an enclave: its hwrng, kernel and clock source need not
// be an enclave's. (--nsm mock:DIR relaxes them by itself.)
const notEnclave = "--insecure-dev"

func TestMain(m *testing.M) {
	fusetest.RunHelperIfRequested(map[string]fusetest.Factory{
		"mock": func(dir string) (fusedev.Handler, error) { return mocknsm.Open(dir) },
	})
	testbin.Main(m, map[string]*string{
		"github.com/attestd/attestd/cmd/attestd":  &attestdBin,
		"github.com/attestd/attestd/cmd/nsm-mock": &nsmMockBin,
	})
}

// logBuffer collects a process's stderr and lets a test wait for a line.
type logBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	cond *sync.Cond
	eof  bool
}

func newLogBuffer(r io.Reader) *logBuffer {
	l := &logBuffer{}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.b.Write(sc.Bytes())
			l.b.WriteByte('\n')
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	return l
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wait blocks until the log contains s (true) or the stream ends (false).
// The caller's test timeout bounds it.
func (l *logBuffer) wait(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !strings.Contains(l.b.String(), s) {
		if l.eof {
			return false
		}
		l.cond.Wait()
	}
	return true
}

type daemon struct {
	cmd           *exec.Cmd
	log           *logBuffer
	parent, local string
	root          *attestation.Options
	exited        chan struct{}
	exitErr       error
}

// mockDir creates a software NSM state directory with optional faults.
func mockDir(t testing.TB, faults string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mock")
	if err := mocknsm.Init(dir, mocknsm.Config{}); err != nil {
		t.Fatal(err)
	}
	if faults != "" {
		if err := os.WriteFile(filepath.Join(dir, "faults.json"), []byte(faults), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func sockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "attestd") // short: unix socket paths have 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// start runs argv (attestd, possibly under a wrapper) serving on fresh unix
// sockets and waits until it is ready. rootPEM is the trust anchor.
func start(t testing.TB, rootPEM string, argv ...string) *daemon {
	t.Helper()
	sd := sockDir(t)
	d := &daemon{parent: "unix://" + filepath.Join(sd, "p"), local: "unix://" + filepath.Join(sd, "l"), exited: make(chan struct{})}
	argv = append(argv, "--listen", d.parent, "--local", d.local)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.log = newLogBuffer(stderr)
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				<-d.exited
			}
		}
		if t.Failed() {
			t.Logf("attestd log:\n%s", d.log)
		}
	})
	if !d.log.wait("attestd ready") {
		<-d.exited
		t.Fatalf("attestd did not start (%v):\n%s", d.exitErr, d.log)
	}
	pem, err := os.ReadFile(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	root, err := attestation.ParseRootPEM(pem)
	if err != nil {
		t.Fatal(err)
	}
	d.root = &attestation.Options{Root: root, AnyPCRs: true}
	return d
}

func startMock(t testing.TB, faults string, args ...string) *daemon {
	t.Helper()
	dir := mockDir(t, faults)
	argv := append([]string{attestdBin, "--nsm", "mock:" + dir}, args...)
	return start(t, filepath.Join(dir, "root.pem"), argv...)
}

// stop sends SIGTERM and returns the exit error (nil: exit status 0).
func (d *daemon) stop(t testing.TB) error {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	return d.exitErr
}

func (d *daemon) client(t testing.TB, addr string) *vsockrpc.Client {
	t.Helper()
	c, err := vsockrpc.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// attest fetches and verifies a document like attest fetch does.
func (d *daemon) attest(t testing.TB, c *vsockrpc.Client, key string) *attestation.Document {
	t.Helper()
	nonce := []byte("nonce " + key + " " + strconv.FormatInt(time.Now().UnixNano(), 10))
	res, err := c.Attest(context.Background(), nonce, key)
	if err != nil {
		t.Fatal(err)
	}
	return d.check(t, res, nonce)
}

func (d *daemon) check(t testing.TB, res *vsockrpc.AttestResult, nonce []byte) *attestation.Document {
	t.Helper()
	opts := *d.root
	opts.Nonce = nonce
	k, err := relyingparty.CheckResult(res, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k.Document()
}

func TestSoftwareNSMEndToEnd(t *testing.T) {
	d := startMock(t, "", "--user-data", "c0ffee", "--hpke-kem", "x25519", "--log-format", "json")
	parent, local := d.client(t, d.parent), d.client(t, d.local)
	for _, key := range []string{"hpke", "rsa"} {
		if doc := d.attest(t, parent, key); string(doc.UserData) != "\xc0\xff\xee" {
			t.Errorf("%s: user_data %x", key, doc.UserData)
		}
	}
	if err := local.SetUserData(context.Background(), []byte("app")); err != nil {
		t.Fatal(err)
	}
	if doc := d.attest(t, parent, "rsa"); string(doc.UserData) != "app" {
		t.Errorf("user_data after set_user_data: %q", doc.UserData)
	}
	desc, err := parent.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(desc.Entropy.KernelPool, "kernel pool not touched: software NSM") ||
		!strings.Contains(desc.Entropy.Source, "software NSM") || desc.Keys[0].Algorithm != "HPKE KEM 0x0020 (DHKEM(X25519, HKDF-SHA256))" {
		t.Errorf("describe: %+v", desc)
	}
	// The binary reports what its gates read on this host and that the
	// software NSM relaxed the host gates, with no flag.
	if p := desc.Platform; p.KernelRelease == "" || !slices.Equal(p.Relaxed, []string{"kernel", "clocksource", "hwrng"}) {
		t.Errorf("describe platform: %+v", p)
	}
	fi, err := os.Stat(strings.TrimPrefix(d.local, "unix://"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("local socket mode %v, %v", fi.Mode(), err)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	for _, want := range []string{`"msg":"kernel random pool not touched"`, `"msg":"INSECURE: development mode (--nsm mock:DIR)`, `"msg":"attestd stopped"`} {
		if !strings.Contains(d.log.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if n := strings.Count(d.log.String(), "INSECURE"); n != 1 {
		t.Errorf("%d INSECURE warnings, want one:\n%s", n, d.log)
	}
}

// TestFailsClosedWithoutNSMHWRNG: on a device (here the FUSE mock at
// /dev/nsm), the hwrng gate fails closed unless relaxed. (The software NSM
// relaxes it by itself: TestSoftwareNSMEndToEnd.)
// TestSocketGroup: --socket-group makes both unix sockets mode 0660, owned by
// the group, so a developer in the group needs no root; without it they are
// 0600 (TestSoftwareNSMEndToEnd).
func TestSocketGroup(t *testing.T) {
	gid := os.Getgid()
	d := startMock(t, "", "--socket-group", strconv.Itoa(gid))
	for _, addr := range []string{d.parent, d.local} {
		fi, err := os.Stat(strings.TrimPrefix(addr, "unix://"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o660 || int(st.Gid) != gid {
			t.Errorf("%s: mode %v, group %d; want 0660, %d", addr, fi.Mode().Perm(), st.Gid, gid)
		}
	}
	if !strings.Contains(d.log.String(), "--socket-group: the unix sockets are mode 0660") {
		t.Errorf("no warning:\n%s", d.log)
	}
	d.attest(t, d.client(t, d.parent), "rsa")
}

func TestFailsClosedWithoutNSMHWRNG(t *testing.T) {
	if b, err := os.ReadFile(filepath.Join(entropy.DefaultSysfsRoot, entropy.RNGCurrentPath)); err == nil && strings.TrimSpace(string(b)) == entropy.NSMHWRNG {
		t.Skip("this host's hwrng is nsm-hwrng")
	}
	fuseAvailable(t)
	state := filepath.Join(t.TempDir(), "state")
	if out, err := exec.Command(nsmMockBin, "init", "--dir", state).CombinedOutput(); err != nil {
		t.Fatalf("nsm-mock init: %v\n%s", err, out)
	}
	sd := sockDir(t)
	cmd := exec.Command("bash", "../../scripts/nsm-run.sh", "--dir", state, "--nsm-mock", nsmMockBin, "--",
		attestdBin, "--nsm", "/dev/nsm", "--listen", "unix://"+sd+"/p", "--local", "unix://"+sd+"/l",
		"--insecure-skip-kernel-check", "--insecure-skip-clocksource-check")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	// Either "active hwrng is X, want nsm-hwrng" or "cannot read the active hwrng".
	for _, want := range []string{"active hwrng", "--insecure-skip-hwrng-check"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "key generated") {
		t.Error("keys generated despite the failed hwrng check")
	}
	if _, err := os.Stat(sd + "/p"); !errors.Is(err, os.ErrNotExist) {
		t.Error("listening despite the failed hwrng check")
	}
}

// TestFailsClosedOnPlatform: where this host's kernel or clock source is not
// an enclave's, the binary refuses before opening the NSM, saying why and
// which flag relaxes it. (TestServeChecksPlatformFirst covers every case with
// fakes; this is the real host, through the real binary.)
func TestFailsClosedOnPlatform(t *testing.T) {
	_, kerr := platform.CheckKernel(nil)
	_, cerr := platform.CheckClockSource("", "")
	want, flag := kerr, "--insecure-skip-kernel-check"
	if want == nil {
		want, flag = cerr, "--insecure-skip-clocksource-check"
	}
	if want == nil {
		t.Skip("this host passes the kernel and clock-source gates")
	}
	// A device path (absent here: the gates come first); the software NSM
	// would relax the gates by itself.
	sd := sockDir(t)
	cmd := exec.Command(attestdBin, "--nsm", filepath.Join(sd, "nsm"), "--listen", "unix://"+sd+"/p", "--local", "unix://"+sd+"/l",
		"--insecure-skip-hwrng-check")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	for _, s := range []string{"error=" + strconv.Quote(want.Error()), flag + " relaxes this"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("output lacks %s:\n%s", s, out)
		}
	}
	for _, s := range []string{"NSM described", "key generated"} {
		if strings.Contains(string(out), s) {
			t.Errorf("%q despite the failed platform check:\n%s", s, out)
		}
	}
	if _, err := os.Stat(sd + "/p"); !errors.Is(err, os.ErrNotExist) {
		t.Error("listening despite the failed platform check")
	}
}

// TestDebugEnclave: in a debug-mode (mock) enclave the agent refuses to start:
// exit 1, one error line with the reason and the flag, no key, no listener.
// Relaxed, it starts, says INSECURE, and its documents fail verification
// unless the verifier is told to allow debug mode.
func TestDebugEnclave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mock")
	if err := mocknsm.Init(dir, mocknsm.Config{Debug: true}); err != nil {
		t.Fatal(err)
	}
	sd := sockDir(t)
	cmd := exec.Command(attestdBin, "--nsm", "mock:"+dir, "--listen", "unix://"+sd+"/p",
		"--local", "unix://"+sd+"/l", "--log-format", "json")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\n%s", err, out)
	}
	want := `"level":"ERROR","msg":"attestd failed","error":"platform: PCR0 is all zeros: the enclave runs in debug mode, whose documents no verifier should accept","hint":"run the enclave without --debug-mode; --insecure-skip-debug-check relaxes this`
	if !strings.Contains(string(out), want) || strings.Count(string(out), `"level":"ERROR"`) != 1 {
		t.Errorf("output lacks one error line %s:\n%s", want, out)
	}
	for _, s := range []string{"GetRandom", "entropy ready", "key generated"} {
		if strings.Contains(string(out), s) {
			t.Errorf("%q despite the failed not-debug check:\n%s", s, out)
		}
	}
	if _, err := os.Stat(sd + "/p"); !errors.Is(err, os.ErrNotExist) {
		t.Error("listening despite the failed not-debug check")
	}

	d := start(t, filepath.Join(dir, "root.pem"), attestdBin, "--nsm", "mock:"+dir, "--insecure-skip-debug-check")
	if !strings.Contains(d.log.String(), `msg="INSECURE: the not-debug self-check failed and is skipped (development only)`) {
		t.Errorf("no INSECURE warning:\n%s", d.log)
	}
	nonce := []byte("debug nonce")
	res, err := d.client(t, d.parent).Attest(context.Background(), nonce, "rsa")
	if err != nil {
		t.Fatal(err)
	}
	opts := *d.root
	opts.Nonce = nonce
	if _, err := attestation.Verify(res.Document, opts); !errors.Is(err, attestation.ErrDebug) {
		t.Errorf("verify a debug-mode document: %v, want ErrDebug", err)
	}
	opts.AllowDebug = true
	if _, err := attestation.Verify(res.Document, opts); err != nil {
		t.Errorf("verify with AllowDebug: %v", err)
	}
}

// TestUsage: every flag and address is checked before any start-up work: a
// mistake is one error line naming the flag as --flag, then a hint, exit 2,
// and nothing else ran (no log line: not even the gates). --help is on
// stdout, exit 0; --version prints the project's version.
func TestUsage(t *testing.T) {
	sd := sockDir(t)
	dir := mockDir(t, "")
	for _, c := range []struct {
		args []string
		want string // in the error line
	}{
		{[]string{"--bogus"}, "unknown flag --bogus"}, {[]string{"-bogus"}, "unknown flag --bogus"},
		{[]string{"extra"}, "unexpected argument"}, {[]string{"--nonce-max", "513"}, "--nonce-min/--nonce-max"},
		{[]string{"--nonce-min", "0"}, "--nonce-min"}, {[]string{"--nonce-min", "10", "--nonce-max", "5"}, "--nonce-min"},
		{[]string{"--user-data", "zz"}, "--user-data"}, {[]string{"--user-data", strings.Repeat("00", 513)}, "user_data"},
		{[]string{"--hpke-kem", "p256"}, "--hpke-kem"}, {[]string{"--local", "tcp://127.0.0.1:1"}, "--local"},
		{[]string{"--local", "vsock://:5"}, "--local"}, {[]string{"--listen", "http://x"}, "--listen"},
		{[]string{"--log-format", "xml"}, "--log-format"}, {[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--reseed-interval", "0s"}, "--reseed-interval"}, {[]string{"--max-conns", "0"}, "--max-conns"},
		{[]string{"--max-conns", "x"}, `--max-conns "x"`}, {[]string{"--insecure-dev=maybe"}, "--insecure-dev"},
		{[]string{"--user-data", "00", "--user-data-file", "/dev/null"}, "--user-data"},
		// Addresses Listen would refuse, found before the gates and the keys.
		{[]string{"--nsm", "mock:" + dir, "--listen", "tcp://0.0.0.0:5005"}, "--listen: vsockrpc: address \"tcp://0.0.0.0:5005\": tcp listens only on a loopback IP"},
		{[]string{"--nsm", "mock:" + dir, "--listen", "unix://" + sd + "/missing/p"}, "--listen: the socket's directory: " + sd + "/missing does not exist"},
		{[]string{"--nsm", "mock:" + dir, "--listen", "unix://" + sd + "/p", "--local", "unix://" + sd + "/missing/l"}, "--local: the socket's directory"},
		{[]string{"--nsm", "mock:" + dir, "--listen", "unix://" + sd + "/p", "--local", "unix://" + sd + "/p"}, "--listen and --local are the same socket"},
		{[]string{"--nsm", "mock:" + sd + "/nomock"}, "--nsm mock:" + sd + "/nomock: " + sd + "/nomock does not exist (create it with nsm-mock init"},
		{[]string{"--socket-group", "no-such-group-attestd"}, `--socket-group "no-such-group-attestd": no such group`},
		{[]string{"--nsm", ""}, "--nsm: the value is empty"}, {[]string{"--nsm", "mock:"}, "needs a directory"},
		{[]string{"--kms-handle-ttl", "0s"}, "--kms-handle-ttl"},
	} {
		cmd := exec.Command(attestdBin, c.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%q: %v, want exit 2\n%s", c.args, err, stderr.String())
			continue
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "attestd: ") || !strings.Contains(lines[0], c.want) ||
			lines[1] != "run 'attestd --help' for usage" || stdout.Len() != 0 {
			t.Errorf("%q: stderr %q, stdout %q; want one line with %q and the hint", c.args, stderr.String(), stdout.String(), c.want)
		}
	}
	out, err := exec.Command(attestdBin, "--version").Output()
	if want := "attestd " + version + " ("; err != nil || !strings.HasPrefix(string(out), want) || version == "dev" {
		t.Errorf("--version: %q, %v; want %q...", out, err, want)
	}
	for _, h := range []string{"-h", "--help"} {
		cmd := exec.Command(attestdBin, h)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() != 0 || !strings.HasPrefix(stdout.String(), "usage: attestd") ||
			!strings.Contains(stdout.String(), "\n  --insecure-dev\n") || strings.Contains(stdout.String(), "\n  -listen") {
			t.Errorf("%s: %v, stdout %q, stderr %q", h, err, stdout.String(), stderr.String())
		}
	}
}

// TestSIGTERMDrainsInFlight: an attest request is inside a slow NSM call when
// SIGTERM arrives; it still gets its document and the process exits 0.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	d := startMock(t, `{"Attestation": {"latency": "1500ms"}}`, "--log-level", "debug")
	c := d.client(t, d.parent)
	nonce := []byte("in flight at SIGTERM")
	type result struct {
		res *vsockrpc.AttestResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.Attest(context.Background(), nonce, "hpke")
		done <- result{res, err}
	}()
	if !d.log.wait("msg=attest ") { // the agent is about to call the NSM
		t.Fatalf("the request never reached the agent")
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if !d.log.wait("shutting down") {
		t.Fatal("no shutdown")
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("in-flight request: %v", r.err)
	}
	d.check(t, r.res, nonce)
	<-d.exited
	if d.exitErr != nil {
		t.Fatalf("exit: %v", d.exitErr)
	}
}

func TestFaultsFromFileAreTyped(t *testing.T) {
	d := startMock(t, `{"Attestation": {"error": "InternalError"}, "GetRandom": {"errno": "EIO"}}`)
	c := d.client(t, d.parent)
	for range 3 {
		_, err := c.Attest(context.Background(), []byte("n"), "rsa")
		var e *vsockrpc.Error
		if !errors.As(err, &e) || e.Code != vsockrpc.CodeNSMError || e.NSMCode != "InternalError" {
			t.Fatalf("err = %v", err)
		}
	}
	// Health reports that the agent cannot attest, and why.
	h, err := c.Health(context.Background())
	if err != nil || h.Status != vsockrpc.HealthNSMFailing || h.Attest.ConsecutiveFailures != 3 ||
		!strings.Contains(h.Attest.LastError, "InternalError") {
		t.Fatalf("health with every attestation failing: %+v, %v", h, err)
	}
	lc := d.client(t, d.local)
	_, err = lc.Random(context.Background(), 16)
	var e *vsockrpc.Error
	if !errors.As(err, &e) || e.Code != vsockrpc.CodeUnavailable {
		t.Fatalf("random with EIO: %v", err)
	}
}

// healthFrame is a raw health request.
func healthFrame(t testing.TB) []byte {
	body, err := cbor.Marshal(map[string]any{"v": vsockrpc.Version, "id": uint64(1), "method": "health"})
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// procStatus returns a field of /proc/PID/status in KiB.
func procStatus(t testing.TB, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestIdleConnectionsDoNotBlock opens 1,000 connections that each made one
// request and then stay idle; a new client is still served. It logs attestd's
// memory with them open.
func TestIdleConnectionsDoNotBlock(t *testing.T) {
	d := startMock(t, "")
	c := d.client(t, d.parent)
	d.attest(t, c, "hpke") // warm up
	rss0 := procStatus(t, d.cmd.Process.Pid, "VmRSS")
	path := strings.TrimPrefix(d.parent, "unix://")
	frame := healthFrame(t)
	conns := make([]net.Conn, 0, 1000)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for range 1000 {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		nc.SetDeadline(time.Now().Add(time.Minute))
		if _, err := nc.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := vsockrpc.ReadFrame(nc, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	fresh := d.client(t, d.parent)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nonce := []byte("with 1000 idle connections")
	res, err := fresh.Attest(ctx, nonce, "rsa")
	if err != nil {
		t.Fatalf("a new client with 1,000 idle connections open: %v", err)
	}
	d.check(t, res, nonce)
	t.Logf("attestd VmRSS %d KiB before, %d KiB with 1,000 idle connections (VmHWM %d KiB)",
		rss0, procStatus(t, d.cmd.Process.Pid, "VmRSS"), procStatus(t, d.cmd.Process.Pid, "VmHWM"))
}

// fuseAvailable skips unless root with /dev/fuse; under CI=true it fails.
func fuseAvailable(t testing.TB) {
	t.Helper()
	missing := ""
	if os.Geteuid() != 0 {
		missing = "root"
	} else if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = "/dev/fuse"
	} else if _, err := exec.LookPath("unshare"); err != nil {
		missing = "unshare"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the FUSE end-to-end test needs %s (CI=true)", missing)
	}
	t.Skipf("needs %s", missing)
}

// TestFUSEDeviceEndToEnd runs the unmodified binary with /dev/nsm answered by
// the FUSE mock device, through the real ioctl.
func TestFUSEDeviceEndToEnd(t *testing.T) {
	fuseAvailable(t)
	state := filepath.Join(t.TempDir(), "state")
	if out, err := exec.Command(nsmMockBin, "init", "--dir", state).CombinedOutput(); err != nil {
		t.Fatalf("nsm-mock init: %v\n%s", err, out)
	}
	d := start(t, filepath.Join(state, "root.pem"), "bash", "../../scripts/nsm-run.sh", "--dir", state,
		"--nsm-mock", nsmMockBin, "--", attestdBin, "--nsm", "/dev/nsm", notEnclave)
	c := d.client(t, d.parent)
	for _, key := range []string{"hpke", "rsa"} {
		d.attest(t, c, key)
	}
	desc, err := c.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A real device: the agent feeds the pool, but without credit since the
	// hwrng is not the NSM's here.
	if desc.Entropy.SeededBytes != entropy.DefaultSeedBytes || !strings.HasPrefix(desc.Entropy.KernelPool, "fed: 0 bits credited") ||
		strings.Contains(desc.Entropy.Source, "software") {
		t.Errorf("entropy = %+v", desc.Entropy)
	}
	lc := d.client(t, d.local)
	if v, err := lc.ExtendPCR(context.Background(), 16, []byte("app")); err != nil || len(v) != 48 {
		t.Fatalf("extend PCR16 through the device: %x, %v", v, err)
	}
	if err := d.stop(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, d.log)
	}
	if !strings.Contains(d.log.String(), "attestd stopped") {
		t.Errorf("attestd did not drain:\n%s", d.log)
	}
}

// BenchmarkAttestFUSE compares an attest round trip through the attestd
// binary on the FUSE device (client -> unix socket -> attestd -> ioctl ->
// FUSE -> software NSM in a helper process, and back) with a direct
// nsm.Session attestation on the same device, interleaved in one run.
// Metrics: ns-nsm/op, ns-roundtrip/op and roundtrip/nsm.
func BenchmarkAttestFUSE(b *testing.B) {
	state := filepath.Join(b.TempDir(), "state")
	if err := mocknsm.Init(state, mocknsm.Config{}); err != nil {
		b.Fatal(err)
	}
	dev := fusetest.Start(b, "mock", state)
	direct, err := nsm.Open(nsm.Options{Path: dev.Path})
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	d := start(b, filepath.Join(state, "root.pem"), attestdBin, "--nsm", dev.Path, notEnclave)
	c := d.client(b, d.parent)
	ctx := context.Background()
	desc, err := c.Describe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	spki := desc.Keys[1].PublicKey // rsa: bound whole, as the agent sends it
	nonce := make([]byte, 32)
	var tNSM, tRT time.Duration
	n := 0
	for b.Loop() {
		nonce[0]++
		t0 := time.Now()
		if _, err := direct.Attestation(ctx, nsm.AttestationRequest{Nonce: nonce, PublicKey: spki}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := c.Attest(ctx, nonce, "rsa"); err != nil {
			b.Fatal(err)
		}
		tRT += time.Since(t1)
		tNSM += t1.Sub(t0)
		n++
	}
	b.ReportMetric(float64(tNSM.Nanoseconds())/float64(n), "ns-nsm/op")
	b.ReportMetric(float64(tRT.Nanoseconds())/float64(n), "ns-roundtrip/op")
	b.ReportMetric(float64(tRT)/float64(tNSM), "roundtrip/nsm")
}
