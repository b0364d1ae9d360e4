// Package verifybench measures the attestation verifier against
// github.com/hf/nitrite and a single ECDSA P-384 verification on the real AWS
// documents, in one run. It is a module of its own so that the main module
// never depends on hf/nitrite. Run it with scripts/bench-verify.sh.
package verifybench
