package attestedtls

import (
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/strictcbor"
)

// OIDCMW is id-pe-cmw (draft-ietf-rats-msg-wrap): the certificate extension
// that carries a conceptual message wrapper, here the attestation document.
var OIDCMW = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 35}

// MediaType names the attestation document (an AWS Nitro Enclaves COSE_Sign1
// document) in the CMW record. It is attestd's own, unregistered: no media
// type for the Nitro document exists (docs/attested-tls.md).
const MediaType = "application/vnd.attestd.aws-nitro-attestation-document"

// EncodeCMW returns the value of the id-pe-cmw extension carrying doc: the
// CMW's CBOR choice, a DER OCTET STRING holding the CBOR record
// [MediaType, doc].
func EncodeCMW(doc []byte) ([]byte, error) {
	if len(doc) == 0 || len(doc) > attestation.MaxDocumentSize {
		return nil, fmt.Errorf("attestedtls: document of %d bytes", len(doc))
	}
	b := strictcbor.AppendHead(nil, strictcbor.Array, 2)
	b = strictcbor.AppendText(b, MediaType)
	b = strictcbor.AppendBytes(b, doc)
	return asn1.Marshal(b)
}

// DecodeCMW reads the value of an id-pe-cmw extension strictly: exactly one
// DER OCTET STRING holding exactly the CBOR array [MediaType, document], the
// document non-empty and at most attestation.MaxDocumentSize bytes. The
// document aliases ext.
func DecodeCMW(ext []byte) ([]byte, error) {
	var rec []byte
	rest, err := asn1.Unmarshal(ext, &rec)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: not a DER OCTET STRING (the CBOR form of a CMW): %v", ErrEvidence, err)
	case len(rest) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the OCTET STRING", ErrEvidence, len(rest))
	}
	r := strictcbor.NewReader(rec)
	n, err := r.Expect(strictcbor.Array)
	if err != nil {
		return nil, fmt.Errorf("%w: CMW record: %v", ErrEvidence, err)
	}
	if n != 2 {
		return nil, fmt.Errorf("%w: CMW record of %d items, want [type, value]", ErrEvidence, n)
	}
	typ, err := r.Text()
	if err != nil {
		return nil, fmt.Errorf("%w: CMW type: %v", ErrEvidence, err)
	}
	if string(typ) != MediaType {
		return nil, fmt.Errorf("%w: CMW type %.64q, want %q", ErrEvidence, typ, MediaType)
	}
	doc, err := r.Bytes()
	if err == nil {
		err = r.End()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: CMW value: %v", ErrEvidence, err)
	}
	if len(doc) == 0 || len(doc) > attestation.MaxDocumentSize {
		return nil, fmt.Errorf("%w: document of %d bytes", ErrEvidence, len(doc))
	}
	return doc, nil
}

// Errors of the client's checks. Each failure wraps exactly one of these, and
// a failed document verification also wraps the attestation package's
// sentinel (attestation.ErrPCRPolicy, ErrDebug, ErrFreshness, ...).
var (
	// ErrCertificate: the server's certificate is unusable: not self-signed
	// (self-signed mode) or not chained to a trusted root (WebPKI mode),
	// outside its validity, not for the server name, or with an unhandled
	// critical extension.
	ErrCertificate = errors.New("attestedtls: certificate")
	// ErrNoEvidence: a self-signed certificate without the id-pe-cmw
	// extension, or (WebPKI) no document from the endpoint.
	ErrNoEvidence = errors.New("attestedtls: no attestation evidence")
	// ErrCriticalExtension: the id-pe-cmw extension is marked critical, which
	// standard verifiers (Go, OpenSSL) refuse; attestd never marks it so.
	ErrCriticalExtension = errors.New("attestedtls: id-pe-cmw extension marked critical")
	// ErrEvidence: the evidence does not decode (extension value, CMW record,
	// endpoint response).
	ErrEvidence = errors.New("attestedtls: malformed evidence")
	// ErrDocument: the document does not verify; the attestation sentinel
	// says why.
	ErrDocument = errors.New("attestedtls: attestation document rejected")
	// ErrKeyBinding: the document's public_key is not the certificate's
	// SubjectPublicKeyInfo.
	ErrKeyBinding = errors.New("attestedtls: the document binds another key")
	// ErrSessionBinding: the session-bound document does not commit to this
	// connection's TLS exporter (a relay), or the binding could not be done.
	ErrSessionBinding = errors.New("attestedtls: session binding failed")
)
