package attestation

import (
	"bytes"
	"time"
)

// Unverified is what ParseUnverified reads from a document: fields that a
// document's own requester needs, taken from a document NOT verified.
type Unverified struct {
	Timestamp time.Time // UTC, millisecond precision
	// PublicKey and Nonce are nil when the document carries null.
	PublicKey []byte
	Nonce     []byte
}

// ParseUnverified decodes doc as strictly as Verify does, but checks no
// signature, chain, time or policy. It is for the party that just asked
// attestd for the document (a server stamping a certificate with the
// document's timestamp), never for a relying party's decision: that is
// Verify's.
func ParseUnverified(doc []byte) (*Unverified, error) {
	var p parsed
	if err := parse(doc, &p); err != nil {
		return nil, err
	}
	u := &Unverified{Timestamp: time.UnixMilli(int64(p.timestamp)).UTC()}
	if p.publicKey != nil {
		u.PublicKey = bytes.Clone(p.publicKey)
	}
	if p.nonce != nil {
		u.Nonce = bytes.Clone(p.nonce)
	}
	return u, nil
}
