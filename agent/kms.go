package agent

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// The KMS Recipient flow (local API only; docs/kms.md): kms_recipient takes a fresh one-time
// RSA-2048 key from a warm pool, has the NSM bind it in a document, and hands the application a
// handle; kms_open opens one CiphertextForRecipient with that key and destroys it. An envelope
// captured anywhere cannot be opened once its handle is used or expired, and the one key that is
// never destroyed (the long-lived "rsa") is used only when the application names it.

// KMS defaults.
const (
	DefaultKMSPoolSize   = 2
	DefaultKMSHandleTTL  = 5 * time.Minute
	DefaultKMSMaxHandles = 64
)

// KMSConfig configures kms_recipient and kms_open. The zero value takes the defaults.
type KMSConfig struct {
	// PoolSize is how many fresh RSA-2048 keys are kept ready (default DefaultKMSPoolSize).
	PoolSize int
	// HandleTTL is how long an unused handle stays valid (default DefaultKMSHandleTTL).
	HandleTTL time.Duration
	// MaxHandles bounds the handles outstanding at once, counting requests still waiting for
	// their document; beyond it kms_recipient answers busy (default DefaultKMSMaxHandles).
	MaxHandles int
	// Now is the clock that decides expiry; nil means time.Now. Tests set a fake one.
	Now func() time.Time
	// GenerateKey makes the pool's keys; nil means fresh RSA-2048 keys. Benchmarks set one that
	// spends no CPU, to measure the request path alone.
	GenerateKey func() (*rsa.PrivateKey, error)
}

func (c *KMSConfig) setDefaults() error {
	if c.PoolSize == 0 {
		c.PoolSize = DefaultKMSPoolSize
	}
	if c.HandleTTL == 0 {
		c.HandleTTL = DefaultKMSHandleTTL
	}
	if c.MaxHandles == 0 {
		c.MaxHandles = DefaultKMSMaxHandles
	}
	if c.PoolSize < 1 || c.HandleTTL < 0 || c.MaxHandles < 1 {
		return fmt.Errorf("agent: KMS pool size %d, handle TTL %v, max handles %d: want positive values", c.PoolSize, c.HandleTTL, c.MaxHandles)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// kmsState is the agent's KMS Recipient state: the key pool and the outstanding handles.
type kmsState struct {
	cfg  KMSConfig
	pool *keys.RSAPool

	mu      sync.Mutex
	handles map[string]*kmsHandle
	pending int // kms_recipient calls holding a slot but not yet a handle
	closed  bool
	// sweeper drops expired handles' keys even if no call comes. One timer for all handles, armed
	// for the earliest expiry while any is outstanding: a timer per handle would be set and
	// stopped on every request, and setting a timer can wake the runtime's poller on another CPU.
	sweeper *time.Timer
	armed   bool // sweeper is set to fire
}

type kmsHandle struct {
	key     *keys.RecipientKey
	expires time.Time
}

// start validates cfg and starts the key pool. Call it only once the kernel pool is NSM-seeded.
func (k *kmsState) start(cfg KMSConfig) error {
	if err := cfg.setDefaults(); err != nil {
		return err
	}
	k.cfg = cfg
	k.handles = map[string]*kmsHandle{}
	k.pool = keys.NewRSAPoolWith(cfg.PoolSize, cfg.GenerateKey)
	return nil
}

// stop closes the pool and destroys every outstanding key.
func (k *kmsState) stop() {
	if k.pool == nil {
		return
	}
	k.pool.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.sweeper != nil {
		k.sweeper.Stop()
	}
	for id, h := range k.handles {
		k.dropLocked(id, h)
	}
}

// armLocked makes sure the sweeper will run by the time the handle expiring at exp has expired.
func (k *kmsState) armLocked(exp time.Time) {
	if k.armed {
		return // set for an earlier or equal expiry: HandleTTL is the same for every handle
	}
	k.armed = true
	d := exp.Sub(k.cfg.Now())
	if k.sweeper == nil {
		k.sweeper = time.AfterFunc(d, k.sweep)
	} else {
		k.sweeper.Reset(d)
	}
}

// sweep drops the handles that have expired and sets the sweeper again for the earliest of the
// rest.
func (k *kmsState) sweep() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed = false
	if k.closed {
		return
	}
	now := k.cfg.Now()
	var next time.Time
	for id, h := range k.handles {
		if !now.Before(h.expires) {
			k.dropLocked(id, h)
		} else if next.IsZero() || h.expires.Before(next) {
			next = h.expires
		}
	}
	if !next.IsZero() {
		k.armLocked(next)
	}
}

// reserve takes a slot for one more handle, or answers busy.
func (k *kmsState) reserve() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return vsockrpc.Errorf(vsockrpc.CodeShuttingDown, "the agent is closing")
	}
	now := k.cfg.Now()
	for id, h := range k.handles { // at most MaxHandles entries
		if !now.Before(h.expires) {
			k.dropLocked(id, h)
		}
	}
	if len(k.handles)+k.pending >= k.cfg.MaxHandles {
		return vsockrpc.Errorf(vsockrpc.CodeBusy, "%d KMS handles outstanding: use or let some expire", k.cfg.MaxHandles)
	}
	k.pending++
	return nil
}

func (k *kmsState) dropLocked(id string, h *kmsHandle) {
	h.key.Destroy()
	delete(k.handles, id)
}

// take removes the handle id and returns its key if the handle is valid now. A handle is taken
// whatever happens next: it opens at most one envelope.
func (k *kmsState) take(id []byte) *keys.RecipientKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.handles[string(id)]
	if h == nil {
		return nil
	}
	delete(k.handles, string(id))
	if !k.cfg.Now().Before(h.expires) {
		h.key.Destroy()
		return nil
	}
	return h.key // its Open destroys it, whatever the outcome
}

// NewKMSRecipient implements kms_recipient: a fresh document whose public_key is a fresh
// RSA-2048 SubjectPublicKeyInfo, with no nonce and no user_data (what KMS expects; its policies
// cannot read them), and a single-use handle for kms_open.
func (a *Agent) NewKMSRecipient(ctx context.Context) (*vsockrpc.KMSRecipientResult, error) {
	k := &a.kms
	if err := k.reserve(); err != nil {
		return nil, err
	}
	reserved := true // until the handle takes the slot over
	defer func() {
		if reserved {
			k.mu.Lock()
			k.pending--
			k.mu.Unlock()
		}
	}()
	key, err := k.pool.Get(ctx)
	switch {
	case errors.Is(err, keys.ErrPoolClosed):
		return nil, vsockrpc.Errorf(vsockrpc.CodeShuttingDown, "the agent is closing")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, vsockrpc.Errorf(vsockrpc.CodeUnavailable, "kms_recipient: gave up waiting for a fresh key: %v", err)
	case err != nil:
		a.log.Error("KMS key pool failed", "error", err.Error())
		return nil, vsockrpc.Errorf(vsockrpc.CodeInternal, "kms_recipient failed")
	}
	// The replacement key is asked for once the attestation is done, not before: waking the
	// pool's filler sets another thread running beside the NSM call (see keys.RSAPool).
	defer k.pool.Refill()
	spki := key.PublicKey()
	var doc []byte
	err = a.withNSM(ctx, func(ctx context.Context) (err error) {
		doc, err = a.nsm.Attestation(ctx, nsm.AttestationRequest{PublicKey: spki})
		return err
	})
	if err != nil {
		key.Destroy()
		return nil, a.nsmError("kms_recipient", err)
	}
	handle := make([]byte, vsockrpc.KMSHandleSize)
	rand.Read(handle) // never fails (crypto/rand panics instead)
	id := string(handle)

	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending--
	reserved = false
	if k.closed {
		key.Destroy()
		return nil, vsockrpc.Errorf(vsockrpc.CodeShuttingDown, "the agent is closing")
	}
	exp := k.cfg.Now().Add(k.cfg.HandleTTL)
	k.handles[id] = &kmsHandle{key: key, expires: exp}
	k.armLocked(exp)
	return &vsockrpc.KMSRecipientResult{Document: doc, PublicKey: spki, Handle: handle}, nil
}

// OpenKMS implements kms_open. Every failure to open, an unknown, used or expired handle
// included, is vsockrpc.ErrOpenFailed, and the log says nothing about why: the parent may read
// the log and may have supplied the envelope.
func (a *Agent) OpenKMS(_ context.Context, req vsockrpc.KMSOpenRequest) ([]byte, error) {
	var (
		pt  []byte
		err error
	)
	switch {
	case req.Key != "":
		if req.Key != keys.RSA {
			return nil, vsockrpc.Errorf(vsockrpc.CodeUnknownKey, "no RSA key %q: KMS envelopes open with a handle or key %q", req.Key, keys.RSA)
		}
		k, kerr := a.keys.Get(keys.RSA)
		if kerr != nil {
			return nil, vsockrpc.Errorf(vsockrpc.CodeUnknownKey, "no key %q", keys.RSA)
		}
		pt, err = k.OpenKMS(req.Ciphertext)
	default:
		key := a.kms.take(req.Handle)
		if key == nil {
			return nil, vsockrpc.ErrOpenFailed
		}
		pt, err = key.Open(req.Ciphertext)
	}
	if err != nil {
		return nil, vsockrpc.ErrOpenFailed
	}
	return pt, nil
}
