// Package platform holds attestd's start-up gates on the platform it runs on.
// Each fails closed with a typed error:
//
//   - the kernel is at least MinKernel, the first release with the reworked
//     random subsystem (CheckKernel, through uname(2));
//   - the clock source is the hypervisor's: kvm-clock on x86-64,
//     arch_sys_counter on arm64 (CheckClockSource, through sysfs);
//   - the enclave is not in debug mode: PCR0 is locked and not all zeros
//     (CheckNotDebug; the agent reads PCR0 through the NSM).
//
// Check runs the first two and logs each result; a development build may
// relax either one, and then it logs an INSECURE warning instead of failing.
// The hwrng gate lives in package entropy, beside the seeding it guards.
//
// The sysfs root and the kernel release are injectable, so tests use a
// temporary directory and fixed strings and never read the host.
package platform

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	// DefaultSysfsRoot is where sysfs is mounted.
	DefaultSysfsRoot = "/sys"
	// ClockSourcePath is the active clock source's name, relative to the
	// sysfs root.
	ClockSourcePath = "devices/system/clocksource/clocksource0/current_clocksource"
	// MaxReleaseLen is the longest release uname(2) returns: struct utsname
	// has 65 bytes for it, the terminating NUL included.
	MaxReleaseLen = 64
	// PCRSize is the length of an NSM PCR (SHA-384).
	PCRSize = 48

	// maxClockSource bounds the sysfs read: clock source names are short.
	maxClockSource = 256
	// maxDigits bounds each numeric part of a release (sublevels reach the
	// hundreds; four digits leave room and keep every value far from overflow).
	maxDigits = 4
)

// MinKernel is the oldest kernel the agent accepts: 5.17.12, the first release
// with the reworked random subsystem (Trail of Bits, "A few notes on AWS
// Nitro Enclaves: Attack surface", 2024).
//
// Why one mainline rule rather than a table of stable-series minimums: the
// rework was also backported to older stable series (5.15.y, 5.10.y and
// others), but a release string only claims a base version, vendor kernels
// carry their own patch sets on top of it, and the per-series boundaries have
// not been checked here against the kernel.org changelogs; a wrong row would
// quietly accept a kernel without the rework. Kernels built for enclaves
// today (aws-nitro-enclaves-sdk-bootstrap: 6.6.y) pass; nitro-cli's bundled
// 4.14 kernel fails under either rule. Whoever has vetted a stable-series
// kernel relaxes this one gate, visibly, with --insecure-skip-kernel-check.
var MinKernel = Version{Major: 5, Minor: 17, Patch: 12}

// ErrBadRelease reports a kernel release that is not MAJOR.MINOR.PATCH
// followed by an optional suffix.
var ErrBadRelease = errors.New("platform: malformed kernel release")

// Version is a kernel version: MAJOR.MINOR.PATCH, and RC n > 0 for an -rcN
// pre-release, which comes before the release itself.
type Version struct {
	Major, Minor, Patch int
	RC                  int
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.RC > 0 {
		s += fmt.Sprintf("-rc%d", v.RC)
	}
	return s
}

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer than w.
func (v Version) Compare(w Version) int {
	for _, d := range [...]int{v.Major - w.Major, v.Minor - w.Minor, v.Patch - w.Patch} {
		if d != 0 {
			return sign(d)
		}
	}
	switch {
	case v.RC == w.RC:
		return 0
	case v.RC == 0: // the release comes after its pre-releases
		return 1
	case w.RC == 0:
		return -1
	}
	return sign(v.RC - w.RC)
}

func sign(d int) int {
	if d < 0 {
		return -1
	}
	return 1
}

// ParseRelease parses a kernel release as uname -r prints it:
// MAJOR.MINOR.PATCH (decimal, no leading zeros, at most 4 digits each), then
// optionally -rcN, then optionally a suffix that starts with '-', '+', '.' or
// '_' and holds only ASCII letters, digits and those four characters. For
// example "6.1.0-27-amd64" is 6.1.0, "5.10.215-203.850.amzn2.x86_64" is
// 5.10.215 and "5.18.0-rc1" is 5.18.0-rc1. Errors wrap ErrBadRelease.
func ParseRelease(release string) (Version, error) {
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("%w %q: %s", ErrBadRelease, release, why)
	}
	switch {
	case release == "":
		return Version{}, fmt.Errorf("%w: empty", ErrBadRelease)
	case len(release) > MaxReleaseLen:
		return Version{}, fmt.Errorf("%w: %d bytes, over %d", ErrBadRelease, len(release), MaxReleaseLen)
	}
	var v Version
	rest := release
	for i, part := range [...]*int{&v.Major, &v.Minor, &v.Patch} {
		if i > 0 {
			var ok bool
			if rest, ok = strings.CutPrefix(rest, "."); !ok {
				return bad("want MAJOR.MINOR.PATCH")
			}
		}
		n, r, ok := number(rest)
		if !ok {
			return bad("want MAJOR.MINOR.PATCH, decimal without leading zeros")
		}
		*part, rest = n, r
	}
	// -rcN is a pre-release; "-rc" followed by a letter ("-rcu") starts a suffix.
	if after, ok := strings.CutPrefix(rest, "-rc"); ok && (after == "" || after[0] >= '0' && after[0] <= '9') {
		n, r, ok := number(after)
		if !ok || n == 0 || (r != "" && !isSeparator(r[0])) {
			return bad("want -rcN with N from 1, then the end or a suffix")
		}
		v.RC, rest = n, r
	}
	if rest != "" && !isSeparator(rest[0]) {
		return bad("the version must end, or be followed by '-', '+', '.' or '_'")
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !isSeparator(c) && !isAlnum(c) {
			return bad(fmt.Sprintf("byte %#04x in the suffix", c))
		}
	}
	return v, nil
}

// number reads a decimal of 1..maxDigits digits without leading zeros from
// the start of s.
func number(s string) (n int, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > maxDigits || (i > 1 && s[0] == '0') {
		return 0, s, false
	}
	for _, c := range s[:i] {
		n = n*10 + int(c-'0')
	}
	return n, s[i:], true
}

func isSeparator(c byte) bool { return c == '-' || c == '+' || c == '.' || c == '_' }

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// KernelError reports a kernel older than MinKernel, or a release that cannot
// be read or parsed.
type KernelError struct {
	Release string  // as uname(2) gave it ("" when unreadable)
	Version Version // parsed; zero when Err is set
	Err     error   // the read or parse error, if any
}

func (e *KernelError) Error() string {
	switch {
	case e.Err != nil && errors.Is(e.Err, ErrBadRelease):
		return e.Err.Error()
	case e.Err != nil:
		return fmt.Sprintf("platform: cannot read the kernel release: %v", e.Err)
	}
	return fmt.Sprintf("platform: kernel %s (release %q) is older than %s, the first with the reworked random subsystem",
		e.Version, e.Release, MinKernel)
}

func (e *KernelError) Unwrap() error { return e.Err }

// CheckKernel reads the kernel release with release (nil: uname(2)) and
// requires at least MinKernel. The error is a *KernelError.
func CheckKernel(release func() (string, error)) (Version, error) {
	if release == nil {
		release = Uname
	}
	r, err := release()
	if err != nil {
		return Version{}, &KernelError{Err: err}
	}
	v, err := ParseRelease(r)
	if err != nil {
		return Version{}, &KernelError{Release: r, Err: err}
	}
	if v.Compare(MinKernel) < 0 {
		return v, &KernelError{Release: r, Version: v}
	}
	return v, nil
}

// Uname returns the running kernel's release (uname -r).
func Uname() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// ExpectedClockSource is the clock source a Nitro Enclave on goarch must use,
// or "" when none is known. On x86-64 it is kvm-clock, the hypervisor's
// paravirtual clock, rather than a raw TSC; arm64 guests have only the
// architected timer, which the hypervisor virtualises.
func ExpectedClockSource(goarch string) string {
	switch goarch {
	case "amd64":
		return "kvm-clock"
	case "arm64":
		return "arch_sys_counter"
	}
	return ""
}

// ClockSourceError reports a clock source other than the expected one, or one
// that cannot be read.
type ClockSourceError struct {
	Current string // trimmed current_clocksource, "" when unreadable
	Want    string // ExpectedClockSource, "" when none is known
	GOARCH  string
	Err     error // the read error, if any
}

func (e *ClockSourceError) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("platform: cannot read the clock source: %v", e.Err)
	case e.Want == "":
		return fmt.Sprintf("platform: clock source is %q, and no trusted clock source is known on %s", e.Current, e.GOARCH)
	}
	return fmt.Sprintf("platform: clock source is %q, want %q (the hypervisor's clock)", e.Current, e.Want)
}

func (e *ClockSourceError) Unwrap() error { return e.Err }

// CheckClockSource reads the active clock source under sysfsRoot (""
// DefaultSysfsRoot) and requires ExpectedClockSource(goarch) ("" runtime.GOARCH).
// The error is a *ClockSourceError.
func CheckClockSource(sysfsRoot, goarch string) (string, error) {
	if sysfsRoot == "" {
		sysfsRoot = DefaultSysfsRoot
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	want := ExpectedClockSource(goarch)
	current, err := readSmall(filepath.Join(sysfsRoot, ClockSourcePath), maxClockSource)
	if err != nil {
		return "", &ClockSourceError{Want: want, GOARCH: goarch, Err: err}
	}
	if want == "" || current != want {
		return current, &ClockSourceError{Current: current, Want: want, GOARCH: goarch}
	}
	return current, nil
}

// readSmall reads a sysfs attribute of at most max bytes, trimmed.
func readSmall(path string, max int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return "", err
	}
	if len(b) > max {
		return "", fmt.Errorf("%s is longer than %d bytes", path, max)
	}
	return strings.TrimSpace(string(b)), nil
}

// DebugCheckError reports a failed not-debug self-check.
type DebugCheckError struct {
	Reason string
}

func (e *DebugCheckError) Error() string { return "platform: " + e.Reason }

// CheckNotDebug is the not-debug self-check on PCR0 as the NSM describes it.
// An enclave started in debug mode has PCR0 (and PCR1, PCR2) all zeros and
// the parent can read its memory: no verifier should accept its documents, so
// the agent must not start. PCR0 must also be locked: only then is it the
// measurement of the booted image rather than a value someone extended. The
// error is a *DebugCheckError.
func CheckNotDebug(pcr0 []byte, locked bool) error {
	if len(pcr0) != PCRSize {
		return &DebugCheckError{Reason: fmt.Sprintf("PCR0 is %d bytes, want %d", len(pcr0), PCRSize)}
	}
	zero := true
	for _, b := range pcr0 {
		zero = zero && b == 0
	}
	if zero {
		return &DebugCheckError{Reason: "PCR0 is all zeros: the enclave runs in debug mode, whose documents no verifier should accept"}
	}
	if !locked {
		return &DebugCheckError{Reason: "PCR0 is not locked, so it is not the measurement of the booted image"}
	}
	return nil
}

// Config configures Check. The zero Config checks the running host.
type Config struct {
	// SysfsRoot is where sysfs is mounted (default DefaultSysfsRoot).
	SysfsRoot string
	// Release returns the kernel release; nil means Uname.
	Release func() (string, error)
	// GOARCH picks the expected clock source (default runtime.GOARCH).
	GOARCH string

	// SkipKernelCheck and SkipClockSourceCheck let start-up continue when
	// that gate fails. For development only; each failure is then logged as
	// an INSECURE warning.
	SkipKernelCheck      bool
	SkipClockSourceCheck bool
	// QuietSkips logs a skipped gate's failure at info level instead of as
	// an INSECURE warning: the caller relaxed the gates together (attestd's
	// --nsm mock:DIR or --insecure-dev) and logged one INSECURE warning for
	// all of them.
	QuietSkips bool

	Logger *slog.Logger // default slog.Default()
}

// Report is what Check read: the kernel release and the clock source, each ""
// when it could not be read (or was not reached).
type Report struct {
	KernelRelease string
	ClockSource   string
}

// Check runs the kernel gate, then the clock-source gate, and logs each
// result. It returns what it read and the first failure of a gate that is not
// skipped, a *KernelError or a *ClockSourceError.
func Check(cfg Config) (Report, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "platform")
	release := cfg.Release
	if release == nil {
		release = Uname
	}

	var rep Report
	v, err := CheckKernel(func() (string, error) {
		r, err := release()
		rep.KernelRelease = r
		return r, err
	})
	switch {
	case err != nil && !cfg.SkipKernelCheck:
		return rep, err
	case err != nil:
		skipped(log, cfg.QuietSkips, "kernel", err)
	default:
		log.Info("kernel version checked", "version", v.String(), "minimum", MinKernel.String())
	}

	rep.ClockSource, err = CheckClockSource(cfg.SysfsRoot, cfg.GOARCH)
	switch {
	case err != nil && !cfg.SkipClockSourceCheck:
		return rep, err
	case err != nil:
		skipped(log, cfg.QuietSkips, "clock source", err)
	default:
		log.Info("clock source checked", "clocksource", rep.ClockSource)
	}
	return rep, nil
}

// skipped logs the failure of a relaxed gate.
func skipped(log *slog.Logger, quiet bool, gate string, err error) {
	if quiet {
		log.Info("the "+gate+" check failed and is relaxed (development mode)", "error", err.Error())
		return
	}
	log.Warn("INSECURE: the "+gate+" check failed and is skipped (development only)", "error", err.Error())
}
