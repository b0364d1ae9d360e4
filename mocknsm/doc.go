// Package mocknsm is a software Nitro Secure Module: encoded request bytes in, encoded response bytes out, with
// the NSM's semantics and a mock AWS-shaped PKI that signs real attestation documents. It is the core of the mock
// NSM device (mocknsm/fusedev, cmd/nsm-mock) and of attestd's "--nsm mock:DIR"; it never runs in production.
//
// # Semantics (nitro-specs §4.5, QEMU's NSM model for the error codes)
//
//   - 32 SHA-384 PCRs. At boot 0..15 are locked and hold their boot values (Config: PCR0/1/2/3/4/8; the others
//     zero); 16..31 are zero and unlocked.
//   - ExtendPCR: new = SHA-384(old || data); a locked PCR is ReadOnlyIndex.
//   - LockPCR: locks one PCR; an already locked one is ReadOnlyIndex. LockPCRs{range}: locks [0, range).
//   - An index >= 32 (a range > 32 for LockPCRs) is InvalidIndex.
//   - DescribeNSM: version 1.0.0, the module id, max_pcrs 32, the locked PCRs, digest SHA384.
//   - GetRandom: 256 random bytes.
//   - Attestation: a COSE_Sign1 document shaped exactly like AWS's (see below).
//   - A request over 4096 bytes fails the ioctl with EMSGSIZE, as the driver does; there is no per-field limit.
//   - Malformed requests (QEMU's model where it has one): InvalidOperation when the request cannot be identified
//     (not well-formed CBOR, trailing bytes, a CBOR tag, not a text or a one-entry map, an unknown variant, a unit
//     variant in map form or a struct variant as bare text); InvalidArgument when a known request has bad fields
//     (body not a map, a duplicate, unknown or missing field, index not a uint16, data not a byte string). The
//     real NSM (serde) ignores unknown fields; the mock rejects them so that client typos show up. Attestation
//     fields may be absent (as with serde), null or a byte string.
//
// Responses are the exact serde_cbor forms (nitro-specs §4.4): e.g. {"Error": "InvalidIndex"} and the bare texts
// "LockPCR" / "LockPCRs".
//
// # Attestation documents
//
// An untagged COSE_Sign1 [h'a1013822', {}, payload, r||s (96 bytes)], ES384 over the Sig_structure with an
// empty external_aad. The payload is a definite map of the nine keys in AWS's order (module_id, digest,
// timestamp, pcrs, certificate, cabundle, public_key, user_data, nonce): timestamp in ms, pcrs = every locked PCR
// (definite map, uint keys, ascending), cabundle = [root, regional, zonal, instance], absent optional fields as
// null and present empty ones as an empty byte string (0x40).
//
// # PKI and state directory
//
// Init(dir, cfg) creates: root.pem (the mock root, CN mock.nitro-enclaves, O attestd, valid 30 years: the only
// file a verifier needs; nothing trusts it unless told to), regional/zonal/instance .pem certificates (pathlen
// 2/1/0, valid 20 days / 6 days / 1 day), the four CA keys root.key ... instance.key (PKCS#8 PEM, mode 0600) and
// config.json (module_id, region, debug, the six boot PCRs in hex). All keys are ECDSA P-384, all signatures
// ecdsa-with-SHA384, names and extensions shaped like AWS's chain (nitro-specs §3.4). The leaf is generated in
// memory, valid 10803 s like AWS's, reused across documents and re-issued when less than an hour is left. A CA
// certificate with less than 4 hours left is re-issued in memory from its parent's key, so a long-running mock
// keeps producing verifiable documents. Open(dir) loads the state (and faults.json).
//
// # Faults
//
// Per request type: latency, an ioctl errno (EIO, ETIMEDOUT, EMSGSIZE, ...), an NSM error code, or a malformed
// response (garbage, truncated, wrong variant). Set them with SetFaults or in dir/faults.json (see Faults).
package mocknsm
