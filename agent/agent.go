// Package agent is attestd's core: it owns the NSM session, seeds the kernel's
// entropy from it, holds the ephemeral keys and answers the vsockrpc parent and
// local APIs.
//
// New runs the start-up sequence after the caller opened the NSM (and, in
// attestd, after the kernel and clock-source gates of package platform): the
// NSM is described and its boot PCRs read, PCR0 must pass the not-debug gate
// (platform.CheckNotDebug), then entropy (package entropy: the hwrng gate and
// the seeding), and keys (package keys) only once the kernel pool is
// NSM-seeded and getrandom is ready. The caller listens only after New
// returns.
//
// Threat model: the parent instance is hostile. Through Attest it chooses only
// a bounded nonce and the name of one of the agent's own keys; public_key is
// an agent key, or an in-enclave application's TLS key sent on the local API
// (AttestTLSKey), and user_data only ever comes from inside the enclave
// (SetUserData or AttestLocal on the local API, or the configured value).
// NSM calls are bounded (a semaphore in front of the driver's serialisation)
// and every NSM failure becomes a typed protocol error; the agent keeps serving.
package agent

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/attestd/attestd/entropy"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/platform"
	"github.com/attestd/attestd/vsockrpc"
)

// NSM is what the agent needs from an NSM session; *nsm.Session satisfies it.
type NSM interface {
	DescribeNSM(ctx context.Context) (nsm.Description, error)
	DescribePCR(ctx context.Context, index uint16) (nsm.PCR, error)
	ExtendPCR(ctx context.Context, index uint16, data []byte) ([]byte, error)
	LockPCR(ctx context.Context, index uint16) error
	Attestation(ctx context.Context, req nsm.AttestationRequest) ([]byte, error)
	GetRandom(ctx context.Context) ([]byte, error)
	Close() error
}

// Defaults.
const (
	DefaultNonceMin = 1
	DefaultNonceMax = vsockrpc.MaxNonceSize
	// MaxUserData bounds user_data: what every public verifier accepts.
	MaxUserData = vsockrpc.MaxUserDataSize
	// startupTimeout bounds each NSM call made during start-up.
	startupTimeout = 2 * time.Minute
)

// Config configures an Agent.
type Config struct {
	// NSM is the open NSM session. The Agent owns it and closes it in Close.
	NSM NSM
	// Entropy configures seeding; its Source is set to NSM by New.
	Entropy entropy.Config
	// Keys chooses the key algorithms.
	Keys keys.Config
	// GenerateKeys generates the key set; nil means keys.Generate. Tests use
	// it to observe the start-up order.
	GenerateKeys func(keys.Config) (*keys.Set, error)
	// SkipDebugCheck lets start-up continue when the not-debug self-check on
	// PCR0 fails (a debug-mode enclave, or a PCR0 that is not locked). For
	// development only; logged as an INSECURE warning.
	SkipDebugCheck bool
	// Platform is what the gates that ran before New found; describe
	// reports it with the relaxed gates of New's own (debug, hwrng).
	Platform Platform

	// NonceMin and NonceMax bound the nonce of attest (defaults 1 and 512;
	// NonceMax at most 512).
	NonceMin, NonceMax int
	// AllowNoNonce lets the parent get documents without a nonce. Such
	// documents prove nothing about freshness.
	AllowNoNonce bool
	// UserData is the initial user_data (at most MaxUserData bytes), until an
	// in-enclave application sets another through the local API.
	UserData []byte
	// KMS configures kms_recipient and kms_open (kms.go).
	KMS KMSConfig

	// Version is the agent version reported by describe.
	Version string
	// Mock marks a software NSM; describe and the log say so.
	Mock   bool
	Logger *slog.Logger
}

// Platform is what the start-up gates that run before New (platform.Check
// in attestd) read, and which of them were relaxed. The caller passes the
// values the gates saw; the agent never reads the host for them.
type Platform struct {
	// KernelRelease is the release the kernel gate read (uname -r).
	KernelRelease string
	// ClockSource is the active clock source the clock-source gate read.
	ClockSource string
	// SkipKernelCheck and SkipClockSourceCheck are platform.Config's: the
	// gate was relaxed by its --insecure-skip-*-check flag.
	SkipKernelCheck, SkipClockSourceCheck bool
}

// Agent answers the parent API (vsockrpc.ParentService) and the local API
// (vsockrpc.LocalService). It is safe for concurrent use.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	nsm     NSM
	slot    chan struct{} // held by the one NSM call in flight
	seeder  *entropy.Seeder
	keys    *keys.Set
	keyInfo []vsockrpc.KeyInfo
	module  nsm.Description

	mu       sync.Mutex
	userData []byte
	pcrs     map[uint16][]byte // locked PCRs: immutable once locked

	attests attestLog // the NSM's answers to attestation requests, for health
	kms     kmsState  // kms_recipient's key pool and handles (kms.go)

	closeOnce sync.Once
	closeErr  error
}

// New describes cfg.NSM and checks that the enclave is not in debug mode,
// seeds entropy from it, then generates the keys. On error it closes cfg.NSM.
func New(ctx context.Context, cfg Config) (a *Agent, err error) {
	if cfg.NSM == nil {
		return nil, errors.New("agent: no NSM")
	}
	defer func() {
		if err != nil {
			cfg.NSM.Close()
		}
	}()
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	a = &Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		slot:     make(chan struct{}, 1),
		userData: bytes.Clone(cfg.UserData),
		pcrs:     map[uint16][]byte{},
	}
	a.nsm = loggedNSM{NSM: cfg.NSM, log: &a.attests}

	// 1. What the NSM is, its locked (boot) PCRs for describe, and the
	// not-debug gate: a debug-mode enclave gets no entropy and no keys.
	sctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	if err := a.describeNSM(sctx); err != nil {
		return nil, err
	}

	// 2. Entropy: the kernel pool is NSM-fed before any key exists.
	ecfg := cfg.Entropy
	ecfg.Source = nsmSource{a}
	if ecfg.Logger == nil {
		ecfg.Logger = cfg.Logger
	}
	if a.seeder, err = entropy.New(ecfg); err != nil {
		return nil, err
	}
	if err := a.seeder.Seed(ctx); err != nil {
		return nil, err
	}

	// 3. Keys.
	gen := cfg.GenerateKeys
	if gen == nil {
		gen = keys.Generate
	}
	if a.keys, err = gen(cfg.Keys); err != nil {
		return nil, err
	}
	for _, k := range a.keys.Keys() {
		a.keyInfo = append(a.keyInfo, vsockrpc.KeyInfo{
			Name: k.Name(), Algorithm: k.Algorithm(), PublicKey: k.PublicKey(), Binding: k.Binding(),
		})
		a.log.Info("key generated", "key", k)
	}
	if err := a.kms.start(cfg.KMS); err != nil { // after entropy: the pool generates keys
		return nil, err
	}
	return a, nil
}

// describeNSM reads the module description and the locked PCRs, then runs the
// not-debug gate on PCR0.
func (a *Agent) describeNSM(ctx context.Context) (err error) {
	if a.module, err = a.nsm.DescribeNSM(ctx); err != nil {
		return fmt.Errorf("agent: describe NSM: %w", err)
	}
	for _, i := range a.module.LockedPCRs {
		p, err := a.nsm.DescribePCR(ctx, i)
		if err != nil {
			return fmt.Errorf("agent: describe PCR%d: %w", i, err)
		}
		a.pcrs[i] = p.Value
	}
	a.log.Info("NSM described", "module_id", a.module.ModuleID, "locked_pcrs", len(a.pcrs), "mock", a.cfg.Mock)

	// PCR0 is read on its own, with its lock state: the gate must not depend
	// on the NSM listing it among the locked PCRs.
	p0, err := a.nsm.DescribePCR(ctx, 0)
	if err != nil {
		return fmt.Errorf("agent: describe PCR0: %w", err)
	}
	if err := platform.CheckNotDebug(p0.Value, p0.Locked); err != nil {
		if !a.cfg.SkipDebugCheck {
			return err
		}
		a.log.Warn("INSECURE: the not-debug self-check failed and is skipped (development only): no verifier should accept this enclave's documents",
			"error", err.Error())
		return nil
	}
	a.log.Info("not a debug-mode enclave: PCR0 is locked and not zero", "pcr0", hex.EncodeToString(p0.Value))
	return nil
}

func (c *Config) setDefaults() error {
	if c.NonceMin == 0 {
		c.NonceMin = DefaultNonceMin
	}
	if c.NonceMax == 0 {
		c.NonceMax = DefaultNonceMax
	}
	if c.NonceMin < 1 || c.NonceMax > vsockrpc.MaxNonceSize || c.NonceMin > c.NonceMax {
		return fmt.Errorf("agent: nonce bounds %d..%d not within 1..%d", c.NonceMin, c.NonceMax, vsockrpc.MaxNonceSize)
	}
	if len(c.UserData) > MaxUserData {
		return fmt.Errorf("agent: user data is %d bytes, over %d", len(c.UserData), MaxUserData)
	}
	if len(c.UserData) == 0 {
		c.UserData = nil
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Run reseeds the kernel pool until ctx ends.
func (a *Agent) Run(ctx context.Context) { a.seeder.Run(ctx) }

// Close closes the NSM session. Call it after the servers have drained.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		a.kms.stop()
		a.closeErr = a.nsm.Close()
	})
	return a.closeErr
}

// nsmSource feeds the entropy seeder through the agent's NSM bound.
type nsmSource struct{ a *Agent }

func (s nsmSource) GetRandom(ctx context.Context) ([]byte, error) {
	var out []byte
	err := s.a.withNSM(ctx, func(ctx context.Context) (err error) {
		out, err = s.a.nsm.GetRandom(ctx)
		return err
	})
	return out, err
}

// withNSM runs f while holding the NSM slot. The driver serialises NSM calls,
// so the agent makes one at a time and callers queue here, for as long as ctx
// allows. A call once started is not abandoned: f gets a context that cannot
// end, the driver bounds the call (2 minutes), and the NSM session runs it on
// this goroutine instead of handing it to another (a hand-off that wakes an
// idle CPU costs as much as all the agent's own work on a request).
func (a *Agent) withNSM(ctx context.Context, f func(context.Context) error) error {
	select {
	case a.slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.slot }()
	return f(context.WithoutCancel(ctx))
}

// Attest implements the parent's attest: the caller chooses only the nonce and
// which agent key to bind.
func (a *Agent) Attest(ctx context.Context, req vsockrpc.AttestRequest) (*vsockrpc.AttestResult, error) {
	if req.Nonce == nil && !a.cfg.AllowNoNonce {
		return nil, vsockrpc.Errorf(vsockrpc.CodeNonceRequired, "a nonce of %d..%d bytes is required", a.cfg.NonceMin, a.cfg.NonceMax)
	}
	a.mu.Lock()
	ud := a.userData
	a.mu.Unlock()
	return a.attest(ctx, req, ud)
}

// AttestLocal implements the local API's attest: an in-enclave application may
// also choose user_data, and may omit the nonce (the KMS Recipient flow uses none).
func (a *Agent) AttestLocal(ctx context.Context, req vsockrpc.LocalAttestRequest) (*vsockrpc.AttestResult, error) {
	if len(req.UserData) > MaxUserData {
		return nil, vsockrpc.Errorf(vsockrpc.CodeBadRequest, "user_data is %d bytes, over %d", len(req.UserData), MaxUserData)
	}
	ud := req.UserData
	switch {
	case ud == nil: // not sent: the stored value
		a.mu.Lock()
		ud = a.userData
		a.mu.Unlock()
	case len(ud) == 0: // sent empty: none in this document (absent, not an empty byte string)
		ud = nil
	}
	return a.attest(ctx, req.AttestRequest, ud)
}

// checkNonce checks a nonce the caller sent (nil: none) against the configured bounds.
func (a *Agent) checkNonce(nonce []byte) error {
	if nonce != nil {
		if n := len(nonce); n > a.cfg.NonceMax {
			return vsockrpc.Errorf(vsockrpc.CodeNonceTooLarge, "nonce is %d bytes, maximum %d", n, a.cfg.NonceMax)
		} else if n < a.cfg.NonceMin {
			return vsockrpc.Errorf(vsockrpc.CodeBadRequest, "nonce is %d bytes, minimum %d", n, a.cfg.NonceMin)
		}
	}
	return nil
}

func (a *Agent) attest(ctx context.Context, req vsockrpc.AttestRequest, userData []byte) (*vsockrpc.AttestResult, error) {
	if err := a.checkNonce(req.Nonce); err != nil {
		return nil, err
	}
	k, err := a.keys.Get(req.Key)
	if err != nil {
		return nil, vsockrpc.Errorf(vsockrpc.CodeUnknownKey, "no key %q (have %s, %s)", req.Key, keys.HPKE, keys.RSA)
	}
	if a.log.Enabled(ctx, slog.LevelDebug) { // the arguments are boxed, and allocated, before Debug could say no
		a.log.Debug("attest", "key", k.Name(), "nonce_bytes", len(req.Nonce), "user_data_bytes", len(userData))
	}
	var doc []byte
	err = a.withNSM(ctx, func(ctx context.Context) (err error) {
		doc, err = a.nsm.Attestation(ctx, nsm.AttestationRequest{
			Nonce:     req.Nonce,
			UserData:  userData,
			PublicKey: k.DocumentPublicKey(),
		})
		return err
	})
	if err != nil {
		return nil, a.nsmError("attest", err)
	}
	return &vsockrpc.AttestResult{Document: doc, PublicKey: k.PublicKey(), Key: k.Name()}, nil
}

// Describe reports the agent: version, NSM module, keys (public parts),
// entropy status, locked PCRs, nonce bounds and what the start-up gates read
// and which were relaxed. It makes no NSM call.
func (a *Agent) Describe(context.Context) (*vsockrpc.Description, error) {
	st := a.seeder.Status()
	a.mu.Lock()
	pcrs := maps.Clone(a.pcrs)
	a.mu.Unlock()
	var last int64
	if !st.LastSeed.IsZero() {
		last = st.LastSeed.Unix()
	}
	return &vsockrpc.Description{
		AgentVersion: a.cfg.Version,
		ModuleID:     a.module.ModuleID,
		Keys:         slices.Clone(a.keyInfo),
		Entropy: vsockrpc.Entropy{
			Source:      entropySource(st, a.cfg.Mock),
			SeededBytes: uint64(st.SeededBytes),
			KernelPool:  kernelPool(st),
			LastReseed:  last,
		},
		PCRs:     pcrs,
		Nonce:    vsockrpc.NonceLimits{Min: uint64(a.cfg.NonceMin), Max: uint64(a.cfg.NonceMax), Required: !a.cfg.AllowNoNonce},
		Platform: a.platform(),
	}, nil
}

// platform reports the platform gates' findings and the gates relaxed, in
// start-up order.
func (a *Agent) platform() vsockrpc.Platform {
	p := a.cfg.Platform
	relaxed := []string{}
	for _, g := range []struct {
		name    string
		skipped bool
	}{
		{vsockrpc.GateKernel, p.SkipKernelCheck},
		{vsockrpc.GateClockSource, p.SkipClockSourceCheck},
		{vsockrpc.GateDebug, a.cfg.SkipDebugCheck},
		{vsockrpc.GateHWRNG, a.cfg.Entropy.SkipHWRNGCheck},
	} {
		if g.skipped {
			relaxed = append(relaxed, g.name)
		}
	}
	return vsockrpc.Platform{KernelRelease: p.KernelRelease, ClockSource: p.ClockSource, Relaxed: relaxed}
}

func entropySource(st entropy.Status, mock bool) string {
	s := "hwrng " + st.HWRNG
	if st.HWRNG == "" {
		s = "hwrng unknown"
	}
	if !st.HWRNGVerified {
		s += " (not nsm-hwrng: check skipped)"
	}
	if st.KernelPoolFed {
		s += " + NSM GetRandom"
	}
	if mock {
		s += "; software NSM"
	}
	return s
}

func kernelPool(st entropy.Status) string {
	s := "not fed"
	if st.KernelPoolFed {
		s = fmt.Sprintf("fed: %d bits credited", st.CreditedBits)
	}
	if st.Note != "" {
		s += "; " + st.Note
	}
	if st.LastError != "" {
		s += "; last error: " + st.LastError
	}
	return s
}

// Health reports whether the agent can attest: vsockrpc.HealthNSMFailing when the NSM failed
// its last attestation (a failure since the last success), else vsockrpc.HealthOK, with the
// counts and times it decided from. It makes no NSM call and waits on nothing the NSM holds:
// the outcome comes from the attestations the agent made for its callers.
func (a *Agent) Health(context.Context) (*vsockrpc.Health, error) {
	h := a.attests.snapshot()
	status := vsockrpc.HealthOK
	if h.ConsecutiveFailures > 0 {
		status = vsockrpc.HealthNSMFailing
	}
	return &vsockrpc.Health{Status: status, Attest: h}, nil
}

// maxHealthError bounds the error health reports (the protocol allows 1,024 bytes).
const maxHealthError = 256

// attestLog records the NSM's answers to attestation requests.
type attestLog struct {
	mu sync.Mutex
	h  vsockrpc.AttestHealth
}

func (l *attestLog) record(err error) {
	now := time.Now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.h.Succeeded++
		l.h.ConsecutiveFailures = 0
		l.h.LastSuccess = now
		return
	}
	l.h.Failed++
	l.h.ConsecutiveFailures++
	l.h.LastFailure = now
	msg := err.Error()
	if len(msg) > maxHealthError {
		msg = strings.ToValidUTF8(msg[:maxHealthError], "")
	}
	l.h.LastError = msg
}

func (l *attestLog) snapshot() vsockrpc.AttestHealth {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h
}

// loggedNSM is the agent's NSM: every attestation's outcome goes to the attestLog, whichever
// method asked for it.
type loggedNSM struct {
	NSM
	log *attestLog
}

func (n loggedNSM) Attestation(ctx context.Context, req nsm.AttestationRequest) ([]byte, error) {
	doc, err := n.NSM.Attestation(ctx, req)
	n.log.record(err)
	return doc, err
}

// SetUserData sets the user_data of later documents (local API); nil clears it.
func (a *Agent) SetUserData(_ context.Context, data []byte) error {
	if len(data) > MaxUserData {
		return vsockrpc.Errorf(vsockrpc.CodeBadRequest, "user_data is %d bytes, over %d", len(data), MaxUserData)
	}
	if len(data) == 0 {
		data = nil // absent, not an empty byte string: some verifiers reject empty fields
	}
	a.mu.Lock()
	a.userData = bytes.Clone(data)
	a.mu.Unlock()
	a.log.Info("user_data set by the local API", "bytes", len(data))
	return nil
}

// Random returns n NSM random bytes (local API).
func (a *Agent) Random(ctx context.Context, n int) ([]byte, error) {
	if n < 1 || n > vsockrpc.MaxRandomSize {
		return nil, vsockrpc.Errorf(vsockrpc.CodeBadRequest, "n: %d not in 1..%d", n, vsockrpc.MaxRandomSize)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		b, err := nsmSource{a}.GetRandom(ctx)
		if err != nil {
			return nil, a.nsmError("random", err)
		}
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out, nil
}

// ExtendPCR extends a user PCR (16..31) with data (local API).
func (a *Agent) ExtendPCR(ctx context.Context, index uint16, data []byte) ([]byte, error) {
	if err := checkUserPCR(index); err != nil {
		return nil, err
	}
	var v []byte
	err := a.withNSM(ctx, func(ctx context.Context) (err error) {
		v, err = a.nsm.ExtendPCR(ctx, index, data)
		return err
	})
	if err != nil {
		return nil, a.nsmError("extend_pcr", err)
	}
	a.log.Info("PCR extended by the local API", "index", index)
	return v, nil
}

// LockPCR locks a user PCR (16..31) (local API); describe reports it from then on.
func (a *Agent) LockPCR(ctx context.Context, index uint16) error {
	if err := checkUserPCR(index); err != nil {
		return err
	}
	var p nsm.PCR
	err := a.withNSM(ctx, func(ctx context.Context) error {
		if err := a.nsm.LockPCR(ctx, index); err != nil {
			return err
		}
		var err error
		p, err = a.nsm.DescribePCR(ctx, index)
		return err
	})
	if err != nil {
		return a.nsmError("lock_pcr", err)
	}
	a.mu.Lock()
	a.pcrs[index] = p.Value
	a.mu.Unlock()
	a.log.Info("PCR locked by the local API", "index", index)
	return nil
}

func checkUserPCR(index uint16) error {
	if index < vsockrpc.MinUserPCR || index > vsockrpc.MaxUserPCR {
		return vsockrpc.Errorf(vsockrpc.CodeBadRequest, "PCR %d is not a user PCR (%d..%d)", index, vsockrpc.MinUserPCR, vsockrpc.MaxUserPCR)
	}
	return nil
}

// nsmError maps an NSM failure to a protocol error and logs it.
func (a *Agent) nsmError(op string, err error) error {
	var (
		nerr  *nsm.Error
		ioerr *nsm.IoctlError
		perr  *vsockrpc.Error
		out   *vsockrpc.Error
	)
	switch {
	case errors.As(err, &perr):
		return perr
	case errors.As(err, &nerr):
		out = &vsockrpc.Error{Code: vsockrpc.CodeNSMError, NSMCode: string(nerr.Code), Message: nerr.Error()}
	case errors.Is(err, nsm.ErrRequestTooLarge):
		out = &vsockrpc.Error{Code: vsockrpc.CodeNSMError, NSMCode: string(nsm.InputTooLarge), Message: err.Error()}
	case errors.As(err, &ioerr):
		out = vsockrpc.Errorf(vsockrpc.CodeUnavailable, "%v", ioerr)
	case errors.Is(err, nsm.ErrInvalidResponse):
		out = vsockrpc.Errorf(vsockrpc.CodeUnavailable, "%v", err)
	case errors.Is(err, nsm.ErrClosed):
		out = vsockrpc.Errorf(vsockrpc.CodeShuttingDown, "the NSM session is closed")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		out = vsockrpc.Errorf(vsockrpc.CodeUnavailable, "%s: gave up waiting for the NSM: %v", op, err)
	default:
		a.log.Error("unexpected NSM failure", "op", op, "error", err.Error())
		return vsockrpc.Errorf(vsockrpc.CodeInternal, "%s failed", op)
	}
	a.log.Warn("NSM call failed", "op", op, "code", out.Code, "nsm_code", out.NSMCode, "error", err.Error())
	return out
}
