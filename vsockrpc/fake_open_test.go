package vsockrpc

import (
	"context"
	"sync"
	"testing"

	"github.com/attestd/attestd/keys"
)

// The fake opens with a real key set (generated once: RSA takes a while), so the open tests of
// this package seal and open for real.
var (
	fakeKeysOnce sync.Once
	fakeKeys     *keys.Set
	fakeKeysErr  error
)

func testKeys(t testing.TB) *keys.Set {
	t.Helper()
	fakeKeysOnce.Do(func() { fakeKeys, fakeKeysErr = keys.Generate(keys.Config{}) })
	if fakeKeysErr != nil {
		t.Fatal(fakeKeysErr)
	}
	return fakeKeys
}

func (f *fakeService) Open(_ context.Context, req OpenRequest) (*OpenResult, error) {
	f.record("open")
	fakeKeysOnce.Do(func() { fakeKeys, fakeKeysErr = keys.Generate(keys.Config{}) })
	if fakeKeysErr != nil {
		return nil, fakeKeysErr
	}
	k, err := fakeKeys.Get(req.Key)
	if err != nil {
		return nil, Errorf(CodeUnknownKey, "no key %q", req.Key)
	}
	var r OpenResult
	if req.Key == keys.HPKE {
		r.Plaintext, r.AAD, err = k.OpenHPKE(req.Ciphertext)
	} else {
		r.Plaintext, err = k.OpenRSA(req.OAEPHash, req.Ciphertext)
	}
	if err != nil {
		return nil, ErrOpenFailed
	}
	return &r, nil
}

// openHook is the fake with Open answered by a function, for results the real keys cannot give.
type openHook struct {
	*fakeService
	open func(OpenRequest) (*OpenResult, error)
}

func (h openHook) Open(_ context.Context, req OpenRequest) (*OpenResult, error) { return h.open(req) }
