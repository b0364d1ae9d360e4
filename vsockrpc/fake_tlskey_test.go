package vsockrpc

import "context"

// AttestTLSKey answers attest_tls_key with a fake document naming its inputs.
func (f *fakeService) AttestTLSKey(_ context.Context, req TLSKeyRequest) (*TLSKeyResult, error) {
	f.record("attest_tls_key")
	doc := append([]byte("tls|"), req.PublicKey...)
	return &TLSKeyResult{Document: append(append(doc, '|'), req.Nonce...)}, nil
}
