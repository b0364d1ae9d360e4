package vsockrpc

import "context"

// Version is the protocol version this package speaks; every request and response carries it as "v".
const Version = 1

// Protocol bounds on request fields. They hold whatever the agent is configured to, so that no field
// can exceed what public verifiers accept (nonce and user_data <= 512 bytes).
const (
	MaxNonceSize      = 512  // bytes of "nonce"
	MaxUserDataSize   = 512  // bytes of "user_data"
	MaxKeyNameSize    = 64   // bytes of "key"
	MaxRandomSize     = 4096 // largest "n" of random
	MaxExtendDataSize = 1024 // bytes of extend_pcr "data"
	MinUserPCR        = 16   // lowest PCR index the local API may extend or lock
	MaxUserPCR        = 31   // highest PCR index the local API may extend or lock
)

// ParentService answers the parent API: what the untrusted parent instance may ask for.
type ParentService interface {
	// Attest returns a document binding the agent's key req.Key and the caller's nonce.
	Attest(ctx context.Context, req AttestRequest) (*AttestResult, error)
	// Describe reports what the agent is and holds (never private material). It must not wait on
	// the NSM: the Server answers it outside the slots of NSM-bound requests.
	Describe(ctx context.Context) (*Description, error)
	// Health reports whether the agent can serve and attest. It must not wait on the NSM either.
	Health(ctx context.Context) (*Health, error)
}

// LocalService answers the local API, served only inside the enclave: the parent API plus the
// operations applications running next to the agent need.
type LocalService interface {
	ParentService
	// SetUserData sets the user_data the agent puts in later documents; empty (nil) clears it. It
	// must not wait on the NSM (like Describe and Health).
	SetUserData(ctx context.Context, data []byte) error
	// AttestLocal is Attest with an application-chosen user_data.
	AttestLocal(ctx context.Context, req LocalAttestRequest) (*AttestResult, error)
	// Random returns exactly n bytes from the NSM (1 <= n <= MaxRandomSize).
	Random(ctx context.Context, n int) ([]byte, error)
	// ExtendPCR extends PCR index (MinUserPCR..MaxUserPCR) with data and returns its new value.
	ExtendPCR(ctx context.Context, index uint16, data []byte) ([]byte, error)
	// LockPCR locks PCR index (MinUserPCR..MaxUserPCR).
	LockPCR(ctx context.Context, index uint16) error
	Opener         // open (open.go)
	KMSRecipient   // kms_recipient, kms_open (kms.go)
	TLSKeyAttester // attest_tls_key (tlskey.go)
}

// AttestRequest is the parent's attest request, already checked against the protocol bounds.
type AttestRequest struct {
	// Nonce is the caller's nonce, 1..MaxNonceSize bytes, or nil when the caller sent none (or an
	// empty one): the agent decides whether that is allowed (CodeNonceRequired).
	Nonce []byte
	// Key names the agent key to bind, for example "hpke" or "rsa"; 1..MaxKeyNameSize bytes. The
	// agent answers CodeUnknownKey for names it does not hold.
	Key string
}

// LocalAttestRequest is the local API's attest request.
type LocalAttestRequest struct {
	AttestRequest
	// UserData is the application's user_data for this document, at most MaxUserDataSize bytes;
	// nil when not sent (the agent then uses the value set by SetUserData, if any).
	UserData []byte
}

// AttestResult is the result of attest.
type AttestResult struct {
	// Document is the COSE_Sign1 attestation document from the NSM.
	Document []byte `cbor:"document"`
	// PublicKey is the full public key named by Key. The document binds it whole or by digest,
	// depending on the key (docs/protocol.md, "Key binding"); a client checks the binding.
	PublicKey []byte `cbor:"public_key"`
	// Key is the name of the bound key.
	Key string `cbor:"key"`
}

// Description is the result of describe.
type Description struct {
	AgentVersion string `cbor:"agent_version"`
	ModuleID     string `cbor:"module_id"`
	// Keys lists the agent's keys (public parts only).
	Keys []KeyInfo `cbor:"keys"`
	// Entropy reports how the kernel's entropy pool was seeded from the NSM.
	Entropy Entropy `cbor:"entropy"`
	// PCRs maps PCR index to its current value.
	PCRs map[uint16][]byte `cbor:"pcrs"`
	// Nonce states the nonce bounds the agent enforces on attest.
	Nonce NonceLimits `cbor:"nonce"`
	// Platform reports what the start-up gates read and which of them were relaxed.
	Platform Platform `cbor:"platform"`
}

// KeyInfo describes one agent key.
type KeyInfo struct {
	// Name is what attest's "key" selects, for example "hpke" or "rsa".
	Name string `cbor:"name"`
	// Algorithm names the key's algorithm, for example "MLKEM768-X25519" or "RSA-2048".
	Algorithm string `cbor:"algorithm"`
	// PublicKey is the encoded public key (the same bytes attest returns as public_key).
	PublicKey []byte `cbor:"public_key"`
	// Binding says how a document binds the key (docs/protocol.md, "Key binding").
	Binding string `cbor:"binding"`
}

// Entropy is the agent's entropy status.
type Entropy struct {
	// Source is the kernel's active hwrng (for example "nsm-hwrng") or what the agent seeded from.
	Source string `cbor:"source"`
	// SeededBytes counts the NSM bytes the agent added to the kernel pool so far.
	SeededBytes uint64 `cbor:"seeded_bytes"`
	// KernelPool states whether the agent could feed the kernel pool (see docs/protocol.md).
	KernelPool string `cbor:"kernel_pool"`
	// LastReseed is the Unix time (seconds) of the last reseed; 0 if none.
	LastReseed int64 `cbor:"last_reseed"`
}

// Platform is what the agent's start-up gates found about the platform, and which gates were relaxed.
type Platform struct {
	// KernelRelease is the kernel release the kernel gate read (as uname -r prints it); "" if it
	// could not be read.
	KernelRelease string `cbor:"kernel_release"`
	// ClockSource is the active clock source the clock-source gate read, for example "kvm-clock";
	// "" if it could not be read.
	ClockSource string `cbor:"clock_source"`
	// Relaxed names, in start-up order, the gates that were not enforced because their
	// --insecure-skip-NAME-check flag was set (GateKernel, GateClockSource, GateDebug, GateHWRNG),
	// whether or not they would have passed; empty when every gate was enforced. Any entry means
	// the agent runs in a development configuration.
	Relaxed []string `cbor:"relaxed"`
}

// Names of the start-up gates in Platform.Relaxed. attestd relaxes gate NAME with its
// --insecure-skip-NAME-check flag.
const (
	GateKernel      = "kernel"      // kernel release at least 5.17.12
	GateClockSource = "clocksource" // the hypervisor's clock source
	GateDebug       = "debug"       // PCR0 locked and not zero: not a debug-mode enclave
	GateHWRNG       = "hwrng"       // the kernel's active hwrng is the NSM's
)

// NonceLimits states the nonce bounds of attest.
type NonceLimits struct {
	Min      uint64 `cbor:"min"`
	Max      uint64 `cbor:"max"`
	Required bool   `cbor:"required"`
}

// Health statuses.
const (
	// HealthOK: the agent serves and, as far as it knows, can attest (its last attestation, if
	// any, succeeded).
	HealthOK = "ok"
	// HealthNSMFailing: the NSM failed the agent's last attestation (a failure since the last
	// success): the agent serves, but documents are not to be expected.
	HealthNSMFailing = "nsm_failing"
)

// Health is the result of health.
type Health struct {
	// Status is HealthOK when the agent can serve and attest; any other value (HealthNSMFailing)
	// means it cannot.
	Status string `cbor:"status"`
	// Attest is the outcome of the agent's recent attestations: what Status is decided from.
	Attest AttestHealth `cbor:"attest"`
}

// AttestHealth counts the NSM's answers to the agent's attestation requests since it started.
// Requests refused before the NSM (a bad nonce, an unknown key, no free slot) are not counted.
type AttestHealth struct {
	// Succeeded and Failed count the attestations the NSM completed and failed.
	Succeeded uint64 `cbor:"succeeded"`
	Failed    uint64 `cbor:"failed"`
	// ConsecutiveFailures counts the failures since the last success; 0 after a success.
	ConsecutiveFailures uint64 `cbor:"consecutive_failures"`
	// LastSuccess and LastFailure are Unix times (seconds); 0 if none.
	LastSuccess int64 `cbor:"last_success"`
	LastFailure int64 `cbor:"last_failure"`
	// LastError is the last failure's error; "" if none.
	LastError string `cbor:"last_error"`
}
