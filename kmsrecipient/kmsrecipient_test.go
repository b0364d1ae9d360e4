package kmsrecipient

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/kmsenvelope"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/vsockrpc"
)

// startAgent runs the real agent on the software NSM and serves its local API on a unix socket.
// It returns the socket address and the mock root for verifying documents.
func startAgent(t *testing.T) (string, attestation.Options) {
	t.Helper()
	enc := mockenclave.New(t, mocknsm.Config{})
	a, err := agent.New(context.Background(), agent.Config{
		NSM: enc.Session, Entropy: mockenclave.Entropy(t),
		Version: "test", Mock: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	addr := mockenclave.Serve(t, &vsockrpc.Server{API: vsockrpc.LocalAPI(a)}, "l")
	return addr, attestation.Options{Root: enc.Root, AnyPCRs: true}
}

func TestRecipientRoundTrip(t *testing.T) {
	addr, opts := startAgent(t)
	ctx := context.Background()
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Recipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyEncryptionAlgorithm != "RSAES_OAEP_SHA_256" {
		t.Fatalf("KeyEncryptionAlgorithm %q", r.KeyEncryptionAlgorithm)
	}
	opts.PublicKey = r.PublicKey
	if _, err := attestation.Verify(r.AttestationDocument, opts); err != nil {
		t.Fatalf("the document does not verify with its public key: %v", err)
	}
	// What KMS would answer, in its template, to that document's key.
	env, err := kmsenvelope.Build(r.PublicKey, []byte("data key"), kmsenvelope.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pt, err := r.Open(ctx, env)
	if err != nil || !bytes.Equal(pt, []byte("data key")) {
		t.Fatalf("Open: %q, %v", pt, err)
	}
	if _, err := r.Open(ctx, env); err != ErrUsed {
		t.Fatalf("second Open: %v, want ErrUsed", err)
	}

	// A failed Open uses the Recipient up too, and says only open_failed.
	r2, err := c.Recipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Open(ctx, env); !errors.Is(err, ErrOpenFailed) || err.Error() != ErrOpenFailed.Error() {
		t.Fatalf("an envelope for another key: %v, want ErrOpenFailed", err)
	}
	if _, err := r2.Open(ctx, env); err != ErrUsed {
		t.Fatalf("after a failed Open: %v, want ErrUsed", err)
	}
}

func TestOpenWithAgentKey(t *testing.T) {
	addr, opts := startAgent(t)
	ctx := context.Background()
	vc, err := vsockrpc.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	c := New(vc)
	defer c.Close()
	res, err := vc.AttestLocal(ctx, vsockrpc.LocalAttestRequest{AttestRequest: vsockrpc.AttestRequest{Key: "rsa"}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := attestation.Verify(res.Document, opts)
	if err != nil {
		t.Fatal(err)
	}
	env, err := kmsenvelope.Build(doc.PublicKey, []byte("k"), kmsenvelope.BuildOptions{Primitive: true})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := c.OpenWithAgentKey(ctx, env); err != nil || string(pt) != "k" {
		t.Fatalf("OpenWithAgentKey: %q, %v", pt, err)
	}
	if _, err := c.OpenWithAgentKey(ctx, append(env, 0)); !errors.Is(err, ErrOpenFailed) {
		t.Fatalf("trailing byte: %v, want ErrOpenFailed", err)
	}
}
