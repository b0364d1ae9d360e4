package attestation

import (
	"errors"
	"fmt"
)

// Sentinel errors, one per check. Every error returned by Verify is an *Error
// that wraps exactly one of them, so callers and tests can tell why a document
// was rejected: errors.Is(err, attestation.ErrChain).
var (
	// ErrOptions: the Options are invalid (bad PCR policy values, conflicting
	// settings, unusable root). Nothing about the document was checked.
	ErrOptions = errors.New("options")
	// ErrNoPCRPolicy: Options has neither PCRs nor AnyPCRs. Not checking PCRs
	// must be an explicit choice, never the default of a nil map.
	ErrNoPCRPolicy = errors.New("no-pcr-policy")

	// ErrInput: the document is empty or larger than MaxDocumentSize.
	ErrInput = errors.New("input")
	// ErrCBOR: the bytes are not strict CBOR: truncated, reserved or
	// non-minimal encodings, indefinite lengths outside the payload's top-level
	// map, duplicate map keys, invalid UTF-8 or trailing bytes at any level.
	ErrCBOR = errors.New("cbor")
	// ErrEnvelope: not a COSE_Sign1 structure: not an array of four, a tag
	// other than a single 18, wrongly typed members, a non-empty unprotected
	// header.
	ErrEnvelope = errors.New("envelope")
	// ErrAlgorithm: the protected header is not exactly {1: -35} (ES384).
	ErrAlgorithm = errors.New("algorithm")
	// ErrPayload: the payload is not an attestation document: not a map,
	// mandatory field missing or null, unknown field, wrong type or size.
	ErrPayload = errors.New("payload")
	// ErrDigest: the digest field is not "SHA384".
	ErrDigest = errors.New("digest")
	// ErrPCRs: the pcrs map is malformed: index outside 0..31, value not 48
	// bytes, too few or too many entries, PCR0/1/2 missing.
	ErrPCRs = errors.New("pcrs")
	// ErrCertificate: a certificate does not parse or does not fit the AWS
	// profile (ECDSA P-384 keys, ecdsa-with-SHA384, CA flags and key usages,
	// no unhandled critical extension).
	ErrCertificate = errors.New("certificate")
	// ErrChain: the chain does not lead from the leaf through cabundle[1:] to
	// the pinned root: cabundle[0] differs from the root, issuer/subject
	// mismatch, bad certificate signature, path length exceeded.
	ErrChain = errors.New("chain")
	// ErrValidity: a certificate (root included) is expired or not yet valid
	// at the verification time.
	ErrValidity = errors.New("validity")
	// ErrTimestamp: the document timestamp lies outside the leaf certificate's
	// validity window.
	ErrTimestamp = errors.New("timestamp")
	// ErrSignature: the COSE signature is not 96 bytes, r or s is out of
	// range, or the ES384 signature does not verify with the leaf key.
	ErrSignature = errors.New("signature")
	// ErrFreshness: the document is older than MaxAge or its timestamp is
	// further in the future than FutureSkew.
	ErrFreshness = errors.New("freshness")
	// ErrDebug: the enclave runs in debug mode (PCR0, PCR1 and PCR2 all zero)
	// and AllowDebug is not set.
	ErrDebug = errors.New("debug")
	// ErrPCRPolicy: a PCR named by the policy is absent or has none of the
	// allowed values.
	ErrPCRPolicy = errors.New("pcr-policy")
	// ErrNonce: the nonce is absent or differs from the expected one.
	ErrNonce = errors.New("nonce")
	// ErrPublicKey: public_key is absent or differs from the expected one.
	ErrPublicKey = errors.New("public-key")
	// ErrUserData: user_data is absent or differs from the expected one.
	ErrUserData = errors.New("user-data")
)

// Error is the error Verify returns: the name of the failed check and why.
// Unwrap gives the check's sentinel (ErrSignature, ErrChain, ...).
type Error struct {
	// Check names the failed check; it equals the sentinel's text.
	Check string
	// Reason says what exactly failed.
	Reason string
	kind   error
}

func (e *Error) Error() string { return e.Check + " check failed: " + e.Reason }

// Unwrap returns the sentinel of the failed check.
func (e *Error) Unwrap() error { return e.kind }

// fail builds the *Error for the check identified by kind.
func fail(kind error, format string, args ...any) *Error {
	return &Error{Check: kind.Error(), Reason: fmt.Sprintf(format, args...), kind: kind}
}
