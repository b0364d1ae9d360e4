// Package entropy makes sure the kernel's random pool is fed by the NSM before
// the agent generates any key.
//
// Since Go 1.26 every key generator in the standard library reads the kernel's
// getrandom(2) and ignores a caller's io.Reader, so "use NSM randomness for
// keys" can only mean "make the kernel pool NSM-fed". A Seeder does that at
// start-up, in this order:
//
//  1. check that the kernel's active hardware RNG is the NSM ("nsm-hwrng" in
//     /sys/class/misc/hw_random/rng_current) and fail closed if not, unless the
//     check is relaxed for development (then it logs a loud warning);
//  2. read SeedBytes of NSM GetRandom output and add them to the kernel pool,
//     crediting 8 bits per byte (the RNDADDENTROPY count is in bits; peers pass
//     the byte count and under-credit by 8x). Bytes are credited only when the
//     hwrng check passed: only then is the NSM known to be this kernel's
//     hardware source. Otherwise, or without CAP_SYS_ADMIN, they are mixed in
//     without credit, and the Status says so;
//  3. confirm getrandom(2) no longer blocks (GRND_NONBLOCK succeeds), failing
//     closed after ReadyTimeout.
//
// Run then reseeds the pool every ReseedInterval until its context ends.
//
// The kernel pool and the NSM are behind the Sink and Source interfaces, and
// the sysfs root is configurable, so tests use a temporary directory and a
// recording sink and never touch the real pool.
package entropy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultSysfsRoot is where sysfs is mounted.
	DefaultSysfsRoot = "/sys"
	// RNGCurrentPath is the active hwrng's name, relative to the sysfs root.
	RNGCurrentPath = "class/misc/hw_random/rng_current"
	// NSMHWRNG is the name the Nitro kernel's NSM driver registers its hwrng under.
	NSMHWRNG = "nsm-hwrng"

	// DefaultSeedBytes is how many NSM bytes a seeding adds (8,192 bits).
	DefaultSeedBytes = 1024
	// MaxSeedBytes bounds SeedBytes (the kernel caps one RNDADDENTROPY anyway
	// far above this; a bound keeps a misconfiguration from looping on the NSM).
	MaxSeedBytes = 64 << 10
	// DefaultReseedInterval is how often Run reseeds the pool.
	DefaultReseedInterval = 10 * time.Minute
	// DefaultReadyTimeout bounds the wait for getrandom(2) to become ready.
	DefaultReadyTimeout = 30 * time.Second

	// maxRNGCurrent bounds the sysfs read: hwrng names are short.
	maxRNGCurrent = 256
)

// Source supplies NSM random bytes. *nsm.Session satisfies it.
type Source interface {
	// GetRandom returns a non-empty slice of random bytes or an error.
	GetRandom(ctx context.Context) ([]byte, error)
}

// Sink is the kernel random pool. KernelPool is the real one.
type Sink interface {
	// AddEntropy mixes data into the pool and credits creditBits bits of
	// entropy (0: mix only). It returns an error wrapping ErrNotCredited when
	// the bytes were mixed in but the credit was refused (no CAP_SYS_ADMIN).
	AddEntropy(data []byte, creditBits int) error
	// Ready returns nil when getrandom(2) would not block, ErrNotReady when it
	// would, and another error when it cannot tell.
	Ready() error
}

var (
	// ErrNotCredited reports bytes mixed into the pool without entropy credit.
	ErrNotCredited = errors.New("entropy: bytes mixed in without credit")
	// ErrNotReady reports that getrandom(2) would still block.
	ErrNotReady = errors.New("entropy: getrandom is not ready")
)

// HWRNGError reports that the active hwrng is not the NSM's (or unreadable).
type HWRNGError struct {
	Current string // trimmed rng_current, "" when unreadable
	Err     error  // the read error, if any
}

func (e *HWRNGError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("entropy: cannot read the active hwrng: %v", e.Err)
	}
	return fmt.Sprintf("entropy: active hwrng is %q, want %q", e.Current, NSMHWRNG)
}

func (e *HWRNGError) Unwrap() error { return e.Err }

// Config configures a Seeder. Zero values take the defaults.
type Config struct {
	// Source is the NSM. Required when Sink is set.
	Source Source
	// Sink is the kernel pool. Nil means the pool must not be touched (e.g.
	// the software NSM, whose bytes come from this host's own getrandom);
	// NoSinkReason then says why, for the log and Status.
	Sink         Sink
	NoSinkReason string
	// Ready checks getrandom(2). Nil uses Sink.Ready, or GetrandomReady
	// without a Sink.
	Ready func() error

	// SysfsRoot is where sysfs is mounted (default DefaultSysfsRoot).
	SysfsRoot string
	// SkipHWRNGCheck lets start-up continue when the active hwrng is not
	// nsm-hwrng. For development only; logged as a warning.
	SkipHWRNGCheck bool
	// QuietSkips logs a skipped hwrng check, and a pool left untouched, at
	// info level: the caller relaxed the host gates together (attestd's
	// --nsm mock:DIR or --insecure-dev) and logged one INSECURE warning.
	QuietSkips bool

	SeedBytes      int           // default DefaultSeedBytes, at most MaxSeedBytes
	ReseedInterval time.Duration // default DefaultReseedInterval
	ReadyTimeout   time.Duration // default DefaultReadyTimeout

	Logger *slog.Logger // default slog.Default()
}

// Status is what the agent reports about entropy in describe.
type Status struct {
	Source         string    `json:"source"`          // "nsm", or "none" when the pool is not fed
	HWRNG          string    `json:"hwrng"`           // active hwrng ("" if unreadable)
	HWRNGVerified  bool      `json:"hwrng_verified"`  // HWRNG == nsm-hwrng
	KernelPoolFed  bool      `json:"kernel_pool_fed"` // NSM bytes were added to the pool
	Note           string    `json:"note,omitempty"`  // why the pool is not fed or not credited
	SeededBytes    int64     `json:"seeded_bytes"`    // NSM bytes added, in total
	CreditedBits   int64     `json:"credited_bits"`   // entropy credited, in total
	GetrandomReady bool      `json:"getrandom_ready"` // getrandom(2) did not block
	Reseeds        int64     `json:"reseeds"`         // periodic reseeds done
	LastSeed       time.Time `json:"last_seed"`       // last successful seeding
	LastError      string    `json:"last_error,omitempty"`
}

// Seeder seeds the kernel pool from the NSM. Its methods are safe for
// concurrent use.
type Seeder struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	status Status
	credit bool // credit added bytes (hwrng verified)
}

// New checks cfg and returns a Seeder.
func New(cfg Config) (*Seeder, error) {
	if cfg.SysfsRoot == "" {
		cfg.SysfsRoot = DefaultSysfsRoot
	}
	if cfg.SeedBytes == 0 {
		cfg.SeedBytes = DefaultSeedBytes
	}
	if cfg.SeedBytes < 32 || cfg.SeedBytes > MaxSeedBytes {
		return nil, fmt.Errorf("entropy: seed bytes %d out of range [32, %d]", cfg.SeedBytes, MaxSeedBytes)
	}
	if cfg.ReseedInterval == 0 {
		cfg.ReseedInterval = DefaultReseedInterval
	}
	if cfg.ReseedInterval < 0 {
		return nil, fmt.Errorf("entropy: negative reseed interval %v", cfg.ReseedInterval)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Sink != nil && cfg.Source == nil {
		return nil, errors.New("entropy: a sink needs a source")
	}
	if cfg.Sink == nil && cfg.NoSinkReason == "" {
		return nil, errors.New("entropy: without a sink, say why the kernel pool is not fed")
	}
	if cfg.Ready == nil {
		if cfg.Sink != nil {
			cfg.Ready = cfg.Sink.Ready
		} else {
			cfg.Ready = GetrandomReady
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Seeder{cfg: cfg, log: cfg.Logger.With("component", "entropy")}
	s.status.Source = "none"
	if cfg.Sink != nil {
		s.status.Source = "nsm"
	}
	return s, nil
}

// Seed runs the start-up sequence: hwrng check, first seeding, getrandom
// readiness. An error means the agent must not generate keys.
func (s *Seeder) Seed(ctx context.Context) error {
	current, err := s.checkHWRNG()
	s.mu.Lock()
	s.status.HWRNG = current
	s.status.HWRNGVerified = err == nil
	s.credit = err == nil
	s.mu.Unlock()
	if err != nil {
		if !s.cfg.SkipHWRNGCheck {
			return err
		}
		if s.cfg.QuietSkips {
			s.log.Info("the active hwrng is not the NSM; the check is relaxed (development mode)",
				"hwrng", current, "error", err.Error())
		} else {
			s.log.Warn("INSECURE: the active hwrng is not the NSM and the check is skipped (development only)",
				"hwrng", current, "error", err.Error())
		}
	} else {
		s.log.Info("active hwrng is the NSM", "hwrng", current)
	}

	if s.cfg.Sink == nil {
		s.setNote("kernel pool not touched: " + s.cfg.NoSinkReason)
		level := slog.LevelWarn
		if s.cfg.QuietSkips {
			level = slog.LevelInfo
		}
		s.log.Log(ctx, level, "kernel random pool not touched", "reason", s.cfg.NoSinkReason)
	} else if err := s.seed(ctx); err != nil {
		return err
	}

	if err := s.waitReady(ctx); err != nil {
		return err
	}
	st := s.Status()
	s.log.Info("entropy ready", "source", st.Source, "kernel_pool_fed", st.KernelPoolFed,
		"seeded_bytes", st.SeededBytes, "credited_bits", st.CreditedBits, "note", st.Note)
	return nil
}

// Run reseeds the kernel pool every ReseedInterval until ctx ends. Failures
// are logged and kept in Status; the next tick tries again. Without a Sink it
// returns at once.
func (s *Seeder) Run(ctx context.Context) {
	if s.cfg.Sink == nil {
		return
	}
	t := time.NewTicker(s.cfg.ReseedInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.seed(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Error("reseed failed", "error", err.Error())
				continue
			}
			s.mu.Lock()
			s.status.Reseeds++
			s.mu.Unlock()
		}
	}
}

// Status returns a snapshot of the entropy status.
func (s *Seeder) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// checkHWRNG reads the active hwrng name; the error is an *HWRNGError unless
// it is nsm-hwrng.
func (s *Seeder) checkHWRNG() (string, error) {
	f, err := os.Open(filepath.Join(s.cfg.SysfsRoot, RNGCurrentPath))
	if err != nil {
		return "", &HWRNGError{Err: err}
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxRNGCurrent+1))
	if err != nil {
		return "", &HWRNGError{Err: err}
	}
	if len(buf) > maxRNGCurrent {
		return "", &HWRNGError{Err: fmt.Errorf("%s longer than %d bytes", RNGCurrentPath, maxRNGCurrent)}
	}
	current := strings.TrimSpace(string(buf))
	if current != NSMHWRNG {
		return current, &HWRNGError{Current: current}
	}
	return current, nil
}

// seed reads SeedBytes from the NSM and adds them to the pool.
func (s *Seeder) seed(ctx context.Context) error {
	data, err := s.read(ctx, s.cfg.SeedBytes)
	defer clear(data)
	if err != nil {
		s.setError(err)
		return err
	}
	s.mu.Lock()
	credit := s.credit
	s.mu.Unlock()
	bits := 0
	if credit {
		bits = 8 * len(data) // RNDADDENTROPY counts bits, not bytes
	}
	err = s.cfg.Sink.AddEntropy(data, bits)
	credited := bits
	note := ""
	switch {
	case errors.Is(err, ErrNotCredited):
		credited = 0
		note = "NSM bytes mixed into the kernel pool without credit: " + err.Error()
		s.log.Warn("kernel pool fed without entropy credit", "error", err.Error())
	case err != nil:
		err = fmt.Errorf("entropy: add to kernel pool: %w", err)
		s.setError(err)
		return err
	case !credit:
		note = "NSM bytes mixed into the kernel pool without credit: the active hwrng is not nsm-hwrng"
	}
	s.mu.Lock()
	s.status.KernelPoolFed = true
	s.status.Note = note
	s.status.SeededBytes += int64(len(data))
	s.status.CreditedBits += int64(credited)
	s.status.LastSeed = time.Now().UTC()
	s.status.LastError = ""
	s.mu.Unlock()
	s.log.Debug("kernel pool seeded", "bytes", len(data), "credited_bits", credited)
	return nil
}

// read collects n bytes of NSM randomness.
func (s *Seeder) read(ctx context.Context, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for len(out) < n {
		chunk, err := s.cfg.Source.GetRandom(ctx)
		if err != nil {
			return out, fmt.Errorf("entropy: NSM GetRandom: %w", err)
		}
		if len(chunk) == 0 {
			return out, errors.New("entropy: NSM GetRandom returned no bytes")
		}
		take := min(len(chunk), n-len(out))
		out = append(out, chunk[:take]...)
		clear(chunk)
	}
	return out, nil
}

// waitReady polls Ready until it succeeds, fails otherwise, or ReadyTimeout.
func (s *Seeder) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	const poll = 100 * time.Millisecond
	for {
		err := s.cfg.Ready()
		if err == nil {
			s.mu.Lock()
			s.status.GetrandomReady = true
			s.mu.Unlock()
			return nil
		}
		if !errors.Is(err, ErrNotReady) {
			err = fmt.Errorf("entropy: check getrandom: %w", err)
			s.setError(err)
			return err
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("%w after %v", ErrNotReady, s.cfg.ReadyTimeout)
			s.setError(err)
			return err
		case <-time.After(poll):
		}
	}
}

func (s *Seeder) setNote(note string) {
	s.mu.Lock()
	s.status.Note = note
	s.mu.Unlock()
}

func (s *Seeder) setError(err error) {
	s.mu.Lock()
	s.status.LastError = err.Error()
	s.mu.Unlock()
}
