package keys

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/attestd/attestd/kmsenvelope"
)

// RSAPool keeps a few fresh RSA-2048 keys generated ahead of need, for KMS Recipient requests: RSA
// key generation takes tens of milliseconds, which must not be on a request's path. One goroutine
// fills the pool, so a burst of requests that empties it waits for that goroutine rather than
// generating keys on every caller's goroutine: the CPU a caller can make the agent spend on key
// generation is bounded by one core.
//
// Get does not wake the filler while keys remain: waking a parked goroutine wakes an OS thread on
// another CPU, which costs the caller a futex call and a thread that runs beside its
// latency-critical work (measured: kms_recipient 1.23-1.29x a bare socket with the wake-up in Get,
// 1.09-1.15x with Refill after the attestation). The caller calls Refill once that work is done. A pool whose Refill is
// never called still works: Get wakes the filler itself when it finds the pool empty.
//
// Make one with NewRSAPool only after the kernel pool is NSM-seeded (as for Generate).
type RSAPool struct {
	ready chan *RecipientKey
	need  chan struct{} // capacity 1: a token asks the filler to top the pool up
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	gen   func() (*rsa.PrivateKey, error)
	err   error // why fill stopped early; written before ready is closed
}

// ErrPoolClosed is returned by RSAPool.Get after Close.
var ErrPoolClosed = errors.New("keys: the RSA pool is closed")

// NewRSAPool starts filling a pool of size keys (size >= 1) in the background.
func NewRSAPool(size int) *RSAPool { return NewRSAPoolWith(size, nil) }

// NewRSAPoolWith is NewRSAPool with the key generator gen; nil means fresh RSA-2048 keys. Tests and
// benchmarks pass one that spends no CPU (a known key); production code has no reason to.
func NewRSAPoolWith(size int, gen func() (*rsa.PrivateKey, error)) *RSAPool {
	if gen == nil {
		gen = func() (*rsa.PrivateKey, error) {
			return rsa.GenerateKey(rand.Reader, RSABits) // the reader is ignored since Go 1.26: getrandom
		}
	}
	p := &RSAPool{
		ready: make(chan *RecipientKey, max(size, 1)),
		need:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		gen:   gen,
	}
	go p.fill()
	return p
}

// fill tops the pool up to its size, then parks until Refill or an empty Get asks again. It is the
// only sender on ready, so a send when ready has room never blocks.
func (p *RSAPool) fill() {
	defer close(p.done)
	for {
		for len(p.ready) < cap(p.ready) {
			select {
			case <-p.stop:
				close(p.ready)
				return
			default:
			}
			k, err := newRecipientKey(p.gen)
			if err != nil {
				// Key generation reads getrandom and does not fail in practice; if it does,
				// retrying at once would spin, so the pool stops and Get reports it.
				p.err = err
				close(p.ready)
				return
			}
			p.ready <- k
		}
		select {
		case <-p.need:
		case <-p.stop:
			close(p.ready)
			return
		}
	}
}

// Get returns a fresh key no other caller has had, waiting for one if the pool is empty, for as long
// as ctx allows. It does not ask for a replacement unless the pool is empty: call Refill when the
// caller's latency-critical work is done.
func (p *RSAPool) Get(ctx context.Context) (*RecipientKey, error) {
	var k *RecipientKey
	var ok bool
	select {
	case k, ok = <-p.ready:
	default:
		p.Refill()
		select {
		case k, ok = <-p.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !ok {
		if p.err != nil {
			return nil, p.err
		}
		return nil, ErrPoolClosed
	}
	return k, nil
}

// Refill asks the filler to top the pool up, without waiting. Calls while a request is pending
// add nothing.
func (p *RSAPool) Refill() {
	select {
	case p.need <- struct{}{}:
	default:
	}
}

// Close stops the pool and drops the keys it holds. Get fails with ErrPoolClosed afterwards.
func (p *RSAPool) Close() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		for k := range p.ready {
			k.Destroy()
		}
	})
}

// RecipientKey is a one-time RSA-2048 key for one KMS request: its public half goes into one
// attestation document, and Open opens one envelope with it, after which the private key is gone.
type RecipientKey struct {
	mu   sync.Mutex
	priv *rsa.PrivateKey // nil once used or destroyed
	spki []byte
}

func newRecipientKey(gen func() (*rsa.PrivateKey, error)) (*RecipientKey, error) {
	priv, err := gen()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &RecipientKey{priv: priv, spki: spki}, nil
}

// PublicKey returns the key's SubjectPublicKeyInfo DER: a document's public_key for KMS.
func (k *RecipientKey) PublicKey() []byte { return append([]byte(nil), k.spki...) }

// Open opens a KMS CiphertextForRecipient addressed to this key (kmsenvelope.Open) and destroys
// the key whatever the outcome: a second Open fails. Every failure is kmsenvelope.ErrOpen.
func (k *RecipientKey) Open(ber []byte) ([]byte, error) {
	k.mu.Lock()
	priv := k.priv
	k.priv = nil
	k.mu.Unlock()
	if priv == nil {
		return nil, kmsenvelope.ErrOpen
	}
	return kmsenvelope.Open(priv, ber)
}

// Destroy drops the private key; Open fails afterwards. Go cannot wipe an rsa.PrivateKey's
// internal copies, so the key is gone from the agent's reach, and from memory once collected.
func (k *RecipientKey) Destroy() {
	k.mu.Lock()
	k.priv = nil
	k.mu.Unlock()
}

// String describes the key with public information only; Format and LogValue make fmt and
// log/slog use it too, whatever the verb, so the private key never reaches a log.
func (k *RecipientKey) String() string { return "RSA-2048 KMS recipient key" }

// Format implements fmt.Formatter with String.
func (k *RecipientKey) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// LogValue implements slog.LogValuer with String.
func (k *RecipientKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
