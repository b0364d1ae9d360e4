package attestation

import (
	"bytes"
	"crypto/x509"
	"time"
)

// Defaults applied when the corresponding Options field is zero.
const (
	// DefaultMaxAge is the oldest a document may be, relative to the
	// verification time, when Options.MaxAge is zero.
	DefaultMaxAge = 5 * time.Minute
	// DefaultFutureSkew is how far in the future of the verification time a
	// document timestamp may lie (enclave clock drift) when
	// Options.FutureSkew is zero.
	DefaultFutureSkew = 60 * time.Second
	// NoMaxAge, as Options.MaxAge, disables the maximum-age check. Only for
	// callers that get freshness elsewhere (a one-time nonce) or audit old
	// documents.
	NoMaxAge time.Duration = -1
)

// Options say what a document must satisfy. The zero value is the safe one:
// the embedded AWS root, verification at the current time, debug enclaves
// rejected, documents at most DefaultMaxAge old — except that a PCR policy
// must be chosen explicitly (PCRs or AnyPCRs); without one Verify fails with
// ErrNoPCRPolicy.
type Options struct {
	// Root is the only trust anchor; cabundle[0] must be this exact
	// certificate. nil: the embedded AWS Nitro Enclaves Root-G1 (AWSRoot).
	Root *x509.Certificate

	// Time is the verification time: every certificate must be valid at Time
	// and the document timestamp is judged against it. Zero: time.Now() at
	// each verification.
	Time time.Time
	// AtDocumentTime verifies as of the document's own timestamp (archival
	// audit: proves AWS signed the document then, not that it is fresh).
	// Cannot be combined with Time.
	AtDocumentTime bool

	// PCRs is the PCR policy: for each named index (0..31), the allowed
	// values (48 bytes each; several values allow rollouts). Every named index
	// must be present in the document with one of its values. A nil or empty
	// map is not a policy: see AnyPCRs.
	PCRs map[int][][]byte
	// AnyPCRs is the explicit choice to accept any PCR values (the document
	// still has to be AWS-signed and, unless AllowDebug, not debug mode).
	AnyPCRs bool
	// AllowDebug accepts debug-mode enclaves (PCR0, PCR1 and PCR2 all zero),
	// whose memory the parent instance can read.
	AllowDebug bool

	// Nonce, if non-nil, must equal the document's nonce (compared in
	// constant time); a document without a nonce is then rejected.
	Nonce []byte
	// PublicKey, if non-nil, must equal the document's public_key.
	PublicKey []byte
	// UserData, if non-nil, must equal the document's user_data.
	UserData []byte

	// MaxAge is the maximum age of the document timestamp at the verification
	// time. Zero: DefaultMaxAge; NoMaxAge disables the check.
	MaxAge time.Duration
	// FutureSkew is how far the timestamp may lie in the future of the
	// verification time. Zero: DefaultFutureSkew. Must not be negative.
	FutureSkew time.Duration
}

// config is a validated copy of Options: later changes to the caller's maps
// and slices do not affect a Verifier.
type config struct {
	root       *x509.Certificate
	at         time.Time
	atDocTime  bool
	anyPCRs    bool
	pcrMask    uint32
	pcrs       [maxPCRs][][]byte
	allowDebug bool
	nonce      []byte
	publicKey  []byte
	userData   []byte
	maxAge     time.Duration // 0: no limit
	skew       time.Duration
	sigs       signatures
}

func (o *Options) compile() (*config, error) {
	c := &config{
		root:       o.Root,
		at:         o.Time,
		atDocTime:  o.AtDocumentTime,
		anyPCRs:    o.AnyPCRs,
		allowDebug: o.AllowDebug,
		nonce:      clone(o.Nonce),
		publicKey:  clone(o.PublicKey),
		userData:   clone(o.UserData),
		maxAge:     o.MaxAge,
		skew:       o.FutureSkew,
		sigs:       realSignatures,
	}
	if c.root == nil {
		c.root = awsRoot
	} else if err := checkRoot(c.root); err != nil {
		return nil, fail(ErrOptions, "%v", err)
	}
	if c.atDocTime && !c.at.IsZero() {
		return nil, fail(ErrOptions, "Time and AtDocumentTime are mutually exclusive")
	}
	switch {
	case c.maxAge == 0:
		c.maxAge = DefaultMaxAge
	case c.maxAge == NoMaxAge:
		c.maxAge = 0
	case c.maxAge < 0:
		return nil, fail(ErrOptions, "negative MaxAge %v (use NoMaxAge to disable the check)", c.maxAge)
	}
	switch {
	case c.skew == 0:
		c.skew = DefaultFutureSkew
	case c.skew < 0:
		return nil, fail(ErrOptions, "negative FutureSkew %v", c.skew)
	}
	if o.AnyPCRs {
		if o.PCRs != nil {
			return nil, fail(ErrOptions, "PCRs and AnyPCRs are mutually exclusive")
		}
		return c, nil
	}
	if len(o.PCRs) == 0 {
		return nil, fail(ErrNoPCRPolicy, "set Options.PCRs to pin the enclave image, or AnyPCRs to accept any image")
	}
	for idx, vals := range o.PCRs {
		if idx < 0 || idx >= maxPCRs {
			return nil, fail(ErrOptions, "PCR index %d is out of range 0..%d", idx, maxPCRs-1)
		}
		if len(vals) == 0 {
			return nil, fail(ErrOptions, "PCR%d has no allowed value", idx)
		}
		for _, v := range vals {
			if len(v) != pcrSize {
				return nil, fail(ErrOptions, "allowed value for PCR%d is %d bytes, want %d", idx, len(v), pcrSize)
			}
			c.pcrs[idx] = append(c.pcrs[idx], bytes.Clone(v))
		}
		c.pcrMask |= 1 << idx
	}
	return c, nil
}

// clone copies b, keeping nil and empty apart.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
