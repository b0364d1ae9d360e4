// Package attestedtls is attested TLS for attestd: a Go server inside a
// Nitro enclave terminates TLS with a key that never leaves its process, and
// its clients check, in the handshake, that the key is bound by a fresh
// attestation document that verifies against the pinned root with the PCRs
// they require. The binding, the certificate extension, the
// /.well-known/attestation endpoint and the session binding are specified in
// docs/attested-tls.md; this package is one implementation of both sides.
//
// Server (inside the enclave): NewServer generates the TLS key in process and
// gets documents binding it through attestd's local API (attest_tls_key),
// renewing them so that no document served is older than
// ServerConfig.MaxDocumentAge. In self-signed mode every certificate carries
// its document in a non-critical id-pe-cmw extension and expires at most
// MaxCertLifetime after the document's timestamp; in WebPKI mode the
// application's own certificate is served and the document only from the
// endpoint. Server.Handler serves /.well-known/attestation.
//
// Client: NewClient takes the verifier's options (pinned root, a PCR policy
// that may not be empty or "any", debug rejected, maximum age) and gives a
// *tls.Config whose check runs in VerifyConnection, so resumed sessions are
// checked too, and an *http.Client on it. A certificate's verified document is
// cached until it would no longer pass, so a warm handshake costs a lookup.
// BindSession asks the server, on an open connection, for a document whose
// nonce commits to the TLS exporter of that very connection: a relay that
// terminates TLS with a stolen key has a different exporter on each side and
// fails it.
package attestedtls
