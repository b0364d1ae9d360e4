package platform

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/testlog"
)

func TestParseRelease(t *testing.T) {
	for release, want := range map[string]Version{
		"6.1.0-27-amd64":                        {Major: 6, Minor: 1, Patch: 0},
		"5.17.12":                               {Major: 5, Minor: 17, Patch: 12},
		"6.18.44-fc-v595":                       {Major: 6, Minor: 18, Patch: 44},
		"5.10.215-203.850.amzn2.x86_64":         {Major: 5, Minor: 10, Patch: 215},
		"4.14.256-209.484.amzn2.x86_64":         {Major: 4, Minor: 14, Patch: 256},
		"6.6.38":                                {Major: 6, Minor: 6, Patch: 38},
		"6.8.5-301.fc40.x86_64":                 {Major: 6, Minor: 8, Patch: 5},
		"5.15.0-105-generic":                    {Major: 5, Minor: 15, Patch: 0},
		"6.9.7-arch1-1":                         {Major: 6, Minor: 9, Patch: 7},
		"6.1.0+":                                {Major: 6, Minor: 1, Patch: 0},
		"5.15.153.1-microsoft-standard-WSL2":    {Major: 5, Minor: 15, Patch: 153},
		"5.17.12_custom":                        {Major: 5, Minor: 17, Patch: 12},
		"5.4.0-rcu":                             {Major: 5, Minor: 4, Patch: 0},
		"5.18.0-rc1":                            {Major: 5, Minor: 18, Patch: 0, RC: 1},
		"5.17.12-rc1":                           {Major: 5, Minor: 17, Patch: 12, RC: 1},
		"6.10.0-rc3-next-20240610":              {Major: 6, Minor: 10, Patch: 0, RC: 3},
		"6.10.0-rc12+":                          {Major: 6, Minor: 10, Patch: 0, RC: 12},
		"0.0.0":                                 {},
		"9999.9999.9999":                        {Major: 9999, Minor: 9999, Patch: 9999},
		"6.1.0-" + strings.Repeat("x", 64-6):    {Major: 6, Minor: 1, Patch: 0}, // exactly MaxReleaseLen
		"10.0.0-0.rc3.31.fc41.x86_64":           {Major: 10},                    // Fedora spells its rc inside the suffix
		"5.17.12-Custom.Build_2+dirty-AB.CD-ef": {Major: 5, Minor: 17, Patch: 12},
	} {
		got, err := ParseRelease(release)
		if err != nil || got != want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v", release, got, err, want)
		}
	}
}

func TestParseReleaseRejects(t *testing.T) {
	for _, release := range []string{
		"", "5", "5.17", "5.17.", "5..12", ".5.17.12",
		"abc", "v5.17.12", "5.17.12abc", "5.17.12 ", " 5.17.12", "5.17.12\n", "5.17.12\x00",
		"05.17.12", "5.017.12", "5.17.012", "12345.0.0", "5.12345.0", "5.17.12345",
		"-5.17.12", "+5.17.12", "5.-17.12", "5.17.-12", "5,17,12", "5.17.12/x", "5.17.12-é", "5.17.12-a b",
		"5.17.12-rc", "5.17.12-rc0", "5.17.12-rc01", "5.17.12-rc1x", "5.17.12-rc12345",
		strings.Repeat("9", 65), "6.1.0-" + strings.Repeat("x", 64-5), strings.Repeat("5.17.12-", 1000),
	} {
		v, err := ParseRelease(release)
		if err == nil {
			t.Errorf("ParseRelease(%q) = %v, want an error", release, v)
			continue
		}
		if !errors.Is(err, ErrBadRelease) || v != (Version{}) {
			t.Errorf("ParseRelease(%q) = %v, %v; want the zero Version and ErrBadRelease", release, v, err)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\n\x00") || len(msg) > 200 {
			t.Errorf("ParseRelease(%q): error is not one short line: %q", release, msg)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	ordered := []string{"4.14.256", "5.10.0", "5.10.119", "5.17.11", "5.17.12-rc1", "5.17.12-rc2", "5.17.12",
		"5.17.13", "5.18.0-rc1", "5.18.0", "6.1.0", "6.10.0-rc3", "6.10.0", "10.0.0"}
	vs := make([]Version, len(ordered))
	for i, s := range ordered {
		v, err := ParseRelease(s)
		if err != nil {
			t.Fatal(err)
		}
		if v.String() != s {
			t.Errorf("%q: String() = %q", s, v)
		}
		vs[i] = v
	}
	for i := range vs {
		for j := range vs {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := vs[i].Compare(vs[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", vs[i], vs[j], got, want)
			}
		}
	}
}

func release(s string) func() (string, error) { return func() (string, error) { return s, nil } }

func TestCheckKernel(t *testing.T) {
	for r, ok := range map[string]bool{
		"6.1.0-27-amd64":                true,
		"5.17.12":                       true,
		"5.17.13":                       true,
		"5.18.0-rc1":                    true,
		"6.6.38":                        true,
		"6.18.44-fc-v595":               true,
		"5.17.12-rc1":                   false, // a release candidate of the minimum comes before it
		"5.17.11":                       false,
		"5.10.0":                        false,
		"5.10.215-203.850.amzn2.x86_64": false, // stable-series backports are not assumed (see MinKernel)
		"4.14.256-209.484.amzn2.x86_64": false, // nitro-cli's bundled enclave kernel
	} {
		v, err := CheckKernel(release(r))
		if ok {
			if err != nil {
				t.Errorf("%q: %v", r, err)
			}
			continue
		}
		var ke *KernelError
		if !errors.As(err, &ke) || ke.Release != r || ke.Version != v || ke.Err != nil {
			t.Errorf("%q: %v (%#v), want a KernelError for the old version", r, err, err)
			continue
		}
		for _, want := range []string{r, v.String(), "older than 5.17.12", "random"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: error %q lacks %q", r, err, want)
			}
		}
	}
}

func TestCheckKernelUnreadableOrMalformed(t *testing.T) {
	for _, r := range []string{"", "5", "5.17", "abc", "5.17.12 x", strings.Repeat("6", 100)} {
		_, err := CheckKernel(release(r))
		var ke *KernelError
		if !errors.As(err, &ke) || !errors.Is(err, ErrBadRelease) || ke.Release != r {
			t.Errorf("%q: %v, want a KernelError wrapping ErrBadRelease", r, err)
		}
		if strings.Count(err.Error(), "platform:") != 1 || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q is not one clear line", r, err)
		}
	}
	boom := errors.New("uname: operation not permitted")
	_, err := CheckKernel(func() (string, error) { return "", boom })
	var ke *KernelError
	if !errors.As(err, &ke) || !errors.Is(err, boom) || !strings.Contains(err.Error(), "cannot read the kernel release") {
		t.Errorf("unreadable release: %v", err)
	}
}

// TestUname reads this host's release, whatever it is.
func TestUname(t *testing.T) {
	r, err := Uname()
	if err != nil || r == "" || len(r) > MaxReleaseLen || strings.ContainsRune(r, 0) {
		t.Fatalf("Uname() = %q, %v", r, err)
	}
	v, err := ParseRelease(r)
	t.Logf("this host: %q -> %v, %v", r, v, err)
}

// fakeSysfs writes current_clocksource under a temporary sysfs root.
func fakeSysfs(t *testing.T, clocksource string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, ClockSourcePath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(clocksource), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckClockSource(t *testing.T) {
	for _, c := range []struct {
		content, goarch, want string
		ok                    bool
	}{
		{"kvm-clock\n", "amd64", "kvm-clock", true},
		{"  kvm-clock \n", "amd64", "kvm-clock", true},
		{"arch_sys_counter\n", "arm64", "arch_sys_counter", true},
		{"tsc\n", "amd64", "tsc", false},
		{"hpet\n", "amd64", "hpet", false},
		{"kvm-clock-evil\n", "amd64", "kvm-clock-evil", false},
		{"kvm-clock\n", "arm64", "kvm-clock", false},
		{"\n", "amd64", "", false},
		{"kvm-clock\n", "riscv64", "kvm-clock", false}, // no trusted clock source known there
	} {
		got, err := CheckClockSource(fakeSysfs(t, c.content), c.goarch)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("%q on %s: %q, %v", c.content, c.goarch, got, err)
			}
			continue
		}
		var ce *ClockSourceError
		if !errors.As(err, &ce) || ce.Current != c.want || ce.Want != ExpectedClockSource(c.goarch) || ce.Err != nil {
			t.Errorf("%q on %s: %q, %v; want a ClockSourceError", c.content, c.goarch, got, err)
			continue
		}
		if !strings.Contains(err.Error(), "clock source is") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q on %s: error %q", c.content, c.goarch, err)
		}
	}
}

func TestCheckClockSourceUnreadable(t *testing.T) {
	_, err := CheckClockSource(t.TempDir(), "amd64")
	var ce *ClockSourceError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cannot read the clock source") {
		t.Errorf("missing file: %v", err)
	}
	_, err = CheckClockSource(fakeSysfs(t, "kvm-clock"+strings.Repeat(" ", maxClockSource)), "amd64")
	if !errors.As(err, &ce) || ce.Err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestExpectedClockSource(t *testing.T) {
	for goarch, want := range map[string]string{"amd64": "kvm-clock", "arm64": "arch_sys_counter", "386": "", "riscv64": "", "": ""} {
		if got := ExpectedClockSource(goarch); got != want {
			t.Errorf("%q: %q, want %q", goarch, got, want)
		}
	}
}

func TestCheckNotDebug(t *testing.T) {
	image := bytes.Repeat([]byte{0x5a}, PCRSize)
	lastByte := make([]byte, PCRSize)
	lastByte[PCRSize-1] = 1
	for _, c := range []struct {
		name   string
		pcr0   []byte
		locked bool
		want   string // "" passes
	}{
		{"production", image, true, ""},
		{"one non-zero byte", lastByte, true, ""},
		{"debug mode", make([]byte, PCRSize), true, "debug mode"},
		{"debug mode, unlocked", make([]byte, PCRSize), false, "debug mode"},
		{"unlocked", image, false, "not locked"},
		{"short", image[:47], true, "47 bytes, want 48"},
		{"long", append(image, 1), true, "49 bytes, want 48"},
		{"empty", nil, true, "0 bytes, want 48"},
	} {
		err := CheckNotDebug(c.pcr0, c.locked)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var de *DebugCheckError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "platform: PCR0 ") {
			t.Errorf("%s: %v, want a DebugCheckError saying %q", c.name, err, c.want)
		}
	}
}

func newLog() (*slog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	return slog.New(slog.NewJSONHandler(buf, nil)), buf
}

func TestCheck(t *testing.T) {
	good, old := release("6.1.0-27-amd64"), release("5.10.0")
	kvm, tsc := fakeSysfs(t, "kvm-clock\n"), fakeSysfs(t, "tsc\n")
	for _, c := range []struct {
		name       string
		cfg        Config
		wantErr    any // nil, **KernelError or **ClockSourceError
		wantReport Report
		wantLog    []string // substrings of the log
		notWantLog []string
	}{
		{
			name:       "all good",
			cfg:        Config{Release: good, SysfsRoot: kvm, GOARCH: "amd64"},
			wantReport: Report{"6.1.0-27-amd64", "kvm-clock"},
			wantLog:    []string{`"level":"INFO","msg":"kernel version checked","component":"platform","version":"6.1.0","minimum":"5.17.12"`, `"msg":"clock source checked","component":"platform","clocksource":"kvm-clock"`},
			notWantLog: []string{"INSECURE"},
		},
		{
			name:       "old kernel: the clock is not even read",
			cfg:        Config{Release: old, SysfsRoot: kvm, GOARCH: "amd64", SkipClockSourceCheck: true},
			wantErr:    new(*KernelError),
			wantReport: Report{KernelRelease: "5.10.0"},
			notWantLog: []string{"clock source", "INSECURE"},
		},
		{
			name:    "old kernel, relaxed",
			cfg:     Config{Release: old, SysfsRoot: kvm, GOARCH: "amd64", SkipKernelCheck: true},
			wantLog: []string{`"level":"WARN","msg":"INSECURE: the kernel check failed and is skipped (development only)","component":"platform","error":"platform: kernel 5.10.0`, `"msg":"clock source checked"`},
		},
		{
			name:       "wrong clock",
			cfg:        Config{Release: good, SysfsRoot: tsc, GOARCH: "amd64", SkipKernelCheck: true},
			wantErr:    new(*ClockSourceError),
			wantLog:    []string{`"msg":"kernel version checked"`},
			notWantLog: []string{"INSECURE"},
		},
		{
			name:    "wrong clock, relaxed",
			cfg:     Config{Release: good, SysfsRoot: tsc, GOARCH: "amd64", SkipClockSourceCheck: true},
			wantLog: []string{`"level":"WARN","msg":"INSECURE: the clock source check failed and is skipped (development only)","component":"platform","error":"platform: clock source is \"tsc\", want \"kvm-clock\"`},
		},
		{
			name:       "both fail, both relaxed",
			cfg:        Config{Release: old, SysfsRoot: tsc, GOARCH: "amd64", SkipKernelCheck: true, SkipClockSourceCheck: true},
			wantReport: Report{"5.10.0", "tsc"},
			wantLog:    []string{"INSECURE: the kernel check", "INSECURE: the clock source check"},
		},
		{
			name:    "arm64",
			cfg:     Config{Release: good, SysfsRoot: fakeSysfs(t, "arch_sys_counter\n"), GOARCH: "arm64"},
			wantLog: []string{`"clocksource":"arch_sys_counter"`},
		},
	} {
		log, buf := newLog()
		c.cfg.Logger = log
		rep, err := Check(c.cfg)
		if c.wantReport != (Report{}) && rep != c.wantReport {
			t.Errorf("%s: report %+v, want %+v", c.name, rep, c.wantReport)
		}
		switch target := c.wantErr.(type) {
		case nil:
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		default:
			if !errors.As(err, target) {
				t.Errorf("%s: err = %v, want %T", c.name, err, target)
			}
		}
		for _, s := range c.wantLog {
			if !strings.Contains(buf.String(), s) {
				t.Errorf("%s: log lacks %s:\n%s", c.name, s, buf)
			}
		}
		for _, s := range c.notWantLog {
			if strings.Contains(buf.String(), s) {
				t.Errorf("%s: log has %s:\n%s", c.name, s, buf)
			}
		}
	}
}
