package vsockrpc

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestKMSMethods: kms_recipient and kms_open over a local socket, handle single use, key "rsa", and
// the one open_failed error.
func TestKMSMethods(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := context.Background()
	r, err := c.KMSRecipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Document) != "kmsdoc" || string(r.PublicKey) != "spki" || len(r.Handle) != KMSHandleSize {
		t.Fatalf("result %+v", r)
	}
	pt, err := c.OpenKMS(ctx, KMSOpenRequest{Handle: r.Handle, Ciphertext: []byte("env")})
	if err != nil || string(pt) != "pt|env" {
		t.Fatalf("OpenKMS: %q, %v", pt, err)
	}
	for _, req := range []KMSOpenRequest{
		{Handle: r.Handle, Ciphertext: []byte("env")},                    // used
		{Handle: make([]byte, KMSHandleSize), Ciphertext: []byte("env")}, // never issued
		{Key: "rsa", Ciphertext: []byte("bad")},
	} {
		_, err := c.OpenKMS(ctx, req)
		var e *Error
		if !errors.Is(err, ErrOpenFailed) || !errors.As(err, &e) || e.Message != OpenFailedMessage {
			t.Fatalf("OpenKMS(%+v): %v, want open_failed with its one message", req, err)
		}
	}
	if pt, err := c.OpenKMS(ctx, KMSOpenRequest{Key: "rsa", Ciphertext: []byte("x")}); err != nil || string(pt) != "pt|x" {
		t.Fatalf("OpenKMS with key rsa: %q, %v", pt, err)
	}
	wantCode(t, func() error {
		_, err := c.OpenKMS(ctx, KMSOpenRequest{Key: "hpke", Ciphertext: []byte("x")})
		return err
	}(),
		CodeUnknownKey, "hpke")
}

// TestKMSParentUnknown: neither method exists on the parent API, whatever the service implements.
func TestKMSParentUnknown(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, ParentAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := context.Background()
	_, err := c.KMSRecipient(ctx)
	wantCode(t, err, CodeUnknownMethod, "no method")
	_, err = c.OpenKMS(ctx, KMSOpenRequest{Key: "rsa", Ciphertext: []byte("x")})
	wantCode(t, err, CodeUnknownMethod, "no method")
	_, err = c.OpenKMS(ctx, KMSOpenRequest{Handle: make([]byte, KMSHandleSize), Ciphertext: []byte("x")})
	wantCode(t, err, CodeUnknownMethod, "no method")
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestKMSParamValidation: the protocol bounds, checked before the service is called.
func TestKMSParamValidation(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	h := make([]byte, KMSHandleSize)
	ct := []byte("env")
	for _, r := range []struct {
		method string
		params map[string]any
		code   string
		msg    string
	}{
		{MethodKMSRecipient, map[string]any{"public_key": []byte("k")}, CodeForbiddenField, "public_key"},
		{MethodKMSRecipient, map[string]any{"nonce": []byte("n")}, CodeBadRequest, `unknown param "nonce"`},
		{MethodKMSOpen, map[string]any{"handle": h}, CodeBadRequest, `missing param "ciphertext"`},
		{MethodKMSOpen, map[string]any{"ciphertext": ct}, CodeBadRequest, "exactly one of handle and key"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "handle": h, "key": "rsa"}, CodeBadRequest, "exactly one of handle and key"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "handle": h[:15]}, CodeBadRequest, "handle: 15 bytes, want 16"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "handle": append(h, 0)}, CodeBadRequest, "handle: 17 bytes, limit 16"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "handle": []byte{}}, CodeBadRequest, "handle: 0 bytes"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "key": ""}, CodeBadRequest, "key"},
		{MethodKMSOpen, map[string]any{"ciphertext": []byte{}, "key": "rsa"}, CodeBadRequest, "ciphertext: empty"},
		{MethodKMSOpen, map[string]any{"ciphertext": make([]byte, MaxKMSCiphertextSize+1), "key": "rsa"}, CodeBadRequest, "6145 bytes, limit 6144"},
		{MethodKMSOpen, map[string]any{"ciphertext": "env", "key": "rsa"}, CodeBadRequest, "ciphertext"},
		{MethodKMSOpen, map[string]any{"ciphertext": ct, "key": "rsa", "label": []byte("l")}, CodeBadRequest, `unknown param "label"`},
	} {
		wantCode(t, callRaw(c, r.method, r.params), r.code, r.msg)
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
	// The largest ciphertext fits in a default request frame.
	if _, err := c.OpenKMS(context.Background(), KMSOpenRequest{Key: "rsa", Ciphertext: make([]byte, MaxKMSCiphertextSize)}); err != nil {
		t.Fatal(err)
	}
	// The client checks the same bounds before sending.
	for _, req := range []KMSOpenRequest{
		{Ciphertext: ct},
		{Handle: h, Key: "rsa", Ciphertext: ct},
		{Handle: h[:8], Ciphertext: ct},
		{Key: "rsa"},
		{Key: "rsa", Ciphertext: make([]byte, MaxKMSCiphertextSize+1)},
	} {
		if _, err := c.OpenKMS(context.Background(), req); err == nil || errors.As(err, new(*Error)) {
			t.Fatalf("OpenKMS(%d-byte handle, %q, %d bytes): %v, want a local error", len(req.Handle), req.Key, len(req.Ciphertext), err)
		}
	}
	if got := f.calls; !slices.Equal(got, []string{"kms_open"}) {
		t.Fatalf("service calls %v", got)
	}
}

// TestKMSEncodeMatchesFxamacker: the KMS params and results are written as fxamacker writes them,
// and the client reads back what the server writes.
func TestKMSEncodeMatchesFxamacker(t *testing.T) {
	h := bytes.Repeat([]byte{7}, KMSHandleSize)
	for _, v := range []encoder{
		kmsOpenParams{Handle: h, Ciphertext: []byte("c")},
		kmsOpenParams{Key: "rsa", Ciphertext: make([]byte, MaxKMSCiphertextSize)},
		&KMSRecipientResult{Document: make([]byte, 5000), PublicKey: make([]byte, 294), Handle: h},
		kmsOpenResult{Plaintext: []byte("p")},
		kmsOpenResult{},
	} {
		enc := v.appendCBOR(nil)
		want, err := encMode.Marshal(v)
		if err != nil || !bytes.Equal(enc, want) {
			t.Fatalf("%T: encoded %x, fxamacker %x (%v)", v, enc, want, err)
		}
	}
	var r KMSRecipientResult
	in := &KMSRecipientResult{Document: []byte("d"), PublicKey: []byte("p"), Handle: h}
	if err := r.decodeResult(in.appendCBOR(nil)); err != nil || !bytes.Equal(r.Handle, h) || string(r.Document) != "d" {
		t.Fatalf("decode: %+v, %v", r, err)
	}
	short := &KMSRecipientResult{Document: []byte("d"), PublicKey: []byte("p"), Handle: h[:4]}
	if err := new(KMSRecipientResult).decodeResult(short.appendCBOR(nil)); err == nil {
		t.Fatal("decoded a result with a 4-byte handle")
	}
}

// TestKMSDocExamples: the example frames of docs/protocol.md's kms_recipient and kms_open sections
// are what the client sends and what the server answers.
func TestKMSDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(doc), "### 5.9 `kms_recipient`")
	sec, _, _ = strings.Cut(sec, "\n### 5.11 ") // kms_recipient and kms_open: sections 5.9 and 5.10
	frames := docFrames(t, sec)
	if len(frames) != 3 {
		t.Fatalf("found %d example frames, want 3", len(frames))
	}
	h, _ := hex.DecodeString("5f1c0d8a4e2b9c7730d6a1f2e4b3c5d9")
	id := uint64(4)
	for i, want := range []encoder{
		wireRequest{V: Version, ID: 3, Method: MethodKMSRecipient, Params: noParams{}},
		wireRequest{V: Version, ID: 4, Method: MethodKMSOpen, Params: kmsOpenParams{Handle: h, Ciphertext: []byte{0x30, 0x80, 0x06, 0x09, 0x2a}}},
		response{V: Version, ID: &id, Error: ErrOpenFailed},
	} {
		if enc := want.appendCBOR(nil); !bytes.Equal(enc, frames[i]) {
			t.Fatalf("example %d: %x, want %x", i, frames[i], enc)
		}
	}
	// The documented request is answered as documented (the fake issued no such handle).
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	_, err = dialT(t, addr).OpenKMS(context.Background(), KMSOpenRequest{Handle: h, Ciphertext: []byte{0x30, 0x80, 0x06, 0x09, 0x2a}})
	var e *Error
	if !errors.As(err, &e) || *e != *ErrOpenFailed {
		t.Fatalf("%v", err)
	}
}
