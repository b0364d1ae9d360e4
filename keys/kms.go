package keys

import "github.com/attestd/attestd/kmsenvelope"

// OpenKMS opens a KMS CiphertextForRecipient addressed to the long-lived "rsa" key, for documents
// an application fetched with attest and key "rsa" (kmsenvelope.Open). Every failure, including a
// key that is not RSA, is kmsenvelope.ErrOpen.
func (k *Key) OpenKMS(ber []byte) ([]byte, error) {
	if k.rsaKey == nil {
		return nil, kmsenvelope.ErrOpen
	}
	return kmsenvelope.Open(k.rsaKey, ber)
}
