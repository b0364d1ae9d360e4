// Command attestd is the attestation agent that runs inside a Nitro Enclave.
//
// Start-up, in this order: check the kernel version (at least 5.17.12) and
// the clock source (kvm-clock; arch_sys_counter on arm64); open the NSM and
// check that PCR0 is locked and not zero (not a debug-mode enclave); feed the
// kernel's entropy pool from the NSM (after checking that the active hwrng is
// nsm-hwrng); generate the ephemeral HPKE and RSA keys; listen for the parent
// (--listen, vsock by default) and for applications inside the enclave
// (--local, a unix socket of mode 0600). Each check fails closed unless its
// --insecure-skip-*-check flag relaxes it, loudly, for development. SIGTERM or
// SIGINT stops accepting, lets requests in flight finish and closes the NSM.
//
// Exit codes: 0 clean shutdown (or --help/--version), 1 failure, 2 usage error.
// See docs/agent.md.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/internal/cliflag"
	internalversion "github.com/attestd/attestd/internal/version"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/platform"
	"github.com/attestd/attestd/vsockrpc"
)

// version is the agent version: the project's one constant, so a build is
// reproducible from the tree alone.
const version = internalversion.Version

const mockPrefix = "mock:"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the parsed flags.
type options struct {
	nsmPath      string
	listen       string
	local        string
	logFormat    string
	logLevel     string
	nonceMin     int
	nonceMax     int
	allowNoNonce bool
	userData     []byte
	hpkeKEM      string
	skipHWRNG    bool
	skipDebug    bool
	// devMode names what relaxed the three host gates together (hwrng,
	// kernel, clock source): "--nsm mock:DIR" or "--insecure-dev"; "" when
	// only individual --insecure-skip-*-check flags (if any) relax them.
	devMode string
	// platform configures the kernel and clock-source gates: its Skip
	// fields come from flags; the zero rest checks this host (tests set a
	// fake sysfs root and kernel release).
	platform     platform.Config
	reseed       time.Duration
	maxConns     int
	drainTimeout time.Duration
	// socketGroup, if not "", is --socket-group: the unix sockets are made
	// mode 0660 and owned by group socketGID.
	socketGroup string
	socketGID   int
	kmsTTL      time.Duration
}

const usage = `usage: attestd [flags]

The attestation agent inside a Nitro Enclave (docs/agent.md). Exit status: 0 after a clean
shutdown, 1 on failure, 2 on a usage error.

flags:
`

// parseFlags parses and checks every flag and address, before any start-up
// work: a mistake in them is a usage error (exit 2), never a failure found
// after the gates ran or the keys were generated. --help prints the help on
// stdout and returns cli.ErrHelp.
func parseFlags(args []string, stdout io.Writer) (*options, bool, error) {
	o := &options{}
	fs := flag.NewFlagSet("attestd", flag.ContinueOnError)
	fs.StringVar(&o.nsmPath, "nsm", nsm.DefaultPath, "NSM device, or mock:DIR for the in-process software NSM of a mock directory (development)")
	fs.StringVar(&o.listen, "listen", "vsock://:5005", "parent API address: vsock://:PORT, or unix:///PATH or tcp://127.0.0.1:PORT for development")
	fs.StringVar(&o.local, "local", "unix:///run/attestd.sock", "in-enclave API: unix:///PATH (created mode 0600); empty disables it")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.IntVar(&o.nonceMin, "nonce-min", agent.DefaultNonceMin, "smallest nonce accepted, in bytes")
	fs.IntVar(&o.nonceMax, "nonce-max", agent.DefaultNonceMax, "largest nonce accepted, in bytes (at most 512)")
	fs.BoolVar(&o.allowNoNonce, "allow-no-nonce", false, "let the parent get documents without a nonce (they prove no freshness)")
	userDataHex := fs.String("user-data", "", "initial user_data, in hex (at most 512 bytes); in-enclave apps can replace it")
	userDataFile := fs.String("user-data-file", "", "read the initial user_data from this file (at most 512 bytes)")
	fs.StringVar(&o.hpkeKEM, "hpke-kem", keys.KEMMLKEM768X25519, "HPKE key: mlkem768x25519 (post-quantum hybrid) or x25519")
	fs.BoolVar(&o.skipHWRNG, "insecure-skip-hwrng-check", false, "start even if the active hwrng is not nsm-hwrng (development only; logged as a warning)")
	fs.BoolVar(&o.platform.SkipKernelCheck, "insecure-skip-kernel-check", false, "start even if the kernel is older than "+platform.MinKernel.String()+" (development, or a stable-series kernel you vetted; logged as a warning)")
	fs.BoolVar(&o.platform.SkipClockSourceCheck, "insecure-skip-clocksource-check", false, "start even if the clock source is not the hypervisor's, kvm-clock (arch_sys_counter on arm64) (development only; logged as a warning)")
	insecureDev := fs.Bool("insecure-dev", false, "development outside an enclave: relax the three host gates (hwrng, kernel, clock source) together; --nsm mock:DIR implies it (logged as one INSECURE warning; the debug gate stays)")
	fs.BoolVar(&o.skipDebug, "insecure-skip-debug-check", false, "start even in a debug-mode enclave (PCR0 all zeros or not locked), whose documents prove nothing (development only; logged as a warning)")
	fs.StringVar(&o.socketGroup, "socket-group", "", "development: make the unix sockets of --listen and --local mode 0660, owned by this `group` (name or number), so its members need no root (logged as a warning)")
	fs.DurationVar(&o.reseed, "reseed-interval", entropy.DefaultReseedInterval, "how often to reseed the kernel pool from the NSM")
	fs.IntVar(&o.maxConns, "max-conns", vsockrpc.DefaultMaxConns, "maximum parent connections")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, how long requests in flight may take to finish")
	fs.DurationVar(&o.kmsTTL, "kms-handle-ttl", agent.DefaultKMSHandleTTL, "how long an unused kms_recipient handle (and its one-time key) lives")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := cliflag.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cliflag.PrintHelp(stdout, fs, usage)
			return nil, false, cli.ErrHelp
		}
		return nil, false, cli.UsageError{Err: err}
	}
	if fs.NArg() > 0 {
		return nil, false, cli.UsageError{Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *showVersion {
		return o, true, nil
	}
	// The software NSM is development by definition, and so is a mock device
	// under --insecure-dev: neither runs in an enclave, so the host gates
	// cannot pass there. Relax them together; the debug gate stays, since
	// a debug-mode (mock) enclave's documents must still be refused.
	switch {
	case strings.HasPrefix(o.nsmPath, mockPrefix):
		o.devMode = "--nsm mock:DIR"
	case *insecureDev:
		o.devMode = "--insecure-dev"
	}
	if o.devMode != "" {
		o.skipHWRNG, o.platform.SkipKernelCheck, o.platform.SkipClockSourceCheck = true, true, true
		o.platform.QuietSkips = true
	}
	switch {
	case *userDataHex != "" && *userDataFile != "":
		return nil, false, cli.UsageError{Err: errors.New("--user-data and --user-data-file are exclusive")}
	case *userDataHex != "":
		b, err := hex.DecodeString(*userDataHex)
		if err != nil {
			return nil, false, cli.UsageError{Err: fmt.Errorf("--user-data: %v", err)}
		}
		o.userData = b
	case *userDataFile != "":
		b, err := readSmallFile(*userDataFile, agent.MaxUserData)
		if err != nil {
			return nil, false, cli.UsageError{Err: fmt.Errorf("--user-data-file: %v", err)}
		}
		o.userData = b
	}
	if len(o.userData) > agent.MaxUserData {
		return nil, false, cli.UsageError{Err: fmt.Errorf("user_data is %d bytes, at most %d", len(o.userData), agent.MaxUserData)}
	}
	if o.nonceMin < 1 || o.nonceMax > vsockrpc.MaxNonceSize || o.nonceMin > o.nonceMax {
		return nil, false, cli.UsageError{Err: fmt.Errorf("--nonce-min/--nonce-max: %d..%d not within 1..%d", o.nonceMin, o.nonceMax, vsockrpc.MaxNonceSize)}
	}
	if o.hpkeKEM != keys.KEMMLKEM768X25519 && o.hpkeKEM != keys.KEMX25519 {
		return nil, false, cli.UsageError{Err: fmt.Errorf("--hpke-kem %q: want %s or %s", o.hpkeKEM, keys.KEMMLKEM768X25519, keys.KEMX25519)}
	}
	if o.kmsTTL <= 0 {
		return nil, false, cli.UsageError{Err: fmt.Errorf("--kms-handle-ttl %v: must be positive", o.kmsTTL)}
	}
	if o.reseed < time.Second {
		return nil, false, cli.UsageError{Err: fmt.Errorf("--reseed-interval %v: at least 1s", o.reseed)}
	}
	if o.maxConns < 1 || o.drainTimeout <= 0 {
		return nil, false, cli.UsageError{Err: errors.New("--max-conns and --drain-timeout must be positive")}
	}
	if err := checkAddrs(o); err != nil {
		return nil, false, cli.UsageError{Err: err}
	}
	if err := checkNSM(o.nsmPath); err != nil {
		return nil, false, cli.UsageError{Err: err}
	}
	if o.socketGroup != "" {
		gid, err := lookupGroup(o.socketGroup)
		if err != nil {
			return nil, false, cli.UsageError{Err: err}
		}
		o.socketGID = gid
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, false, cli.UsageError{Err: fmt.Errorf("--log-format %q: want text or json", o.logFormat)}
	}
	if _, err := newLogger(o, io.Discard); err != nil {
		return nil, false, cli.UsageError{Err: err}
	}
	return o, false, nil
}

// checkAddrs checks --listen and --local as Listen will take them: the form,
// TCP on loopback only, a unix socket's directory existing, and two distinct
// sockets.
func checkAddrs(o *options) error {
	pa, err := vsockrpc.ParseAddr(o.listen)
	if err == nil {
		err = pa.CheckListen()
	}
	if err == nil {
		err = checkSocketDir(pa)
	}
	if err != nil {
		return fmt.Errorf("--listen: %v", err)
	}
	if o.local == "" {
		return nil
	}
	la, err := vsockrpc.ParseAddr(o.local)
	if err != nil {
		return fmt.Errorf("--local: %v", err)
	}
	if la.Network != "unix" {
		return errors.New("--local: the in-enclave API is served only on a unix socket")
	}
	if err := checkSocketDir(la); err != nil {
		return fmt.Errorf("--local: %v", err)
	}
	if pa.Network == "unix" && filepath.Clean(pa.Path) == filepath.Clean(la.Path) {
		return fmt.Errorf("--listen and --local are the same socket %s", la.Path)
	}
	return nil
}

// checkSocketDir requires the directory of a unix socket to exist.
func checkSocketDir(a vsockrpc.Addr) error {
	if a.Network != "unix" {
		return nil
	}
	if err := checkDir(filepath.Dir(a.Path)); err != nil {
		return fmt.Errorf("the socket's directory: %v", err)
	}
	return nil
}

// checkDir requires dir to be an existing directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// lookupGroup returns the id of a group given by name or number.
func lookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		g, err = user.LookupGroupId(name)
	}
	if err != nil {
		return 0, fmt.Errorf("--socket-group %q: no such group", name)
	}
	return strconv.Atoi(g.Gid)
}

// shareSocket makes a unix socket mode 0660, owned by group gid (--socket-group).
func shareSocket(addr string, gid int) error {
	a, err := vsockrpc.ParseAddr(addr)
	if err != nil || a.Network != "unix" {
		return err
	}
	if err := os.Chown(a.Path, -1, gid); err != nil {
		return err
	}
	return os.Chmod(a.Path, 0o660)
}

// checkNSM checks --nsm: a device path, or mock:DIR naming a directory. (The
// device itself is opened after the platform gates; its absence is a
// failure of the platform, exit 1.)
func checkNSM(spec string) error {
	if spec == "" {
		return errors.New("--nsm: the value is empty")
	}
	dir, ok := strings.CutPrefix(spec, mockPrefix)
	if !ok {
		return nil
	}
	if dir == "" {
		return errors.New("--nsm mock:DIR needs a directory")
	}
	if err := checkDir(dir); err != nil {
		return fmt.Errorf("--nsm %s: %v (create it with nsm-mock init --dir %s)", spec, err, dir)
	}
	return nil
}

func readSmallFile(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return b, nil
}

func newLogger(o *options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	ho := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return slog.New(slog.NewTextHandler(w, ho)), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, showVersion, err := parseFlags(args, stdout)
	switch {
	case errors.Is(err, cli.ErrHelp):
		return 0
	case err != nil:
		return cli.ReportUsage(stderr, "attestd", err)
	case showVersion:
		fmt.Fprintln(stdout, cli.VersionLine("attestd"))
		return 0
	}
	log, err := newLogger(o, stderr) // checked by parseFlags
	if err != nil {
		fmt.Fprintf(stderr, "attestd: %v\n", err)
		return 2
	}
	log.Info("attestd starting", "version", version, "nsm", o.nsmPath, "listen", o.listen, "local", o.local)
	hardenProcess(log)
	if err := serve(ctx, o, log); err != nil {
		args := []any{"error", err.Error()}
		if h := hint(err); h != "" {
			args = append(args, "hint", h)
		}
		log.Error("attestd failed", args...)
		return 1
	}
	return 0
}

// hint says how to fix a failed start-up gate, and which flag relaxes it;
// for the three host gates, also the one flag that relaxes them together.
func hint(err error) string {
	const dev = "; outside an enclave, --insecure-dev relaxes the three host gates (kernel, clock source, hwrng) at once"
	switch {
	case errors.As(err, new(*platform.KernelError)):
		return "the enclave kernel must be " + platform.MinKernel.String() + " or newer (aws-nitro-enclaves-sdk-bootstrap builds 6.6); --insecure-skip-kernel-check relaxes this for development or a stable-series kernel you vetted" + dev
	case errors.As(err, new(*platform.ClockSourceError)):
		return "the enclave's clock must be the hypervisor's; --insecure-skip-clocksource-check relaxes this for development only" + dev
	case errors.As(err, new(*platform.DebugCheckError)):
		return "run the enclave without --debug-mode; --insecure-skip-debug-check relaxes this for development only"
	case errors.As(err, new(*entropy.HWRNGError)):
		return "inside an enclave the NSM's hwrng must be active; --insecure-skip-hwrng-check relaxes this for development only" + dev
	}
	return ""
}

// serve runs the start-up sequence, serves until ctx ends, then drains.
func serve(ctx context.Context, o *options, log *slog.Logger) error {
	if o.devMode != "" { // the one warning for the gates relaxed together
		msg := "INSECURE: development mode (" + o.devMode + "): the host gates kernel, clocksource and hwrng are relaxed; do not trust this agent in production"
		if strings.HasPrefix(o.nsmPath, mockPrefix) {
			msg += "; documents are signed by the mock PKI, not AWS"
		}
		log.Warn(msg)
	}

	// 1. The platform: kernel version and clock source, before anything is opened.
	pcfg := o.platform
	pcfg.Logger = log
	read, err := platform.Check(pcfg)
	if err != nil {
		return err
	}
	report := agent.Platform{ // describe reports what the gates read
		KernelRelease: read.KernelRelease, ClockSource: read.ClockSource,
		SkipKernelCheck: pcfg.SkipKernelCheck, SkipClockSourceCheck: pcfg.SkipClockSourceCheck,
	}

	// 2. The NSM.
	session, mock, err := openNSM(o.nsmPath)
	if err != nil {
		return err
	}
	ecfg := entropy.Config{SkipHWRNGCheck: o.skipHWRNG, QuietSkips: o.platform.QuietSkips, ReseedInterval: o.reseed}
	if mock {
		ecfg.NoSinkReason = "software NSM (--nsm mock:DIR): its random bytes come from this host's own getrandom"
		log.Info("running on the software NSM: documents are signed by the mock PKI, not AWS; the kernel random pool is not touched")
	} else {
		ecfg.Sink = entropy.KernelPool{}
	}

	// 3. The not-debug gate on PCR0, 4. entropy and 5. keys (agent.New, in
	// that order).
	a, err := agent.New(ctx, agent.Config{
		NSM:            session,
		SkipDebugCheck: o.skipDebug,
		Platform:       report,
		Entropy:        ecfg,
		Keys:           keys.Config{HPKEKEM: o.hpkeKEM},
		NonceMin:       o.nonceMin,
		NonceMax:       o.nonceMax,
		AllowNoNonce:   o.allowNoNonce,
		UserData:       o.userData,
		KMS:            agent.KMSConfig{HandleTTL: o.kmsTTL},
		Version:        version,
		Mock:           mock,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := a.Close(); err != nil {
			log.Warn("closing the NSM", "error", err.Error())
		}
	}()
	if o.allowNoNonce {
		log.Warn("--allow-no-nonce: the parent can get documents without a nonce; they prove no freshness")
	}

	// 6. Listen.
	servers, err := listen(o, a, log)
	if err != nil {
		return err
	}
	if o.socketGroup != "" {
		for _, s := range servers {
			if err := shareSocket(s.addr, o.socketGID); err != nil {
				for _, s := range servers {
					s.l.Close()
				}
				return fmt.Errorf("--socket-group: %s: %w", s.addr, err)
			}
		}
		log.Warn("--socket-group: the unix sockets are mode 0660: every member of the group can use the APIs (development only)",
			"group", o.socketGroup)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go a.Run(runCtx)

	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			err := s.srv.Serve(s.l)
			if errors.Is(err, vsockrpc.ErrServerClosed) {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("serving %s: %w", s.name, err)
			}
			errc <- err
		}()
		log.Info("listening", "api", s.name, "addr", s.addr)
	}
	log.Info("attestd ready")

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing requests in flight")
	case serveErr = <-errc:
		log.Error("a listener failed; shutting down", "error", fmt.Sprint(serveErr))
	}
	dctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.srv.Shutdown(dctx); err != nil {
				log.Warn("drain incomplete", "api", s.name, "error", err.Error())
			}
		})
	}
	wg.Wait()
	cancelRun()
	log.Info("attestd stopped")
	return serveErr
}

type server struct {
	name, addr string
	srv        *vsockrpc.Server
	l          net.Listener
}

// listen opens the parent and local listeners; on error none is left open.
func listen(o *options, a *agent.Agent, log *slog.Logger) ([]server, error) {
	pl, err := vsockrpc.Listen(o.listen)
	if err != nil {
		return nil, err
	}
	servers := []server{{
		name: "parent", addr: o.listen, l: pl,
		srv: &vsockrpc.Server{API: vsockrpc.ParentAPI(a), Limits: vsockrpc.Limits{MaxConns: o.maxConns},
			Logger: log.With("api", "parent")},
	}}
	if o.local != "" {
		ll, err := vsockrpc.Listen(o.local)
		if err != nil {
			pl.Close()
			return nil, err
		}
		servers = append(servers, server{
			name: "local", addr: o.local, l: ll,
			srv: &vsockrpc.Server{API: vsockrpc.LocalAPI(a), Logger: log.With("api", "local")},
		})
	}
	return servers, nil
}

// openNSM opens the device, or the software NSM of a mock directory.
func openNSM(spec string) (*nsm.Session, bool, error) {
	if dir, ok := strings.CutPrefix(spec, mockPrefix); ok {
		if dir == "" {
			return nil, false, errors.New("--nsm mock:DIR needs a directory")
		}
		m, err := mocknsm.Open(dir)
		if err != nil {
			return nil, false, err
		}
		s, err := nsm.Open(nsm.Options{Device: m.Device()})
		return s, true, err
	}
	s, err := nsm.Open(nsm.Options{Path: spec})
	if err != nil {
		return nil, false, fmt.Errorf("open NSM %s: %w", spec, err)
	}
	return s, false, nil
}

// hardenProcess disables core dumps and ptrace by other processes of the same
// user: the private keys live in this process's memory.
func hardenProcess(log *slog.Logger) {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		log.Warn("cannot disable core dumps", "error", err.Error())
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		log.Warn("cannot mark the process non-dumpable", "error", err.Error())
	}
}
