package attestation

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// chainCache is a bounded LRU map from the exact certificate bytes of a
// document (chainKey) to its verified chain. Only successfully verified
// chains enter it.
type chainCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cacheEntry, most recently used first
	byKey map[[32]byte]*list.Element
}

type cacheEntry struct {
	key [32]byte
	ch  *chain
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, order: list.New(), byKey: make(map[[32]byte]*list.Element, max)}
}

func (c *chainCache) get(key [32]byte) *chain {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).ch
}

func (c *chainCache) add(key [32]byte, ch *chain) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; ok {
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheEntry{key: key, ch: ch})
	if c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*cacheEntry).key)
	}
}

// chainKey is SHA-256 over the leaf and every cabundle entry, each prefixed
// with its length, so distinct certificate lists never share a key.
func chainKey(p *parsed) [32]byte {
	h := sha256.New()
	put := func(b []byte) {
		h.Write([]byte{byte(len(b) >> 8), byte(len(b))})
		h.Write(b)
	}
	put(p.cert)
	for i := range p.nCA {
		put(p.cabundle[i])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}
