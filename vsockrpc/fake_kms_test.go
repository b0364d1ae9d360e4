package vsockrpc

import (
	"bytes"
	"context"
	"encoding/binary"
)

// The fake's KMS methods: kms_recipient hands out numbered handles, kms_open "opens" a ciphertext
// by prefixing its first 64 bytes, once per handle, and with key "rsa" as often as asked.

func (f *fakeService) NewKMSRecipient(context.Context) (*KMSRecipientResult, error) {
	f.record("kms_recipient")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kmsHandles == nil {
		f.kmsHandles = map[string]bool{}
	}
	h := make([]byte, KMSHandleSize)
	binary.BigEndian.PutUint64(h[8:], uint64(len(f.kmsHandles)+1))
	f.kmsHandles[string(h)] = true
	return &KMSRecipientResult{Document: []byte("kmsdoc"), PublicKey: []byte("spki"), Handle: h}, nil
}

func (f *fakeService) OpenKMS(_ context.Context, req KMSOpenRequest) ([]byte, error) {
	f.record("kms_open")
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case req.Key == "rsa":
	case req.Key != "":
		return nil, Errorf(CodeUnknownKey, "no key %q", req.Key)
	case !f.kmsHandles[string(req.Handle)]:
		return nil, ErrOpenFailed
	default:
		f.kmsHandles[string(req.Handle)] = false
	}
	if bytes.Equal(req.Ciphertext, []byte("bad")) {
		return nil, ErrOpenFailed
	}
	return append([]byte("pt|"), req.Ciphertext[:min(len(req.Ciphertext), 64)]...), nil
}
