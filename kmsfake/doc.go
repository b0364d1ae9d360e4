// Package kmsfake is a KMS-shaped HTTP server for tests: it speaks AWS KMS's JSON protocol for
// GenerateDataKey, GenerateDataKeyPair, Decrypt, GenerateRandom and DeriveSharedSecret with the Nitro
// Enclaves Recipient parameter, so that an application using an unmodified AWS SDK (pointed at it with an
// endpoint override) can be tested end to end against attestd without AWS. It is test infrastructure, not a KMS: its keys live in memory, its ciphertext
// blobs are its own format, and it implements only what the Recipient flow needs.
//
// What it does as KMS does:
//
//   - Protocol awsJson1_1: POST /, X-Amz-Target: TrentService.<Operation>, Content-Type
//     application/x-amz-json-1.1, blobs as standard base64, errors as {"__type": "...", "message": "..."}
//     with the HTTP status of the error (400 for the client errors used here, 412 for a dry run).
//   - Every request must carry a SigV4 Authorization header (AWS4-HMAC-SHA256) for the configured access
//     key, credential scope DATE/REGION/kms/aws4_request and a signature that verifies with the configured
//     secret over the signed headers and the body; X-Amz-Date must be within 15 minutes of the server's clock.
//   - A Recipient's AttestationDocument is verified with package attestation against Config.Root (the mock
//     NSM's root in tests); debug-mode documents are accepted, as KMS does (their all-zero PCRs then fail a
//     PCR condition). Its PCRs become the condition keys kms:RecipientAttestation:ImageSha384 (= PCR0) and
//     kms:RecipientAttestation:PCR0..PCR31, in lower-case hex.
//   - Authorization by a key policy (and, for GenerateRandom, which has no key, an IAM-style policy) in IAM
//     JSON: an explicit Deny wins, then an Allow, else AccessDeniedException. See Policy for the subset.
//   - With a Recipient, the answer has CiphertextForRecipient, the plaintext in KMS's exact envelope
//     (kmsenvelope.Build) encrypted to the document's RSA-2048 public_key, and no Plaintext (for
//     GenerateDataKeyPair: no PrivateKeyPlaintext; the envelope holds the PKCS#8 private key).
//
// Where KMS's behaviour is unknown or not needed, the fake chooses and says so: a Recipient document that
// does not verify contributes no condition keys (so a policy with attestation conditions denies it, which
// AWS documents) and, if the policy allows the call anyway, the request fails with ValidationException
// rather than answering in plaintext. Request bodies are decoded strictly (unknown fields, duplicate keys
// and trailing data are SerializationException), which KMS may not do. Authentication errors use the names
// AWS's JSON services return (MissingAuthenticationTokenException, IncompleteSignatureException,
// UnrecognizedClientException, InvalidSignatureException), all with status 400.
//
// Ciphertext blobs (CiphertextBlob of GenerateDataKey, PrivateKeyCiphertextBlob of GenerateDataKeyPair,
// input of Decrypt) are this package's own
// authenticated format, not KMS's:
//
//	"kf1" || len(keyID) (1 byte) || keyID || nonce (12 bytes) || AES-256-GCM(key material, nonce, plaintext, aad)
//	aad = the bytes before the nonce || the encryption context, sorted by key, each key and value as a
//	      2-byte big-endian length and its bytes
//
// so Decrypt finds the key from the blob (as KMS does), and a blob that was altered, made under another key
// or decrypted with another encryption context is InvalidCiphertextException.
//
// Faults switches the server into the two unsafe behaviours real stand-ins have shown (research notes §5.5
// and §6.2): Plaintext alongside CiphertextForRecipient, and the Recipient ignored (LocalStack for everything
// but Decrypt, moto always). Applications must refuse both; the example in examples/kms tests that it does.
package kmsfake
