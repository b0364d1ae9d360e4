package relyingparty

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

// fakeAgent answers attest the way the agent does (a software NSM signs a
// document binding one of a real key Set), with hooks that make it lie.
type fakeAgent struct {
	sess  *nsm.Session
	set   *keys.Set
	calls atomic.Int32
	// lie, if set, changes the request sent to the NSM or the result.
	lie atomic.Pointer[lie]
}

type lie = func(req *nsm.AttestationRequest, res *vsockrpc.AttestResult)

func (f *fakeAgent) Attest(ctx context.Context, req vsockrpc.AttestRequest) (*vsockrpc.AttestResult, error) {
	f.calls.Add(1)
	k, err := f.set.Get(req.Key)
	if err != nil {
		return nil, &vsockrpc.Error{Code: vsockrpc.CodeUnknownKey, Message: err.Error()}
	}
	nreq := nsm.AttestationRequest{Nonce: req.Nonce, PublicKey: k.DocumentPublicKey()}
	res := &vsockrpc.AttestResult{PublicKey: k.PublicKey(), Key: k.Name()}
	if l := f.lie.Load(); l != nil {
		(*l)(&nreq, res)
	}
	if res.Document, err = f.sess.Attestation(ctx, nreq); err != nil {
		return nil, err
	}
	return res, nil
}

func (f *fakeAgent) Describe(context.Context) (*vsockrpc.Description, error) {
	return &vsockrpc.Description{}, nil
}

func (f *fakeAgent) Health(context.Context) (*vsockrpc.Health, error) {
	return &vsockrpc.Health{Status: "ok"}, nil
}

type env struct {
	agent  *fakeAgent
	client *vsockrpc.Client
	addr   string
	// opts verifies against the mock root with a policy pinning PCR0.
	opts attestation.Options
	pcr0 []byte
}

func newEnv(t *testing.T) *env {
	t.Helper()
	enc := mockenclave.New(t, mocknsm.Config{})
	set, err := mockenclave.Keys(keys.Config{}) // one Set for every test
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := enc.PCR(t, 0)
	e := &env{agent: &fakeAgent{sess: enc.Session, set: set}, pcr0: pcr0}
	e.opts = attestation.Options{Root: enc.Root, PCRs: map[int][][]byte{0: {pcr0}}}
	e.addr = mockenclave.Serve(t, &vsockrpc.Server{API: vsockrpc.ParentAPI(e.agent)}, "p")
	if e.client, err = vsockrpc.Dial(context.Background(), e.addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.Close() })
	return e
}

func TestFetchThenCheckOffline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, name := range []string{keys.HPKE, keys.RSA} {
		k, err := Fetch(ctx, e.client, name, e.opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want, _ := e.agent.set.Get(name)
		if k.Name() != name || !bytes.Equal(k.PublicKey(), want.PublicKey()) {
			t.Errorf("%s: key %q %x…", name, k.Name(), k.PublicKey()[:8])
		}
		if len(k.Document().Nonce) != NonceSize || bytes.Equal(k.Document().Nonce, make([]byte, NonceSize)) {
			t.Errorf("%s: nonce %x, want %d fresh random bytes", name, k.Document().Nonce, NonceSize)
		}
		// The offline path accepts what Fetch saved, with the nonce it sent.
		opts := e.opts
		opts.Nonce = k.Document().Nonce
		k2, err := Check(name, k.RawDocument(), k.PublicKey(), opts)
		if err != nil {
			t.Fatalf("%s offline: %v", name, err)
		}
		if !bytes.Equal(k2.RawDocument(), k.RawDocument()) {
			t.Errorf("%s offline: another document", name)
		}
		// ... and refuses it once stale (max-age applies offline too).
		opts.Time = time.Now().Add(attestation.DefaultMaxAge + time.Minute)
		if _, err := Check(name, k.RawDocument(), k.PublicKey(), opts); !errors.Is(err, attestation.ErrFreshness) {
			t.Errorf("%s offline, stale: %v, want ErrFreshness", name, err)
		}
		// ... and refuses the other key's full key.
		other := keys.RSA
		if name == keys.RSA {
			other = keys.HPKE
		}
		ok, _ := e.agent.set.Get(other)
		if _, err := Check(name, k.RawDocument(), ok.PublicKey(), e.opts); !errors.Is(err, keys.ErrBindingMismatch) {
			t.Errorf("%s offline with the %s key: %v, want ErrBindingMismatch", name, other, err)
		}
	}
}

func TestFetchSendsTheGivenNonce(t *testing.T) {
	e := newEnv(t)
	opts := e.opts
	opts.Nonce = []byte("the relying party's own nonce")
	k, err := Fetch(context.Background(), e.client, keys.RSA, opts)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.Document().Nonce) != "the relying party's own nonce" {
		t.Errorf("nonce %q", k.Document().Nonce)
	}
	for _, n := range [][]byte{{}, make([]byte, vsockrpc.MaxNonceSize+1)} {
		opts.Nonce = n
		if _, err := Fetch(context.Background(), e.client, keys.RSA, opts); err == nil || !strings.Contains(err.Error(), "nonce is") {
			t.Errorf("%d-byte nonce: %v", len(n), err)
		}
	}
}

// TestFetchRejects: every way a document or answer can be wrong is refused,
// each with its own error.
func TestFetchRejects(t *testing.T) {
	e := newEnv(t)
	rsaKey, _ := e.agent.set.Get(keys.RSA)
	hpkeKey, _ := e.agent.set.Get(keys.HPKE)
	otherPCR := bytes.Repeat([]byte{0x42}, 48)
	for _, tc := range []struct {
		name  string
		key   string
		opts  func(*attestation.Options)
		lie   lie
		want  error
		calls int32 // agent calls the fetch may make
	}{
		{name: "no PCR policy", key: keys.HPKE, opts: func(o *attestation.Options) { o.PCRs = nil }, want: attestation.ErrNoPCRPolicy},
		{name: "other PCR0", key: keys.HPKE, opts: func(o *attestation.Options) { o.PCRs = map[int][][]byte{0: {otherPCR}} }, want: attestation.ErrPCRPolicy, calls: 1},
		{name: "AWS root", key: keys.RSA, opts: func(o *attestation.Options) { o.Root = nil }, want: attestation.ErrChain, calls: 1},
		{name: "replayed nonce", key: keys.RSA, lie: func(r *nsm.AttestationRequest, _ *vsockrpc.AttestResult) { r.Nonce = []byte("old") }, want: attestation.ErrNonce, calls: 1},
		{name: "no nonce", key: keys.RSA, lie: func(r *nsm.AttestationRequest, _ *vsockrpc.AttestResult) { r.Nonce = nil }, want: attestation.ErrNonce, calls: 1},
		{name: "parent's hpke key beside the document", key: keys.HPKE, lie: func(_ *nsm.AttestationRequest, r *vsockrpc.AttestResult) {
			r.PublicKey = append([]byte(nil), r.PublicKey...)
			r.PublicKey[0] ^= 1
		}, want: keys.ErrBindingMismatch, calls: 1},
		{name: "document binds the parent's RSA key", key: keys.RSA, lie: func(r *nsm.AttestationRequest, res *vsockrpc.AttestResult) {
			r.PublicKey = hpkeKey.DocumentPublicKey()
		}, want: keys.ErrBindingMismatch, calls: 1},
		{name: "answer for the other key", key: keys.HPKE, lie: func(r *nsm.AttestationRequest, res *vsockrpc.AttestResult) {
			r.PublicKey, res.PublicKey, res.Key = rsaKey.DocumentPublicKey(), rsaKey.PublicKey(), keys.RSA
		}, want: ErrAgent, calls: 1}, // the client refuses it
		{name: "unknown key name", key: "ed25519", want: ErrKeyName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := e.opts
			if tc.opts != nil {
				tc.opts(&opts)
			}
			if tc.lie != nil {
				e.agent.lie.Store(&tc.lie)
				defer e.agent.lie.Store(nil)
			}
			before := e.agent.calls.Load()
			k, err := Fetch(context.Background(), e.client, tc.key, opts)
			if !errors.Is(err, tc.want) || k != nil {
				t.Errorf("Fetch: %v, %v; want %v", k, err, tc.want)
			}
			if n := e.agent.calls.Load() - before; n != tc.calls {
				t.Errorf("%d agent calls, want %d", n, tc.calls)
			}
		})
	}
}

func TestFetchAgentErrors(t *testing.T) {
	e := newEnv(t)
	// The agent does not hold the key: an agent error, not a rejection.
	e.agent.set = &keys.Set{}
	if _, err := Fetch(context.Background(), e.client, keys.RSA, e.opts); !errors.Is(err, ErrAgent) || !errors.Is(err, &vsockrpc.Error{Code: vsockrpc.CodeUnknownKey}) {
		t.Errorf("unknown key at the agent: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fetch(ctx, e.client, keys.RSA, e.opts); !errors.Is(err, ErrAgent) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCheckResult(t *testing.T) {
	e := newEnv(t)
	nonce := []byte("n")
	res, err := e.client.Attest(context.Background(), nonce, keys.HPKE)
	if err != nil {
		t.Fatal(err)
	}
	opts := e.opts
	opts.Nonce = nonce
	if k, err := CheckResult(res, opts); err != nil || k.Name() != keys.HPKE {
		t.Fatalf("CheckResult: %v", err)
	}
	res.Key = keys.RSA
	if _, err := CheckResult(res, opts); !errors.Is(err, keys.ErrBindingMismatch) {
		t.Errorf("CheckResult with the wrong name: %v", err)
	}
}

// TestNoAgentImport: a relying party that imports this package does not pull
// in the agent (nor the NSM device code it would never use).
func TestNoAgentImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/attestd/attestd/agent", "github.com/attestd/attestd/nsm", "github.com/attestd/attestd/mocknsm", "github.com/attestd/attestd/entropy":
			t.Errorf("relyingparty depends on %s", dep)
		}
	}
}

func TestSealOpensInTheEnclave(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := []byte("the database password")
	hk, err := Fetch(ctx, e.client, keys.HPKE, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	env, err := hk.Seal(secret, SealOptions{AAD: []byte("db")})
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := e.agent.set.Get(keys.HPKE)
	if pt, aad, err := priv.OpenHPKE(env); err != nil || !bytes.Equal(pt, secret) || string(aad) != "db" {
		t.Errorf("OpenHPKE: %q, %q, %v", pt, aad, err)
	}
	if _, err := hk.Seal(secret, SealOptions{OAEPHash: seal.OAEPSHA1}); err == nil {
		t.Error("hpke with an OAEP hash: sealed")
	}
	if _, err := hk.Seal(secret, SealOptions{AAD: make([]byte, seal.MaxAAD+1)}); err == nil {
		t.Error("hpke with too long an aad: sealed")
	}

	rk, err := Fetch(ctx, e.client, keys.RSA, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ = e.agent.set.Get(keys.RSA)
	for _, tc := range []struct{ seal, open, other string }{
		{"", seal.OAEPSHA256, seal.OAEPSHA1}, // the default is SHA-256
		{seal.OAEPSHA1, seal.OAEPSHA1, seal.OAEPSHA256},
	} {
		ct, err := rk.Seal(secret, SealOptions{OAEPHash: tc.seal})
		if err != nil || len(ct) != seal.RSACiphertextSize {
			t.Fatalf("rsa %q: %d bytes, %v", tc.seal, len(ct), err)
		}
		if pt, err := priv.OpenRSA(tc.open, ct); err != nil || !bytes.Equal(pt, secret) {
			t.Errorf("rsa %q opened with %s: %q, %v", tc.seal, tc.open, pt, err)
		}
		if _, err := priv.OpenRSA(tc.other, ct); err == nil {
			t.Errorf("rsa %q opened with %s", tc.seal, tc.other)
		}
	}
	for _, o := range []SealOptions{{AAD: []byte{}}, {OAEPHash: "md5"}} {
		if _, err := rk.Seal(secret, o); err == nil {
			t.Errorf("rsa with %+v: sealed", o)
		}
	}
}
