package attestation

import (
	"bytes"
	"errors"
	"testing"
)

// TestInspect reads the timestamp, public_key and nonce of a
// document without a trust anchor, keeps null apart from present, and is as
// strict as Verify about the bytes.
func TestInspect(t *testing.T) {
	s := baseSpec(t)
	u, err := Inspect(s.build(t))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Timestamp.Equal(s.timestamp.Truncate(1e6)) || !bytes.Equal(u.PublicKey, s.publicKey) || !bytes.Equal(u.Nonce, s.nonce) {
		t.Fatalf("got %+v", u)
	}
	s.publicKey, s.nonce = nil, nil
	if u, err = Inspect(s.build(t)); err != nil || u.PublicKey != nil || u.Nonce != nil {
		t.Fatalf("null fields: %+v, %v", u, err)
	}
	if _, err := Inspect(append(s.build(t), 0)); !errors.Is(err, ErrCBOR) {
		t.Fatalf("trailing byte: %v", err)
	}
}
