package agent

import (
	"context"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/vsockrpc"
)

// Open implements the local API's open: it opens what a relying party sealed
// to the agent's hpke key (an attestd-seal-v1 envelope) or rsa key (raw
// RSA-OAEP with req.OAEPHash). It makes no NSM call and logs nothing about
// the ciphertext. Every failure to open is vsockrpc.ErrOpenFailed: which check
// failed is never told (no padding or tag oracle).
func (a *Agent) Open(_ context.Context, req vsockrpc.OpenRequest) (*vsockrpc.OpenResult, error) {
	k, err := a.keys.Get(req.Key)
	if err != nil {
		return nil, vsockrpc.Errorf(vsockrpc.CodeUnknownKey, "no key %q (have %s, %s)", req.Key, keys.HPKE, keys.RSA)
	}
	var r vsockrpc.OpenResult
	switch req.Key {
	case keys.HPKE:
		r.Plaintext, r.AAD, err = k.OpenHPKE(req.Ciphertext)
	case keys.RSA:
		r.Plaintext, err = k.OpenRSA(req.OAEPHash, req.Ciphertext)
	default:
		return nil, vsockrpc.Errorf(vsockrpc.CodeUnknownKey, "key %q opens nothing", req.Key)
	}
	if err != nil {
		return nil, vsockrpc.ErrOpenFailed
	}
	if len(r.AAD) == 0 {
		r.AAD = nil
	}
	return &r, nil
}
