package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/x509"
	"slices"
	"time"

	"github.com/attestd/attestd/internal/strictcbor"
)

// Document is a verified attestation document. Verify returns either a
// Document or an error, never both.
type Document struct {
	ModuleID  string
	Timestamp time.Time // UTC, millisecond precision
	Digest    string    // always "SHA384"
	// PCRs holds every PCR the document reports (all locked PCRs), 48 bytes each.
	PCRs map[int][]byte
	// PublicKey, UserData and Nonce are nil when the document carries null,
	// and non-nil (possibly empty) otherwise.
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
	// Debug is true for a debug-mode enclave (PCR0, PCR1, PCR2 all zero);
	// only possible with Options.AllowDebug.
	Debug bool
	// Chain is the verified certificate chain, leaf first, root last.
	Chain []Certificate
	// VerifiedAt is the time the certificates and freshness were checked at.
	VerifiedAt time.Time
}

// Verify checks an attestation document (COSE_Sign1 bytes, untagged or tag
// 18) against opts and returns its contents. Checks, in order: strict
// decoding and schema (ErrInput, ErrCBOR, ErrEnvelope, ErrAlgorithm,
// ErrPayload, ErrDigest, ErrPCRs, ErrSignature for a signature that is not 96
// bytes), the certificate chain to the pinned root (ErrChain, ErrCertificate),
// certificate validity at the verification time (ErrValidity), the timestamp
// within the leaf's validity (ErrTimestamp), the ES384 signature
// (ErrSignature), freshness (ErrFreshness), debug mode (ErrDebug), the PCR
// policy (ErrPCRPolicy), nonce, public_key and user_data (ErrNonce,
// ErrPublicKey, ErrUserData). Invalid options fail with ErrOptions or
// ErrNoPCRPolicy.
//
// Verify does not cache: for many documents use a Verifier.
func Verify(doc []byte, opts Options) (*Document, error) {
	c, err := opts.compile()
	if err != nil {
		return nil, err
	}
	return c.verify(doc, nil, c.nonce)
}

// Verifier verifies documents against fixed Options and caches verified
// certificate chains: a document whose exact certificate bytes were verified
// before costs one ES384 signature check plus the checks that depend on the
// document or the time, which are never skipped. Safe for concurrent use.
type Verifier struct {
	cfg   *config
	cache *chainCache
}

// ChainCacheSize is the number of chains a Verifier remembers (least recently
// used first out). A chain is about 2 KiB.
const ChainCacheSize = 1024

// NewVerifier validates opts once and returns a Verifier using them.
func NewVerifier(opts Options) (*Verifier, error) {
	c, err := opts.compile()
	if err != nil {
		return nil, err
	}
	return &Verifier{cfg: c, cache: newChainCache(ChainCacheSize)}, nil
}

// Verify checks doc like the package-level Verify with the Verifier's Options.
func (v *Verifier) Verify(doc []byte) (*Document, error) {
	return v.cfg.verify(doc, v.cache, v.cfg.nonce)
}

// VerifyNonce is Verify with nonce as the expected nonce for this call (in
// place of Options.Nonce): the usual relying-party flow, one fresh nonce per
// document. A nil nonce is an ErrOptions error.
func (v *Verifier) VerifyNonce(doc, nonce []byte) (*Document, error) {
	if nonce == nil {
		return nil, fail(ErrOptions, "VerifyNonce needs a nonce")
	}
	return v.cfg.verify(doc, v.cache, nonce)
}

func (c *config) verify(doc []byte, cache *chainCache, nonce []byte) (*Document, error) {
	var p parsed
	if err := parse(doc, &p); err != nil {
		return nil, err
	}
	ch, err := c.chain(&p, cache)
	if err != nil {
		return nil, err
	}
	ts := time.UnixMilli(int64(p.timestamp)).UTC()
	at := c.at
	switch {
	case c.atDocTime:
		at = ts
	case at.IsZero():
		at = time.Now()
	}
	if err := ch.checkValidity(at); err != nil {
		return nil, err
	}
	leaf := &ch.certs[0]
	if ts.Before(leaf.NotBefore) || ts.After(leaf.NotAfter) {
		return nil, fail(ErrTimestamp, "timestamp %s is outside the leaf certificate validity %s .. %s",
			ts.Format(time.RFC3339Nano), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	if err := checkSignature(ch.leafKey, &p, c.sigs.es384); err != nil {
		return nil, err
	}
	if age := at.Sub(ts); c.maxAge > 0 && age > c.maxAge {
		return nil, fail(ErrFreshness, "document is %v old, at most %v allowed", age, c.maxAge)
	}
	if ahead := ts.Sub(at); ahead > c.skew {
		return nil, fail(ErrFreshness, "timestamp is %v ahead of the verification time, at most %v allowed", ahead, c.skew)
	}
	debug := isZero(p.pcrs[0]) && isZero(p.pcrs[1]) && isZero(p.pcrs[2])
	if debug && !c.allowDebug {
		return nil, fail(ErrDebug, "debug-mode enclave (PCR0, PCR1 and PCR2 are zero): its memory is readable by the parent instance")
	}
	if err := c.checkPCRs(&p); err != nil {
		return nil, err
	}
	if nonce != nil {
		if p.nonce == nil {
			return nil, fail(ErrNonce, "the document has no nonce")
		}
		if subtle.ConstantTimeCompare(p.nonce, nonce) != 1 {
			return nil, fail(ErrNonce, "the nonce differs from the expected one")
		}
	}
	if c.publicKey != nil {
		if p.publicKey == nil {
			return nil, fail(ErrPublicKey, "the document has no public_key")
		}
		if subtle.ConstantTimeCompare(p.publicKey, c.publicKey) != 1 {
			return nil, fail(ErrPublicKey, "public_key differs from the expected one")
		}
	}
	if c.userData != nil {
		if p.userData == nil {
			return nil, fail(ErrUserData, "the document has no user_data")
		}
		if subtle.ConstantTimeCompare(p.userData, c.userData) != 1 {
			return nil, fail(ErrUserData, "user_data differs from the expected one")
		}
	}
	return newDocument(&p, ch, ts, at, debug), nil
}

// chain returns the verified chain of p, from the cache when its exact
// certificate bytes were verified before.
func (c *config) chain(p *parsed, cache *chainCache) (*chain, error) {
	if cache == nil {
		return verifyChain(c.root, p, c.sigs.link)
	}
	key := chainKey(p)
	if ch := cache.get(key); ch != nil {
		return ch, nil
	}
	ch, err := verifyChain(c.root, p, c.sigs.link)
	if err != nil {
		return nil, err // failures are never cached
	}
	cache.add(key, ch)
	return ch, nil
}

func (c *config) checkPCRs(p *parsed) error {
	if c.anyPCRs {
		return nil
	}
	for idx := range maxPCRs {
		if c.pcrMask&(1<<idx) == 0 {
			continue
		}
		got := p.pcrs[idx]
		if got == nil {
			return fail(ErrPCRPolicy, "PCR%d is required by the policy but absent from the document", idx)
		}
		if !slices.ContainsFunc(c.pcrs[idx], func(want []byte) bool { return bytes.Equal(got, want) }) {
			return fail(ErrPCRPolicy, "PCR%d = %x is not an allowed value", idx, got)
		}
	}
	return nil
}

// sigStructurePrefix is the CBOR of the array head and the context string of
// Sig_structure = ["Signature1", protected, external_aad, payload] (RFC 8152
// §4.4).
var sigStructurePrefix = []byte{0x84, 0x6a, 'S', 'i', 'g', 'n', 'a', 't', 'u', 'r', 'e', '1'}

// p384Order is the order n of the P-384 group, big-endian.
var p384Order = [48]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2,
	0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
}

// signatures are the two public-key operations of a verification, checked
// through these functions so that the fuzz tests can put a gate in front of
// them (fuzz_test.go: the P-384 arithmetic is skipped, and the check fails,
// when the signed bytes are not those of a genuine document). Every Verifier
// uses realSignatures.
type signatures struct {
	link func(child, parent *x509.Certificate) error // one chain link
	// es384 checks the COSE signature; nil calls ecdsa.VerifyASN1 directly,
	// so that the digest and signature buffers stay on the stack.
	es384 func(key *ecdsa.PublicKey, digest, sig []byte) bool
}

var realSignatures = signatures{link: (*x509.Certificate).CheckSignatureFrom}

// checkSignature verifies the ES384 signature over the Sig_structure built
// from the received protected header and payload bytes, with an empty
// external_aad.
func checkSignature(key *ecdsa.PublicKey, p *parsed, es384 func(key *ecdsa.PublicKey, digest, sig []byte) bool) error {
	r, s := p.signature[:48], p.signature[48:]
	if !inScalarRange(r) || !inScalarRange(s) {
		return fail(ErrSignature, "r or s is outside [1, n-1]")
	}
	h := sha512.New384()
	h.Write(sigStructurePrefix)
	var head [9]byte
	h.Write(strictcbor.AppendHead(head[:0], strictcbor.Bytes, uint64(len(p.protected))))
	h.Write(p.protected)
	h.Write([]byte{0x40}) // external_aad = h''
	h.Write(strictcbor.AppendHead(head[:0], strictcbor.Bytes, uint64(len(p.payload))))
	h.Write(p.payload)
	var digest [48]byte
	var der [2 + 2*(2+49)]byte
	d, sig := h.Sum(digest[:0]), derSignature(der[:0], r, s)
	var ok bool
	if es384 == nil {
		ok = ecdsa.VerifyASN1(key, d, sig)
	} else {
		ok = es384(key, bytes.Clone(d), bytes.Clone(sig)) // copies escape to the hook, not the buffers
	}
	if !ok {
		return fail(ErrSignature, "ES384 signature does not verify with the leaf certificate key")
	}
	return nil
}

// inScalarRange reports whether the big-endian v is in [1, n-1].
func inScalarRange(v []byte) bool {
	return !isZero(v) && bytes.Compare(v, p384Order[:]) < 0
}

// derSignature appends SEQUENCE { INTEGER r, INTEGER s } for the positive
// big-endian r and s (at most 104 bytes, so every length fits in one byte).
func derSignature(dst, r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	rl, sl := len(r)+int(r[0]>>7), len(s)+int(s[0]>>7) // a 0x00 keeps a high bit from meaning negative
	dst = append(dst, 0x30, byte(rl+sl+4))
	dst = derInt(dst, r, rl)
	return derInt(dst, s, sl)
}

func derInt(dst, v []byte, n int) []byte {
	dst = append(dst, 0x02, byte(n))
	if n > len(v) {
		dst = append(dst, 0)
	}
	return append(dst, v...)
}

// trimZeros removes leading zero bytes, keeping at least one byte.
func trimZeros(v []byte) []byte {
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	return v
}

func isZero(b []byte) bool {
	if b == nil {
		return false
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// newDocument copies the verified fields out of the input buffer.
func newDocument(p *parsed, ch *chain, ts, at time.Time, debug bool) *Document {
	size := len(p.publicKey) + len(p.userData) + len(p.nonce)
	for i := range maxPCRs {
		size += len(p.pcrs[i])
	}
	buf := make([]byte, 0, size)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	d := &Document{
		ModuleID:   string(p.moduleID),
		Timestamp:  ts,
		Digest:     "SHA384",
		PCRs:       make(map[int][]byte, maxPCRs),
		PublicKey:  take(p.publicKey),
		UserData:   take(p.userData),
		Nonce:      take(p.nonce),
		Debug:      debug,
		Chain:      slices.Clone(ch.certs),
		VerifiedAt: at.UTC(),
	}
	for i := range maxPCRs {
		if p.pcrs[i] != nil {
			d.PCRs[i] = take(p.pcrs[i])
		}
	}
	return d
}
