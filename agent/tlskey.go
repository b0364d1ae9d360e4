package agent

import (
	"context"
	"log/slog"

	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// AttestTLSKey implements the local API's attest_tls_key: a document whose
// public_key is an in-enclave application's TLS key (an SPKI the protocol
// layer has checked with vsockrpc.CheckTLSKey), with the caller's nonce if
// any and no user_data. Only the local API has this method: the parent never
// chooses a document's public_key.
func (a *Agent) AttestTLSKey(ctx context.Context, req vsockrpc.TLSKeyRequest) (*vsockrpc.TLSKeyResult, error) {
	if err := vsockrpc.CheckTLSKey(req.PublicKey); err != nil { // the agent does not rely on its caller
		return nil, vsockrpc.Errorf(vsockrpc.CodeBadRequest, "public_key: %v", err)
	}
	if err := a.checkNonce(req.Nonce); err != nil {
		return nil, err
	}
	if a.log.Enabled(ctx, slog.LevelDebug) {
		a.log.Debug("attest_tls_key", "public_key_bytes", len(req.PublicKey), "nonce_bytes", len(req.Nonce))
	}
	var doc []byte
	err := a.withNSM(ctx, func(ctx context.Context) (err error) {
		doc, err = a.nsm.Attestation(ctx, nsm.AttestationRequest{Nonce: req.Nonce, PublicKey: req.PublicKey})
		return err
	})
	if err != nil {
		return nil, a.nsmError("attest_tls_key", err)
	}
	return &vsockrpc.TLSKeyResult{Document: doc}, nil
}
