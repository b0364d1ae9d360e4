package vsockrpc

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exerciseLocal runs every local method through c against a fresh fakeService and checks the
// results.
func exerciseLocal(t *testing.T, c *Client, f *fakeService) {
	ctx := testCtx(t)
	res, err := c.Attest(ctx, []byte("nonce-1"), "rsa")
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	if want := "doc|rsa|nonce-1|"; string(res.Document) != want || string(res.PublicKey) != "pk-rsa" || res.Key != "rsa" {
		t.Fatalf("Attest = %q %q %q, want %q pk-rsa rsa", res.Document, res.PublicKey, res.Key, want)
	}
	d, err := c.Describe(ctx)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	want, _ := f.Describe(ctx)
	if d.AgentVersion != want.AgentVersion || d.ModuleID != want.ModuleID || len(d.Keys) != 2 ||
		d.Keys[0].Name != "hpke" || len(d.Keys[0].PublicKey) != 1216 || d.Keys[0].Binding != "sha256" ||
		d.Entropy != want.Entropy || d.Nonce != want.Nonce || len(d.PCRs) != 2 || !bytes.Equal(d.PCRs[16], []byte{1, 2, 3}) ||
		len(d.PCRs[0]) != 48 {
		t.Fatalf("Describe = %+v, want %+v", d, want)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" {
		t.Fatalf("Health = %v, %v", h, err)
	}
	if err := c.SetUserData(ctx, []byte("app-claims")); err != nil {
		t.Fatalf("SetUserData: %v", err)
	}
	res, err = c.Attest(ctx, []byte("n2"), "hpke")
	if err != nil || string(res.Document) != "doc|hpke|n2|app-claims" {
		t.Fatalf("Attest after SetUserData = %q, %v", res.Document, err)
	}
	res, err = c.AttestLocal(ctx, LocalAttestRequest{AttestRequest: AttestRequest{Nonce: []byte("n3"), Key: "rsa"}, UserData: []byte("own")})
	if err != nil || string(res.Document) != "doc|rsa|n3|own" {
		t.Fatalf("AttestLocal = %q, %v", res.Document, err)
	}
	if err := c.SetUserData(ctx, nil); err != nil {
		t.Fatalf("SetUserData(nil): %v", err)
	}
	if f.userData != nil {
		t.Fatalf("SetUserData(nil) left %q", f.userData)
	}
	r, err := c.Random(ctx, MaxRandomSize)
	if err != nil || len(r) != MaxRandomSize || r[5] != 5 {
		t.Fatalf("Random = %d bytes, %v", len(r), err)
	}
	v, err := c.ExtendPCR(ctx, 16, []byte("measurement"))
	if err != nil || len(v) != 32 {
		t.Fatalf("ExtendPCR = %x, %v", v, err)
	}
	if err := c.LockPCR(ctx, 16); err != nil {
		t.Fatalf("LockPCR: %v", err)
	}
	_, err = c.ExtendPCR(ctx, 16, []byte("again"))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeNSMError || e.NSMCode != "ReadOnlyIndex" {
		t.Fatalf("ExtendPCR of a locked PCR: %v, want nsm_error ReadOnlyIndex", err)
	}
}

func TestRoundTripUnixLocal(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	exerciseLocal(t, dialT(t, addr), f)
}

func TestRoundTripPipeLocal(t *testing.T) {
	f := newFake()
	exerciseLocal(t, servePipe(t, &Server{API: LocalAPI(f), Logger: quietLogger()}), f)
}
