package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/attestd/attestd/eif"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/pcr"
	"github.com/attestd/attestd/platform"
)

func init() {
	register(cli.Command{Name: "eif", Summary: "describe or build an enclave image file (EIF)", Run: runEIF})
}

const eifUsage = `usage: attest eif describe FILE [--json] [--policy OUT.json]
       attest eif build --kernel FILE (--cmdline TEXT | --cmdline-file FILE) --ramdisk FILE [--ramdisk FILE]...
                        [--metadata FILE.json | --name NAME --version VERSION ...]
                        [--signing-key KEY.pem --signing-cert CERT.pem] --output FILE [--json]

describe checks an EIF strictly (layout, CRC, signature) and prints its PCRs; --json prints
the nitro-cli describe-eif object, then "Kernel" and "AttestdKernelCheck"; --policy writes a
PCR policy file for attest verify.
build writes an EIF the way nitro-cli lays it out and prints its PCRs.

Both read the kernel's release from the kernel section (bzImage setup header, arm64 Image
banner) and warn when attestd's start-up check would refuse it (too old). The warning is
advice, not a verdict: describe exits 0 for any image that parses, whatever its kernel.

build accepts nitro-cli's names for its flags: --private-key (--signing-key),
--signing-certificate (--signing-cert), --output-file (--output).

Exit status: 0 done, 1 an input was read and rejected (a malformed EIF, key or
metadata), 2 usage error (flags, files that cannot be opened, an --output that
cannot be written: a directory, a missing directory).
`

func runEIF(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("missing subcommand: describe or build")
	}
	switch args[0] {
	case "describe":
		return runEIFDescribe(args[1:], stdout, stderr)
	case "build":
		return runEIFBuild(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		io.WriteString(stdout, eifUsage)
		return cli.ErrHelp
	}
	return cli.Usagef("unknown subcommand %q: want describe or build", args[0])
}

func runEIFDescribe(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eif describe")
	jsonOut := fs.Bool("json", false, "print the nitro-cli describe-eif JSON")
	policy := fs.String("policy", "", "write a PCR policy `FILE` (PCR0, 1, 2 and 8 if signed) for attest verify --pcrs-from")
	pos, err := parseArgs(fs, eifUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("want exactly one EIF file, got %d arguments", len(pos))
	}
	img, err := parseEIFFile("EIF", pos[0])
	if err != nil {
		return err
	}
	if *policy != "" {
		if err := writeFileAtomic("--policy", *policy, func(f *os.File) error {
			_, err := f.Write(eifPolicyJSON(img))
			return err
		}); err != nil {
			return err
		}
	}
	if *jsonOut {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as nitro-cli prints it (eif.Description.JSON)
		enc.SetIndent("", "  ")
		if err := enc.Encode(eifDescribeJSON{eif.Describe(img), eifCheckKernel(img.Kernel)}); err != nil {
			return err
		}
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	eifPrint(stdout, pos[0], img, time.Now())
	return nil
}

// eifDescribeJSON is describe --json: nitro-cli's describe-eif object with eif's Kernel, then
// attestd's verdict on that kernel.
type eifDescribeJSON struct {
	*eif.Description
	AttestdKernelCheck eifKernelCheck
}

// Results of eifKernelCheck.
const (
	kernelOK          = "ok"          // at least platform.MinKernel
	kernelTooOld      = "too-old"     // older: attestd refuses to start
	kernelUnparseable = "unparseable" // attestd cannot parse the release: it refuses to start
	kernelUnknown     = "unknown"     // no release found: attestd decides at start-up
)

// eifKernelCheck is attestd's start-up kernel gate (platform.CheckKernel) applied ahead of
// time to the release the image's kernel declares, so that an image attestd will refuse is
// noticed when it is built, not when it boots.
type eifKernelCheck struct {
	Minimum string // platform.MinKernel
	Result  string // kernelOK, kernelTooOld, kernelUnparseable or kernelUnknown
	Refuses bool   // attestd will refuse to start on this kernel
	Detail  string `json:"-"` // why, for the text output
}

func eifCheckKernel(k eif.Kernel) eifKernelCheck {
	c := eifKernelCheck{Minimum: platform.MinKernel.String(), Result: kernelUnknown}
	if k.Release == "" {
		return c
	}
	v, err := platform.ParseRelease(k.Release)
	switch {
	case err != nil:
		c.Result, c.Refuses, c.Detail = kernelUnparseable, true, fmt.Sprintf("it cannot parse the release (%v)", err)
	case v.Compare(platform.MinKernel) < 0:
		c.Result, c.Refuses, c.Detail = kernelTooOld, true,
			fmt.Sprintf("kernel %s is older than %s, the first with the reworked random subsystem", v, platform.MinKernel)
	default:
		c.Result = kernelOK
	}
	return c
}

// eifPCRPolicy measures path if it is an EIF (it starts with the magic ".eif") and returns
// its PCRs as a verify policy: PCR0, PCR1, PCR2, and PCR8 if the image is signed. isEIF is
// false, with no error, for anything else (including "-", standard input).
func eifPCRPolicy(path string) (policy map[int][][]byte, isEIF bool, err error) {
	if path == "-" {
		return nil, false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, nil // the policy-file reader reports it
	}
	var head [4]byte
	n, _ := io.ReadFull(f, head[:])
	f.Close()
	if !eif.HasMagic(head[:n]) {
		return nil, false, nil
	}
	img, err := eif.ParseFile(path)
	if err != nil {
		return nil, true, err
	}
	m := img.Measurements
	policy = map[int][][]byte{0: {m.PCR0}, 1: {m.PCR1}, 2: {m.PCR2}}
	if m.PCR8 != nil {
		policy[8] = [][]byte{m.PCR8}
	}
	return policy, true, nil
}

// eifPolicyJSON is the PCR policy file shared with attest verify --pcrs-from:
// {"pcrs": {"0": ["<hex>"], ...}}.
func eifPolicyJSON(img *eif.Image) []byte {
	m := img.Measurements
	pcrs := map[string][]string{
		"0": {pcr.Hex(m.PCR0)},
		"1": {pcr.Hex(m.PCR1)},
		"2": {pcr.Hex(m.PCR2)},
	}
	if m.PCR8 != nil {
		pcrs["8"] = []string{pcr.Hex(m.PCR8)}
	}
	out, _ := json.MarshalIndent(map[string]any{"pcrs": pcrs}, "", "  ")
	return append(out, '\n')
}

func eifPrint(w io.Writer, name string, img *eif.Image, now time.Time) {
	h := img.Header
	fmt.Fprintf(w, "file          %s\n", name)
	fmt.Fprintf(w, "format        EIF version %d, %s, %d sections, CRC %08x ok\n", h.Version, h.Arch(), h.NumSections, h.CRC32)
	fmt.Fprintf(w, "defaults      %d MiB memory, %d CPUs\n", h.DefaultMemory>>20, h.DefaultCPUs)
	check := eifCheckKernel(img.Kernel)
	switch k := img.Kernel; check.Result {
	case kernelUnknown:
		fmt.Fprintf(w, "kernel        %s format, release unknown (attestd checks it at start-up: it needs %s or later)\n", k.Format, check.Minimum)
	case kernelOK:
		fmt.Fprintf(w, "kernel        %s, release %s (attestd needs %s or later: ok)\n", k.Format, k.Release, check.Minimum)
	default:
		fmt.Fprintf(w, "kernel        %s, release %s (attestd needs %s or later: REFUSED)\n", k.Format, k.Release, check.Minimum)
	}
	if md := img.Metadata; md != nil {
		b := md.BuildMetadata
		fmt.Fprintf(w, "image         %s %s (built %s with %s %s; %s %s)\n", md.ImageName, md.ImageVersion,
			b.BuildTime, b.BuildTool, b.BuildToolVersion, b.OperatingSystem, b.KernelVersion)
	}
	if s := img.Signature; s != nil {
		c := s.Certificate
		validity := "valid now"
		if !s.ValidAt(now) {
			validity = "NOT VALID NOW: nitro-cli refuses to run the image"
		}
		fmt.Fprintf(w, "signature     %s, verified; certificate %q, %s to %s (%s)\n", s.Algorithm, c.Subject.String(),
			c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly), validity)
	} else {
		fmt.Fprintf(w, "signature     none\n")
	}
	m := img.Measurements
	fmt.Fprintf(w, "PCR0          %s\n", pcr.Hex(m.PCR0))
	fmt.Fprintf(w, "PCR1          %s\n", pcr.Hex(m.PCR1))
	fmt.Fprintf(w, "PCR2          %s\n", pcr.Hex(m.PCR2))
	if m.PCR8 != nil {
		fmt.Fprintf(w, "PCR8          %s\n", pcr.Hex(m.PCR8))
	}
	fmt.Fprintf(w, "sections\n")
	for _, s := range img.Sections {
		fmt.Fprintf(w, "  %-10s  at %-10d %d bytes\n", s.Type, s.Offset, s.Size)
	}
	if check.Refuses {
		// Last, where a build log ends.
		fmt.Fprintf(w, "WARNING: attestd will refuse to start on this image's kernel: %s; build the EIF with a newer kernel (docs/enclave-image.md, \"The enclave kernel\")\n", check.Detail)
	}
}

// eifRepeated collects a repeatable flag.
type eifRepeated []string

func (r *eifRepeated) String() string     { return strings.Join(*r, ",") }
func (r *eifRepeated) Set(v string) error { *r = append(*r, v); return nil }

func runEIFBuild(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eif build")
	kernel := fs.String("kernel", "", "kernel image `FILE` (bzImage or Image)")
	cmdline := fs.String("cmdline", "", "kernel command line `TEXT`")
	cmdlineFile := fs.String("cmdline-file", "", "`FILE` holding the kernel command line (surrounding whitespace is trimmed, as nitro-cli does)")
	var ramdisks eifRepeated
	fs.Var(&ramdisks, "ramdisk", "ramdisk `FILE`, repeatable: the first is the bootstrap ramdisk (PCR1), the others the application (PCR2)")
	metadataFile := fs.String("metadata", "", "the whole metadata section as a JSON `FILE` (ImageName, ImageVersion, BuildMetadata, DockerInfo, CustomMetadata)")
	name := fs.String("name", "", "image `NAME` (default: the output file name without .eif)")
	version := fs.String("version", "1.0", "image `VERSION`")
	buildTime := fs.String("build-time", "", "build `TIME`, RFC 3339 (default: $SOURCE_DATE_EPOCH if set, else now)")
	osName := fs.String("os", "Unknown", "operating system `NAME` recorded in the metadata")
	kernelVersion := fs.String("kernel-version", "Unknown", "kernel `VERSION` recorded in the metadata")
	customFile := fs.String("custom-metadata", "", "JSON `FILE` recorded as CustomMetadata")
	arch := fs.String("arch", "x86_64", "`ARCH`: x86_64 or aarch64")
	signingKey, signingCert, output := new(string), new(string), new(string)
	fs.StringVar(signingKey, "signing-key", "", "PEM ECDSA private key `FILE` (P-256, P-384 or P-521) to sign the image with")
	fs.StringVar(signingKey, "private-key", "", "nitro-cli's name for --signing-key (`FILE`)")
	fs.StringVar(signingCert, "signing-cert", "", "PEM certificate `FILE` of the signing key (its hash becomes PCR8)")
	fs.StringVar(signingCert, "signing-certificate", "", "nitro-cli's name for --signing-cert (`FILE`)")
	fs.StringVar(output, "output", "", "EIF `FILE` to write")
	fs.StringVar(output, "output-file", "", "nitro-cli's name for --output (`FILE`)")
	jsonOut := fs.Bool("json", false, "print the measurements as nitro-cli build-enclave does")
	pos, err := parseArgs(fs, eifUsage, args, stdout)
	if err != nil {
		return err
	}
	for _, a := range [][2]string{{"signing-key", "private-key"}, {"signing-cert", "signing-certificate"}, {"output", "output-file"}} {
		if err := oneOfAliases(fs, a[0], a[1]); err != nil {
			return err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case len(pos) != 0:
		return cli.Usagef("unexpected argument %q", pos[0])
	case *kernel == "":
		return cli.Usagef("--kernel is required")
	case *output == "":
		return cli.Usagef("--output is required")
	case len(ramdisks) == 0:
		return cli.Usagef("at least one --ramdisk is required")
	case set["cmdline"] == set["cmdline-file"]:
		return cli.Usagef("give exactly one of --cmdline and --cmdline-file")
	case (*signingKey == "") != (*signingCert == ""):
		return cli.Usagef("--signing-key and --signing-cert go together")
	case *arch != "x86_64" && *arch != "aarch64":
		return cli.Usagef("--arch is x86_64 or aarch64, not %q", *arch)
	case *metadataFile != "" && (set["name"] || set["version"] || set["build-time"] || set["os"] || set["kernel-version"] || set["custom-metadata"]):
		return cli.Usagef("--metadata gives the whole metadata section: it excludes --name, --version, --build-time, --os, --kernel-version and --custom-metadata")
	}

	if err := checkOutput("--output", *output); err != nil {
		return err
	}
	in := eif.BuildInput{Arm64: *arch == "aarch64"}
	in.Cmdline = *cmdline
	if *cmdlineFile != "" {
		b, err := readInput("--cmdline-file", *cmdlineFile, eifMaxTextFile)
		if err != nil {
			return err
		}
		in.Cmdline = strings.TrimSpace(string(b))
	}
	if *metadataFile != "" {
		b, err := readInput("--metadata", *metadataFile, eifMaxTextFile)
		if err != nil {
			return err
		}
		md, err := eif.ParseMetadata(b)
		if err != nil {
			return rejectf(checkInput, "--metadata %s: %w", *metadataFile, err)
		}
		in.Metadata = *md
	} else {
		md, err := eifMetadata(*name, *version, *buildTime, *osName, *kernelVersion, *customFile, *output)
		if err != nil {
			return err
		}
		in.Metadata = *md
	}
	if *signingKey != "" {
		key, err := readInput("--signing-key", *signingKey, eifMaxTextFile)
		if err != nil {
			return err
		}
		cert, err := readInput("--signing-cert", *signingCert, eifMaxTextFile)
		if err != nil {
			return err
		}
		if in.Signer, err = eif.NewSigner(key, cert); err != nil {
			return rejectf(checkInput, "--signing-key/--signing-cert: %w", err)
		}
	}

	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	open := func(flag, path string) (*os.File, error) {
		f, err := openInput(flag, path)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	}
	k, err := open("--kernel", *kernel)
	if err != nil {
		return err
	}
	in.Kernel = k
	for _, path := range ramdisks {
		f, err := open("--ramdisk", path)
		if err != nil {
			return err
		}
		in.Ramdisks = append(in.Ramdisks, f)
	}

	var built *eif.Image
	if err := writeFileAtomic("--output", *output, func(f *os.File) (err error) {
		built, err = eif.Build(f, in)
		return err
	}); err != nil {
		return err
	}
	// Measure the written file independently of the builder: what is printed is what was written.
	img, err := eif.ParseFile(*output)
	if err != nil {
		return fmt.Errorf("the written image does not parse: %w", err)
	}
	if !eifSameMeasurements(img.Measurements, built.Measurements) {
		return fmt.Errorf("the written image measures differently from what was built")
	}
	if *jsonOut {
		out, err := json.MarshalIndent(map[string]any{"Measurements": eif.Describe(img).Measurements}, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	eifPrint(stdout, *output, img, time.Now())
	return nil
}

func eifSameMeasurements(a, b eif.Measurements) bool {
	return bytes.Equal(a.PCR0, b.PCR0) && bytes.Equal(a.PCR1, b.PCR1) && bytes.Equal(a.PCR2, b.PCR2) && bytes.Equal(a.PCR8, b.PCR8)
}

// eifMetadata makes the metadata section from flags, as eif_build does; the build time
// honours SOURCE_DATE_EPOCH so that reproducible pipelines write identical bytes.
func eifMetadata(name, version, buildTime, osName, kernelVersion, customFile, output string) (*eif.Metadata, error) {
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(output), ".eif")
	}
	var t time.Time
	switch epoch := os.Getenv("SOURCE_DATE_EPOCH"); {
	case buildTime != "":
		var err error
		if t, err = time.Parse(time.RFC3339, buildTime); err != nil {
			return nil, cli.Usagef("--build-time: %v", err)
		}
	case epoch != "":
		s, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return nil, cli.Usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", epoch)
		}
		t = time.Unix(s, 0)
	default:
		t = time.Now()
	}
	toolVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		toolVersion = bi.Main.Version
	}
	md := &eif.Metadata{
		ImageName:    name,
		ImageVersion: version,
		BuildMetadata: eif.BuildMetadata{
			// chrono's to_rfc3339 form, as nitro-cli writes it.
			BuildTime:        t.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05+00:00"),
			BuildTool:        "attest",
			BuildToolVersion: toolVersion,
			OperatingSystem:  osName,
			KernelVersion:    kernelVersion,
		},
	}
	if customFile != "" {
		b, err := readInput("--custom-metadata", customFile, eifMaxTextFile)
		if err != nil {
			return nil, err
		}
		if !json.Valid(b) {
			return nil, rejectf(checkInput, "--custom-metadata %s: not JSON", customFile)
		}
		md.CustomMetadata = json.RawMessage(b)
	}
	return md, nil
}

// eifMaxTextFile bounds the small files eif build reads whole (command line,
// metadata, key, certificate).
const eifMaxTextFile = 1 << 20

// parseEIFFile parses the EIF at path, named by flag: a file that cannot be
// opened is a usage error, one that does not parse a rejection.
func parseEIFFile(flag, path string) (*eif.Image, error) {
	f, err := openInput(flag, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, cli.Usagef("%s %s: %v", flag, path, pathErr(err))
	}
	if !st.Mode().IsRegular() {
		return nil, cli.Usagef("%s %s: not a regular file", flag, path)
	}
	img, err := eif.Parse(f, st.Size())
	if err != nil {
		return nil, rejectf(checkInput, "%s %s: %w", flag, path, err)
	}
	return img, nil
}
