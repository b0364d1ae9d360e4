// Package kmsenvelope parses and opens AWS KMS CiphertextForRecipient: the CMS EnvelopedData KMS
// returns instead of a plaintext when a request carries a Recipient (an attestation document whose
// public_key is an RSA-2048 SubjectPublicKeyInfo).
//
// The parser accepts exactly KMS's template and nothing looser (docs/kms.md):
//
//	ContentInfo SEQUENCE                              indefinite or definite
//	  contentType envelopedData 1.2.840.113549.1.7.3
//	  [0] EXPLICIT                                    indefinite or definite
//	    EnvelopedData SEQUENCE                        indefinite or definite
//	      version 2                                   no originatorInfo
//	      RecipientInfos SET                          definite, exactly one element
//	        KeyTransRecipientInfo SEQUENCE            version 2
//	          rid [0] subjectKeyIdentifier            32 bytes = SHA-256(recipient SPKI DER)
//	          rsaesOaep 1.2.840.113549.1.1.7          [0] sha256, [1] mgf1(sha256), hash params
//	                                                  NULL or absent, [2] absent or an empty label
//	          encryptedKey OCTET STRING               RSAES-OAEP of a 32-byte content key
//	      EncryptedContentInfo SEQUENCE               indefinite or definite
//	        contentType data 1.2.840.113549.1.7.1
//	        aes256-CBC 2.16.840.1.101.3.4.1.42        16-byte IV as OCTET STRING parameter
//	        [0] encryptedContent                      primitive, or constructed (indefinite or
//	                                                  definite) holding primitive OCTET STRING chunks
//	                                                  no unprotectedAttrs, no trailing bytes
//
// Indefinite lengths are accepted only at the five places KMS writes them (the outer three levels,
// EncryptedContentInfo and the constructed encryptedContent); everything else must be DER: definite,
// minimal lengths, low tag numbers. The whole envelope is at most MaxSize bytes. Go's encoding/asn1
// and cryptobyte reject indefinite lengths, so the package has its own small BER reader.
//
// Parse reports the first structural problem as a *FieldError naming the field, for tests and
// diagnostics. Open, the only way to get a plaintext, returns ErrOpen for every failure (structure,
// key identifier, RSA-OAEP, content key length, CBC padding) so that a caller who can submit
// envelopes learns nothing about why one failed. The envelope is not authenticated (RSA-OAEP plus
// AES-CBC, no MAC): anyone holding the public key can make one, so a plaintext proves only that the
// envelope was made for this key.
package kmsenvelope
