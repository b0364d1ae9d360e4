// Package attestation verifies AWS Nitro Enclaves attestation documents.
//
// A document is a COSE_Sign1 structure (ES384) whose payload names the
// enclave (module_id, PCRs, optional public_key, user_data and nonce) and
// carries the certificate chain that signed it. Verify decodes it with a
// strict hand-written CBOR decoder (one schema, no reflection, no allocation
// driven by the input), checks the chain against the pinned AWS Nitro
// Enclaves Root-G1 (or Options.Root) with an explicit walk that enforces the
// AWS certificate profile, checks the ES384 signature over the bytes
// received, then applies the caller's policy: PCR values, debug mode, nonce,
// freshness, public_key and user_data.
//
// The zero Options are the safe ones (embedded root, time now, debug
// rejected, 5 minute maximum age) except that a PCR policy must be chosen
// explicitly: Options.PCRs, or Options.AnyPCRs to accept any enclave image.
//
// Every rejection is an *Error naming the check that failed and wrapping that
// check's sentinel (ErrChain, ErrSignature, ErrDebug, ...). A Verifier adds a
// bounded cache of verified certificate chains, so that a document whose
// certificates were seen before costs one signature check.
//
// The package uses the standard library only, besides attestd's own strict
// CBOR reader (internal/strictcbor, itself standard library only).
package attestation
