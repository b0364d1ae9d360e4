package vsockrpc

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// callRaw sends a request with arbitrary params through the client.
func callRaw(c *Client, method string, params map[string]any) error {
	return c.call(context.Background(), method, anyValue{params}, anyResult{})
}

// anyResult accepts any well-formed result map.
type anyResult struct{}

func (anyResult) decodeResult(raw []byte) error {
	_, err := readFields(raw, nil, maxResponsePairs, maxResponseDepth)
	return err
}

func wantCode(t *testing.T, err error, code, contains string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, contains) {
		t.Fatalf("got %v, want %s containing %q", err, code, contains)
	}
}

// TestParentCannotSetKeyOrUserData: on the parent API, attest with public_key or user_data is
// refused with forbidden_field (whatever else the request holds) and the service is never called.
func TestParentCannotSetKeyOrUserData(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, ParentAPI(f), Limits{})
	c := dialT(t, addr)
	for _, params := range []map[string]any{
		{"nonce": []byte("n"), "key": "rsa", "public_key": []byte("attacker key")},
		{"nonce": []byte("n"), "key": "rsa", "user_data": []byte("attacker data")},
		{"public_key": []byte{}},                    // even empty, even without the required fields
		{"key": "rsa", "user_data": nil, "zzz": 1},  // forbidden wins over unknown and null
		{"nonce": "bad", "key": 5, "public_key": 1}, // and over bad types
	} {
		wantCode(t, callRaw(c, MethodAttest, params), CodeForbiddenField, "cannot be set")
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
	// The same request without the field is served.
	if _, err := c.Attest(context.Background(), []byte("n"), "rsa"); err != nil {
		t.Fatal(err)
	}
}

// TestLocalCannotSetPublicKey: the local API accepts user_data but never public_key.
func TestLocalCannotSetPublicKey(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	wantCode(t, callRaw(c, MethodAttest, map[string]any{"nonce": []byte("n"), "key": "rsa", "public_key": []byte("k")}), CodeForbiddenField, "public_key")
	wantCode(t, callRaw(c, MethodSetUserData, map[string]any{"user_data": []byte("u"), "public_key": []byte("k")}), CodeForbiddenField, "public_key")
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestParentAPIMethods: the parent API has exactly attest, describe and health, even when the
// service also implements the local API.
func TestParentAPIMethods(t *testing.T) {
	f := newFake() // implements LocalService too
	_, addr := startUnix(t, ParentAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := context.Background()
	if res, err := c.Attest(ctx, []byte("n"), "hpke"); err != nil || string(res.Document) != "doc|hpke|n|" {
		t.Fatalf("Attest: %v", err)
	}
	if _, err := c.Describe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	for _, call := range []func() error{
		func() error { return c.SetUserData(ctx, []byte("u")) },
		func() error { _, err := c.Random(ctx, 1); return err },
		func() error { _, err := c.ExtendPCR(ctx, 16, []byte("d")); return err },
		func() error { return c.LockPCR(ctx, 16) },
	} {
		wantCode(t, call(), CodeUnknownMethod, "no method")
	}
	if got, want := f.calls, []string{"attest", "describe", "health"}; !slices.Equal(got, want) {
		t.Fatalf("service calls %v, want %v", got, want)
	}
}

// TestParamValidation covers the protocol bounds checked before the service is called, and that
// the service's own errors (nonce_required, unknown_key) reach the client typed.
func TestParamValidation(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := context.Background()

	// Bounds enforced by the protocol: the service never sees these.
	rejected := []struct {
		method string
		params map[string]any
		code   string
		msg    string
	}{
		{"attest", map[string]any{"key": "rsa", "nonce": make([]byte, MaxNonceSize+1)}, CodeNonceTooLarge, "513 bytes, limit 512"},
		{"attest", map[string]any{"nonce": []byte("n")}, CodeBadRequest, `missing param "key"`},
		{"attest", map[string]any{"nonce": []byte("n"), "key": ""}, CodeBadRequest, "key"},
		{"attest", map[string]any{"nonce": []byte("n"), "key": strings.Repeat("k", MaxKeyNameSize+1)}, CodeBadRequest, "key"},
		{"attest", map[string]any{"nonce": []byte("n"), "key": "rsa", "challenge": []byte("c")}, CodeBadRequest, `unknown param "challenge"`},
		{"attest", map[string]any{"nonce": []byte("n"), "key": "rsa", "user_data": make([]byte, MaxUserDataSize+1)}, CodeBadRequest, "user_data"},
		{"set_user_data", map[string]any{}, CodeBadRequest, `missing param "user_data"`},
		{"set_user_data", map[string]any{"user_data": nil}, CodeBadRequest, "user_data"},
		{"set_user_data", map[string]any{"user_data": make([]byte, MaxUserDataSize+1)}, CodeBadRequest, "user_data"},
		{"random", map[string]any{"n": 0}, CodeBadRequest, "n: 0 not in 1..4096"},
		{"random", map[string]any{"n": MaxRandomSize + 1}, CodeBadRequest, "not in 1..4096"},
		{"random", map[string]any{}, CodeBadRequest, `missing param "n"`},
		{"extend_pcr", map[string]any{"index": 15, "data": []byte("d")}, CodeBadRequest, "index: 15 not in 16..31"},
		{"extend_pcr", map[string]any{"index": 32, "data": []byte("d")}, CodeBadRequest, "index: 32"},
		{"extend_pcr", map[string]any{"index": uint64(1) << 40, "data": []byte("d")}, CodeBadRequest, "index"},
		{"extend_pcr", map[string]any{"index": 16, "data": []byte{}}, CodeBadRequest, "data: empty"},
		{"extend_pcr", map[string]any{"index": 16}, CodeBadRequest, `missing param "data"`},
		{"extend_pcr", map[string]any{"index": 16, "data": make([]byte, MaxExtendDataSize+1)}, CodeBadRequest, "data"},
		{"lock_pcr", map[string]any{"index": 0}, CodeBadRequest, "index: 0"},
		{"lock_pcr", map[string]any{"index": 16, "data": []byte("d")}, CodeBadRequest, `unknown param "data"`},
	}
	for _, r := range rejected {
		wantCode(t, callRaw(c, r.method, r.params), r.code, r.msg)
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called for rejected requests: %v", f.calls)
	}

	// At the bounds: accepted and passed through intact.
	var got LocalAttestRequest
	f.attestHook = func(_ context.Context, req LocalAttestRequest) (*AttestResult, error) {
		got = req
		return &AttestResult{Document: []byte("d"), PublicKey: []byte("p"), Key: req.Key}, nil
	}
	nonce := bytes.Repeat([]byte{0xaa}, MaxNonceSize)
	ud := bytes.Repeat([]byte{0xbb}, MaxUserDataSize)
	key := strings.Repeat("k", MaxKeyNameSize)
	if _, err := c.AttestLocal(ctx, LocalAttestRequest{AttestRequest: AttestRequest{Nonce: nonce, Key: key}, UserData: ud}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Nonce, nonce) || got.Key != key || !bytes.Equal(got.UserData, ud) {
		t.Fatalf("service got %+v", got)
	}
	// An empty nonce reaches the service as nil (no nonce): the agent decides.
	if err := callRaw(c, MethodAttest, map[string]any{"nonce": []byte{}, "key": "rsa"}); err != nil {
		t.Fatal(err)
	}
	if got.Nonce != nil || got.UserData != nil {
		t.Fatalf("empty nonce reached the service as %#v, user_data %#v", got.Nonce, got.UserData)
	}
	if _, err := c.ExtendPCR(ctx, MaxUserPCR, make([]byte, MaxExtendDataSize)); err != nil {
		t.Fatal(err)
	}
	if err := c.LockPCR(ctx, MinUserPCR); err != nil {
		t.Fatal(err)
	}

	// Errors decided by the service come back typed.
	f.attestHook = nil
	_, err := c.Attest(ctx, nil, "rsa")
	wantCode(t, err, CodeNonceRequired, "nonce is required")
	if !errors.Is(err, &Error{Code: CodeNonceRequired}) {
		t.Fatalf("errors.Is(%v, nonce_required) = false", err)
	}
	_, err = c.Attest(ctx, []byte("n"), "ecdsa")
	wantCode(t, err, CodeUnknownKey, `"ecdsa"`)
}

// badService returns results that break the protocol's promises; the server answers internal.
type badService struct{ fakeService }

func (b *badService) Random(_ context.Context, n int) ([]byte, error) { return make([]byte, n-1), nil }
func (b *badService) Health(context.Context) (*Health, error)         { return nil, nil }
func (b *badService) Describe(context.Context) (*Description, error) {
	return nil, errors.New("secret detail: /dev/nsm exploded")
}
func (b *badService) AttestLocal(context.Context, LocalAttestRequest) (*AttestResult, error) {
	return &AttestResult{Document: []byte("d")}, nil // no public key
}
func (b *badService) ExtendPCR(context.Context, uint16, []byte) ([]byte, error) {
	return nil, &Error{Code: "", Message: "no code"}
}

func TestServiceMisbehaviour(t *testing.T) {
	b := &badService{fakeService: *newFake()}
	_, addr := startUnix(t, LocalAPI(b), Limits{})
	c := dialT(t, addr)
	ctx := context.Background()
	_, err := c.Random(ctx, 10)
	wantCode(t, err, CodeInternal, "internal error")
	_, err = c.Health(ctx)
	wantCode(t, err, CodeInternal, "internal error")
	_, err = c.Describe(ctx)
	wantCode(t, err, CodeInternal, "internal error")
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("internal detail leaked: %v", err)
	}
	_, err = c.Attest(ctx, []byte("n"), "rsa")
	wantCode(t, err, CodeInternal, "internal error")
	_, err = c.ExtendPCR(ctx, 16, []byte("d"))
	wantCode(t, err, CodeInternal, "internal error")
}

func TestErrorType(t *testing.T) {
	e := &Error{Code: CodeNSMError, Message: "attestation failed", NSMCode: "InternalError"}
	if got, want := e.Error(), "vsockrpc: nsm_error (InternalError): attestation failed"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	wrapped := errors.Join(errors.New("context"), e)
	for target, want := range map[*Error]bool{
		{Code: CodeNSMError}:                           true,
		{Code: CodeNSMError, NSMCode: "InternalError"}: true,
		{Code: CodeNSMError, NSMCode: "InvalidIndex"}:  false,
		{Code: CodeBusy}:                               false,
		{Code: CodeNSMError, Message: "other"}:         false,
	} {
		if got := errors.Is(wrapped, target); got != want {
			t.Errorf("errors.Is(%v, %v) = %v", e, target, got)
		}
	}
	if got := truncate("héllo", 2); got != "h" {
		t.Fatalf("truncate split a rune: %q", got)
	}
	if got := truncate("a\xffb", 10); got != "a\uFFFDb" {
		t.Fatalf("truncate kept invalid UTF-8: %q", got)
	}
}

// TestLongErrorMessage: a service's message is bounded.
func TestLongErrorMessage(t *testing.T) {
	f := newFake()
	f.attestHook = func(context.Context, LocalAttestRequest) (*AttestResult, error) {
		return nil, Errorf(CodeUnavailable, "%s", strings.Repeat("x", 100<<10))
	}
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	_, err := dialT(t, addr).Attest(context.Background(), []byte("n"), "rsa")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnavailable || len(e.Message) != maxMessageLen {
		t.Fatalf("got %v", err)
	}
}
