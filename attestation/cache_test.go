package attestation

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

func (c *chainCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func mockVerifier(t *testing.T, edit func(o *Options)) *Verifier {
	t.Helper()
	opts := mockOptions(t)
	opts.PCRs, opts.AnyPCRs = nil, true
	if edit != nil {
		edit(&opts)
	}
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// at returns a Verifier with the same options at another time, sharing v's
// cache (what a long-running Verifier with Time zero sees as time passes).
func (v *Verifier) at(t *testing.T, when time.Time) *Verifier {
	t.Helper()
	c := *v.cfg
	c.at = when
	return &Verifier{cfg: &c, cache: v.cache}
}

// TestCacheHitIsUsed proves a second verification of the same certificates
// takes the chain from the cache: a marker planted in the cached entry shows
// up in the result.
func TestCacheHitIsUsed(t *testing.T) {
	v := mockVerifier(t, nil)
	doc := baseSpec(t).build(t)
	if _, err := v.Verify(doc); err != nil {
		t.Fatal(err)
	}
	if v.cache.size() != 1 {
		t.Fatalf("cache holds %d chains, want 1", v.cache.size())
	}
	var p parsed
	if err := parse(doc, &p); err != nil {
		t.Fatal(err)
	}
	ch := v.cache.get(chainKey(&p))
	ch.certs[1].Subject = "marker"
	d, err := v.Verify(doc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Chain[1].Subject != "marker" {
		t.Fatal("second verification did not use the cached chain")
	}
	// The result is a copy: changing it does not reach the cache.
	d.Chain[1].Subject = "changed"
	if ch.certs[1].Subject != "marker" {
		t.Fatal("Document.Chain aliases the cache")
	}
}

// TestCacheHitKeepsDocumentAndTimeChecks: with the chain cached, every check
// that depends on the document or the time still runs.
func TestCacheHitKeepsDocumentAndTimeChecks(t *testing.T) {
	v := mockVerifier(t, nil)
	doc := baseSpec(t).build(t)
	if _, err := v.Verify(doc); err != nil {
		t.Fatal(err)
	}
	hit := func(name string, d *Document, err error, want error, sub string) {
		t.Helper()
		t.Run(name, func(t *testing.T) { wantRejected(t, d, err, want, sub) })
		if v.cache.size() != 1 {
			t.Fatalf("%s: cache holds %d chains", name, v.cache.size())
		}
	}
	leafEnd := newMockPKI(t).leaf.cert.NotAfter
	d, err := v.at(t, leafEnd.Add(time.Second)).Verify(doc)
	hit("leaf expired later", d, err, ErrValidity, "expired")
	d, err = v.at(t, mockNow.Add(-2*time.Hour)).Verify(doc)
	hit("leaf not yet valid earlier", d, err, ErrValidity, "not valid before")
	d, err = v.at(t, mockNow.Add(10*time.Minute)).Verify(doc)
	hit("too old later", d, err, ErrFreshness, "old")

	d, err = v.VerifyNonce(doc, []byte("another nonce"))
	hit("different nonce", d, err, ErrNonce, "differs")
	if _, err := v.VerifyNonce(doc, []byte("0123456789abcdef0123")); err != nil {
		t.Fatalf("own nonce: %v", err)
	}

	s := baseSpec(t)
	zeroPCRs(s, 0, 1, 2)
	d, err = v.Verify(s.build(t))
	hit("debug", d, err, ErrDebug, "debug-mode")

	tampered := bytes.Clone(doc)
	tampered[len(tampered)-1] ^= 0x01
	d, err = v.Verify(tampered)
	hit("tampered signature", d, err, ErrSignature, "does not verify")

	s = baseSpec(t)
	s.nonce = []byte("changed payload")
	signed := s.build(t)
	spliced := append(signed[:len(signed)-96:len(signed)-96], doc[len(doc)-96:]...)
	d, err = v.Verify(spliced)
	hit("signature from another document", d, err, ErrSignature, "does not verify")

	s = baseSpec(t)
	s.timestamp = mockNow.Add(-time.Hour - time.Second)
	d, err = v.at(t, mockNow.Add(-time.Hour)).Verify(s.build(t))
	hit("timestamp before the cached leaf validity", d, err, ErrTimestamp, "outside")
}

// TestCacheSkipsFailures: a rejected chain is not remembered, so a later
// verification of the same bytes fails again.
func TestCacheSkipsFailures(t *testing.T) {
	v := mockVerifier(t, nil)
	s := baseSpec(t)
	s.cabundle = s.cabundle[1:]
	doc := s.build(t)
	for range 2 {
		d, err := v.Verify(doc)
		wantRejected(t, d, err, ErrChain, "pinned root")
	}
	if v.cache.size() != 0 {
		t.Fatalf("cache holds %d chains after failures", v.cache.size())
	}
}

func TestCacheBoundedLRU(t *testing.T) {
	c := newChainCache(3)
	k := func(i int) [32]byte { return [32]byte{byte(i)} }
	for i := range 3 {
		c.add(k(i), &chain{})
	}
	c.get(k(0)) // 0 is now the most recent; 1 the least
	c.add(k(3), &chain{})
	if c.size() != 3 {
		t.Fatalf("size %d, want 3", c.size())
	}
	if c.get(k(1)) != nil {
		t.Fatal("least recently used entry not evicted")
	}
	for _, i := range []int{0, 2, 3} {
		if c.get(k(i)) == nil {
			t.Fatalf("entry %d evicted", i)
		}
	}
}

// TestCacheKeyIsExactBytes: a different certificate list is a different key,
// even when only the bundle's order or split changes.
func TestCacheKeyIsExactBytes(t *testing.T) {
	a := parsed{cert: []byte("leaf"), nCA: 2}
	a.cabundle[0], a.cabundle[1] = []byte("ab"), []byte("c")
	b := a
	b.cabundle[0], b.cabundle[1] = []byte("a"), []byte("bc")
	c := a
	c.cabundle[0], c.cabundle[1] = a.cabundle[1], a.cabundle[0]
	if chainKey(&a) == chainKey(&b) || chainKey(&a) == chainKey(&c) {
		t.Fatal("distinct certificate lists share a cache key")
	}
}

// TestVerifierConcurrent: one Verifier used from many goroutines with a mix of
// accepted and rejected documents (run under -race).
func TestVerifierConcurrent(t *testing.T) {
	v := mockVerifier(t, nil)
	good := baseSpec(t).build(t)
	s := baseSpec(t)
	zeroPCRs(s, 0, 1, 2)
	debug := s.build(t)
	s = baseSpec(t)
	s.cabundle = s.cabundle[1:]
	noRoot := s.build(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 12 {
				switch (g + i) % 4 {
				case 0:
					if _, err := v.VerifyNonce(good, []byte("0123456789abcdef0123")); err != nil {
						errs <- err
					}
				case 1:
					if _, err := v.VerifyNonce(good, []byte(fmt.Sprint("other", g))); err == nil {
						errs <- fmt.Errorf("wrong nonce accepted")
					}
				case 2:
					if _, err := v.Verify(debug); err == nil {
						errs <- fmt.Errorf("debug accepted")
					}
				case 3:
					if _, err := v.Verify(noRoot); err == nil {
						errs <- fmt.Errorf("rootless chain accepted")
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v.cache.size() != 1 {
		t.Fatalf("cache holds %d chains, want 1", v.cache.size())
	}
}

// TestVerifierCopiesOptions: changing the caller's policy after NewVerifier
// changes nothing.
func TestVerifierCopiesOptions(t *testing.T) {
	opts := mockOptions(t)
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.PCRs[0][0][0] ^= 0xff
	opts.PCRs[1] = [][]byte{mockPCR(30)}
	if _, err := v.Verify(baseSpec(t).build(t)); err != nil {
		t.Fatalf("policy changed under the Verifier: %v", err)
	}
}
