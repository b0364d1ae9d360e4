package attestation

import (
	"bytes"
	"time"
)

// Unverified is an attestation document decoded as strictly as Verify decodes
// it, and NOT verified: no certificate, signature, time or policy was
// checked. Anyone can write such a document. It is for looking inside a
// document (why was it rejected? which certificates does it carry?), never
// for deciding whether to trust it.
type Unverified struct {
	ModuleID  string
	Timestamp time.Time // UTC, millisecond precision
	Digest    string    // always "SHA384": decoding rejects any other
	// PCRs holds every PCR the document reports, 48 bytes each.
	PCRs map[int][]byte
	// Certificate is the leaf certificate (DER), CABundle the bundle as
	// carried, root first (DER). Neither was parsed or checked.
	Certificate []byte
	CABundle    [][]byte
	// PublicKey, UserData and Nonce are nil when the document carries null.
	PublicKey []byte
	UserData  []byte
	Nonce     []byte
	// Signature is the COSE signature (96 bytes, r || s), not checked.
	Signature []byte
}

// Inspect decodes doc (COSE_Sign1 bytes, untagged or tag 18) with the same
// strict decoder as Verify and returns its contents without verifying
// anything. A decoding error is an *Error like Verify's (ErrInput, ErrCBOR,
// ErrEnvelope, ErrAlgorithm, ErrPayload, ErrDigest, ErrPCRs, ErrSignature for
// a signature that is not 96 bytes). The result does not alias doc.
func Inspect(doc []byte) (*Unverified, error) {
	var p parsed
	if err := parse(doc, &p); err != nil {
		return nil, err
	}
	u := &Unverified{
		ModuleID:    string(p.moduleID),
		Timestamp:   time.UnixMilli(int64(p.timestamp)).UTC(),
		Digest:      "SHA384",
		PCRs:        make(map[int][]byte, maxPCRs),
		Certificate: bytes.Clone(p.cert),
		PublicKey:   clone(p.publicKey),
		UserData:    clone(p.userData),
		Nonce:       clone(p.nonce),
		Signature:   bytes.Clone(p.signature),
	}
	for i := range p.nCA {
		u.CABundle = append(u.CABundle, bytes.Clone(p.cabundle[i]))
	}
	for i := range maxPCRs {
		if p.pcrs[i] != nil {
			u.PCRs[i] = bytes.Clone(p.pcrs[i])
		}
	}
	return u, nil
}
