package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/attestd/attestd/kmsrecipient"
)

// Enclave is an application's KMS client inside the enclave: every call carries a fresh Recipient from
// attestd, KMS's answer must be a CiphertextForRecipient and nothing else, and attestd opens it. The
// application never holds a private key, and a plaintext never crosses the parent instance.
type Enclave struct {
	KMS *kms.Client
	// Recipients is attestd's local API, through the in-enclave package kmsrecipient.
	Recipients *kmsrecipient.Client
}

// ErrDowngrade is returned when KMS (or whatever answered in its place) sent a plaintext field, or no
// CiphertextForRecipient, to a request that carried a Recipient: a relay, a misconfigured endpoint or a
// stand-in such as LocalStack or moto. The answer is refused, whatever it contains.
var ErrDowngrade = errors.New("kms answer to a Recipient request is not a CiphertextForRecipient alone")

// recipient asks attestd for a fresh Recipient: a document binding a one-time RSA-2048 key, for one request.
func (e *Enclave) recipient(ctx context.Context) (*types.RecipientInfo, *kmsrecipient.Recipient, error) {
	r, err := e.Recipients.Recipient(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("attestd kms_recipient: %w", err)
	}
	return &types.RecipientInfo{
		AttestationDocument:    r.AttestationDocument,
		KeyEncryptionAlgorithm: types.KeyEncryptionMechanism(r.KeyEncryptionAlgorithm),
	}, r, nil
}

// open checks that the answer is a CiphertextForRecipient alone and has attestd open it with the
// Recipient's key (which that uses up).
func open(ctx context.Context, r *kmsrecipient.Recipient, plaintext, cfr []byte) ([]byte, error) {
	if len(plaintext) != 0 || len(cfr) == 0 {
		return nil, ErrDowngrade
	}
	pt, err := r.Open(ctx, cfr)
	if err != nil {
		return nil, fmt.Errorf("attestd kms_open: %w", err)
	}
	return pt, nil
}

// checkKeyID binds the answer to the key the application asked for: a key ARN must come back as itself, a
// key id as an ARN ending in key/ID. (An alias resolves on KMS's side; pin keys by ARN to check them.)
func checkKeyID(requested string, got *string) error {
	if got == nil {
		return errors.New("kms answer names no KeyId")
	}
	switch {
	case strings.HasPrefix(requested, "arn:aws:kms:") && strings.Contains(requested, ":key/"):
		if *got != requested {
			return fmt.Errorf("kms answered for key %s, asked %s", *got, requested)
		}
	case !strings.HasPrefix(requested, "alias/") && !strings.HasPrefix(requested, "arn:"):
		if !strings.HasPrefix(*got, "arn:aws:kms:") || !strings.HasSuffix(*got, ":key/"+requested) {
			return fmt.Errorf("kms answered for key %s, asked %s", *got, requested)
		}
	}
	return nil
}

// GenerateDataKey returns a fresh 256-bit data key, which only this enclave image can see, and its
// CiphertextBlob to store outside.
func (e *Enclave) GenerateDataKey(ctx context.Context, keyID string, encryptionContext map[string]string) (dataKey, blob []byte, err error) {
	rcpt, r, err := e.recipient(ctx)
	if err != nil {
		return nil, nil, err
	}
	out, err := e.KMS.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             &keyID,
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encryptionContext,
		Recipient:         rcpt,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeyID(keyID, out.KeyId); err != nil {
		return nil, nil, err
	}
	if dataKey, err = open(ctx, r, out.Plaintext, out.CiphertextForRecipient); err != nil {
		return nil, nil, err
	}
	return dataKey, out.CiphertextBlob, nil
}

// GenerateDataKeyPair returns a fresh key pair of spec (types.DataKeyPairSpec*): the private key, which
// only this enclave image sees (KMS sends it as PKCS#8 DER in CiphertextForRecipient; its
// PrivateKeyPlaintext must be empty), the public key, checked to be the private key's, and the
// PrivateKeyCiphertextBlob to store outside (Decrypt with a Recipient gets the private key back).
func (e *Enclave) GenerateDataKeyPair(ctx context.Context, keyID string, spec types.DataKeyPairSpec, encryptionContext map[string]string) (priv crypto.Signer, blob []byte, err error) {
	rcpt, r, err := e.recipient(ctx)
	if err != nil {
		return nil, nil, err
	}
	out, err := e.KMS.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{
		KeyId:             &keyID,
		KeyPairSpec:       spec,
		EncryptionContext: encryptionContext,
		Recipient:         rcpt,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeyID(keyID, out.KeyId); err != nil {
		return nil, nil, err
	}
	if out.KeyPairSpec != spec {
		return nil, nil, fmt.Errorf("kms answered a %s key pair, asked %s", out.KeyPairSpec, spec)
	}
	pkcs8, err := open(ctx, r, out.PrivateKeyPlaintext, out.CiphertextForRecipient)
	if err != nil {
		return nil, nil, err
	}
	if priv, err = parseKeyPair(pkcs8, out.PublicKey); err != nil {
		return nil, nil, err
	}
	return priv, out.PrivateKeyCiphertextBlob, nil
}

// parseKeyPair parses a PKCS#8 private key and checks that spki is its public key.
func parseKeyPair(pkcs8, spki []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		return nil, fmt.Errorf("the private key KMS sent: %w", err)
	}
	priv, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the private key KMS sent is a %T, not a signing key", k)
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil, fmt.Errorf("the public key KMS sent: %w", err)
	}
	if eq, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(pub) {
		return nil, errors.New("the public key KMS sent is not the private key's")
	}
	return priv, nil
}

// DeriveSharedSecret has KMS derive the ECDH secret of its KEY_AGREEMENT key keyID and peerPublicKey
// (SubjectPublicKeyInfo DER on the key's curve) and returns it, opened in the enclave: the party holding
// the peer's private key computes the same secret from the KMS key's public key (GetPublicKey).
func (e *Enclave) DeriveSharedSecret(ctx context.Context, keyID string, peerPublicKey []byte) ([]byte, error) {
	rcpt, r, err := e.recipient(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.KMS.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{
		KeyId:                 &keyID,
		KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh,
		PublicKey:             peerPublicKey,
		Recipient:             rcpt,
	})
	if err != nil {
		return nil, err
	}
	if err := checkKeyID(keyID, out.KeyId); err != nil {
		return nil, err
	}
	return open(ctx, r, out.SharedSecret, out.CiphertextForRecipient)
}

// Decrypt has KMS decrypt blob under keyID (always name the key: KMS then refuses a blob made under
// another) and returns the plaintext, opened in the enclave.
func (e *Enclave) Decrypt(ctx context.Context, keyID string, blob []byte, encryptionContext map[string]string) ([]byte, error) {
	rcpt, r, err := e.recipient(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.KMS.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             &keyID,
		CiphertextBlob:    blob,
		EncryptionContext: encryptionContext,
		Recipient:         rcpt,
	})
	if err != nil {
		return nil, err
	}
	if err := checkKeyID(keyID, out.KeyId); err != nil {
		return nil, err
	}
	return open(ctx, r, out.Plaintext, out.CiphertextForRecipient)
}

// GenerateRandom returns n (1..1024) random bytes from KMS, seen only in the enclave.
func (e *Enclave) GenerateRandom(ctx context.Context, n int32) ([]byte, error) {
	rcpt, r, err := e.recipient(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.KMS.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: &n, Recipient: rcpt})
	if err != nil {
		return nil, err
	}
	return open(ctx, r, out.Plaintext, out.CiphertextForRecipient)
}
