package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/kmsfake"
	"github.com/attestd/attestd/kmsrecipient"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/vsockrpc"
)

const (
	region    = "us-east-1"
	account   = "111122223333"
	principal = "arn:aws:iam::111122223333:role/enclave"
	keyID     = "1234abcd-12ab-34cd-56ef-1234567890ab"
	accessKey = "AKIAEXAMPLEENCLAVE01"
	secretKey = "example-secret-known-to-the-test-server"
)

// attestd is the unmodified agent on the software NSM, serving its local API on a unix socket, as in an
// enclave (where the NSM is real and the socket is the application's).
type attestd struct {
	local string            // unix://... address of the local API
	root  *x509.Certificate // the mock NSM's root: KMS-shaped server's trust anchor
	pcr0  string            // lower-case hex: kms:RecipientAttestation:ImageSha384 of this "image"
}

func startAttestd(t *testing.T) *attestd {
	t.Helper()
	enc := mockenclave.New(t, mocknsm.Config{})
	a, err := agent.New(context.Background(), agent.Config{
		NSM:     enc.Session,
		Entropy: mockenclave.Entropy(t),
		Version: "example-test",
		Mock:    true,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	local := mockenclave.Serve(t, &vsockrpc.Server{API: vsockrpc.LocalAPI(a)}, "local.sock")
	return &attestd{local: local, root: enc.Root, pcr0: hex.EncodeToString(enc.PCR(t, 0))}
}

// policy allows actions to the enclave's role only when the Recipient's image is imageSha384, the way a
// production key policy pins an enclave image (docs/kms.md).
func policy(imageSha384 string, actions ...string) string {
	b, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{map[string]any{
			"Sid":       "enclave image only",
			"Effect":    "Allow",
			"Principal": map[string]any{"AWS": principal},
			"Action":    actions,
			"Resource":  "*",
			"Condition": map[string]any{"StringEqualsIgnoreCase": map[string]any{
				"kms:RecipientAttestation:ImageSha384": imageSha384}},
		}},
	})
	return string(b)
}

// kmsServer is the KMS-shaped server on 127.0.0.1 with one key, both policies pinned to image.
func kmsServer(t *testing.T, root *x509.Certificate, image string) (*kmsfake.Server, string) {
	t.Helper()
	srv, err := kmsfake.New(kmsfake.Config{
		Region: region, Account: account, Principal: principal, Root: root,
		Credentials:  kmsfake.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey},
		Keys:         []kmsfake.Key{{ID: keyID, Alias: "alias/example", Policy: policy(image, "kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair")}},
		RandomPolicy: policy(image, "kms:GenerateRandom"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.URL
}

// enclave is the application's client: the real SDK pointed at endpoint with static credentials, and
// attestd's local API.
func enclave(t *testing.T, a *attestd, endpoint, secret string) *Enclave {
	t.Helper()
	c, err := kmsrecipient.Dial(context.Background(), a.local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Enclave{
		KMS: kms.New(kms.Options{
			Region:       region,
			Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secret, ""),
			BaseEndpoint: aws.String(endpoint),
		}),
		Recipients: c,
	}
}

func wantAPIError(t *testing.T, err error, code string) {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Fatalf("error %v, want the KMS error %s", err, code)
	}
}

// TestRecipientFlow: with a policy pinned to this image, the SDK's GenerateDataKey, Decrypt and
// GenerateRandom with Recipient all work, and what attestd opens is exactly what the server generated.
func TestRecipientFlow(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, a.pcr0)
	e := enclave(t, a, endpoint, secretKey)
	ctx := context.Background()
	arn := srv.KeyARN(keyID)
	ec := map[string]string{"app": "test"}

	dataKey, blob, err := e.GenerateDataKey(ctx, arn, ec)
	if err != nil {
		t.Fatal(err)
	}
	issued := srv.Issued()
	if len(issued) != 1 || issued[0].Operation != "GenerateDataKey" || !issued[0].Recipient ||
		len(dataKey) != 32 || !bytes.Equal(dataKey, issued[0].Plaintext) {
		t.Fatalf("opened data key %x; the server issued %+v", dataKey, issued)
	}

	for _, id := range []string{arn, keyID, "alias/example"} {
		again, err := e.Decrypt(ctx, id, blob, ec)
		if err != nil || !bytes.Equal(again, dataKey) {
			t.Fatalf("Decrypt with KeyId %s: %x, %v; want %x", id, again, err, dataKey)
		}
	}

	random, err := e.GenerateRandom(ctx, 1024)
	if err != nil {
		t.Fatal(err)
	}
	issued = srv.Issued()
	last := issued[len(issued)-1]
	if last.Operation != "GenerateRandom" || !last.Recipient || len(random) != 1024 || !bytes.Equal(random, last.Plaintext) {
		t.Fatalf("GenerateRandom opened %d bytes; the server issued %+v", len(random), last)
	}

	// An envelope captured on the way opens once: not again with its used key, nor with the agent's own.
	r, err := e.Recipients.Recipient(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.KMS.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32),
		Recipient: &types.RecipientInfo{AttestationDocument: r.AttestationDocument,
			KeyEncryptionAlgorithm: types.KeyEncryptionMechanism(r.KeyEncryptionAlgorithm)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(ctx, out.CiphertextForRecipient); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(ctx, out.CiphertextForRecipient); !errors.Is(err, kmsrecipient.ErrUsed) {
		t.Fatalf("second Open: %v, want ErrUsed", err)
	}
	if _, err := e.Recipients.OpenWithAgentKey(ctx, out.CiphertextForRecipient); !errors.Is(err, kmsrecipient.ErrOpenFailed) {
		t.Fatalf("Open with the agent's key: %v, want ErrOpenFailed", err)
	}

	// The same server refuses the same key to a caller without a Recipient, through the same SDK.
	_, err = e.KMS.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: blob, EncryptionContext: ec})
	wantAPIError(t, err, "AccessDeniedException")
}

// TestWrongImageDenied: a key policy pinned to another image gets AccessDeniedException for every
// operation, and the server issues nothing.
func TestWrongImageDenied(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, strings.Repeat("0f", 48))
	e := enclave(t, a, endpoint, secretKey)
	ctx := context.Background()
	_, _, err := e.GenerateDataKey(ctx, srv.KeyARN(keyID), nil)
	wantAPIError(t, err, "AccessDeniedException")
	_, err = e.GenerateRandom(ctx, 32)
	wantAPIError(t, err, "AccessDeniedException")
	if n := len(srv.Issued()); n != 0 {
		t.Fatalf("the server issued %d plaintexts", n)
	}
}

// TestWrongSecretRejected: the server verifies the SDK's SigV4 signature, so a wrong secret fails.
func TestWrongSecretRejected(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, a.pcr0)
	_, err := enclave(t, a, endpoint, "not-the-secret").GenerateRandom(context.Background(), 32)
	wantAPIError(t, err, "InvalidSignatureException")
	if n := len(srv.Issued()); n != 0 {
		t.Fatalf("the server issued %d plaintexts", n)
	}
}

// TestDowngradeRefused: an endpoint that answers a Recipient request with a plaintext (beside the envelope,
// or instead of it, as LocalStack and moto do) is refused, whatever it sent.
func TestDowngradeRefused(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, a.pcr0)
	e := enclave(t, a, endpoint, secretKey)
	for _, f := range []kmsfake.Faults{{PlaintextWithRecipient: true}, {IgnoreRecipient: true}} {
		srv.SetFaults(f)
		if _, err := e.GenerateRandom(context.Background(), 32); !errors.Is(err, ErrDowngrade) {
			t.Errorf("%+v: GenerateRandom error %v, want ErrDowngrade", f, err)
		}
		if _, _, err := e.GenerateDataKey(context.Background(), srv.KeyARN(keyID), nil); !errors.Is(err, ErrDowngrade) {
			t.Errorf("%+v: GenerateDataKey error %v, want ErrDowngrade", f, err)
		}
		if _, _, err := e.GenerateDataKeyPair(context.Background(), srv.KeyARN(keyID), types.DataKeyPairSpecEccNistP256, nil); !errors.Is(err, ErrDowngrade) {
			t.Errorf("%+v: GenerateDataKeyPair error %v, want ErrDowngrade", f, err)
		}
	}
}

// TestDataKeyPair: GenerateDataKeyPair with a Recipient gives the enclave a private key only it sees (the
// PKCS#8 key the server issued, matching the PublicKey it answered), and Decrypt of the
// PrivateKeyCiphertextBlob with a Recipient gives the same key back.
func TestDataKeyPair(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, a.pcr0)
	e := enclave(t, a, endpoint, secretKey)
	ctx := context.Background()
	ec := map[string]string{"app": "signer"}
	for _, spec := range []types.DataKeyPairSpec{types.DataKeyPairSpecEccNistP384, types.DataKeyPairSpecRsa2048} {
		priv, blob, err := e.GenerateDataKeyPair(ctx, srv.KeyARN(keyID), spec, ec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		issued := srv.Issued()
		if last := issued[len(issued)-1]; last.Operation != "GenerateDataKeyPair" || !last.Recipient || !bytes.Equal(last.Plaintext, pkcs8) {
			t.Fatalf("%s: the enclave holds a key the server did not issue: %+v", spec, last)
		}
		again, err := e.Decrypt(ctx, srv.KeyARN(keyID), blob, ec)
		if err != nil || !bytes.Equal(again, pkcs8) {
			t.Fatalf("%s: Decrypt of PrivateKeyCiphertextBlob: %v", spec, err)
		}
	}
	if _, err := parseKeyPair([]byte("not a key"), nil); err == nil {
		t.Error("garbage PKCS#8 accepted")
	}
	p256, _, err := e.GenerateDataKeyPair(ctx, srv.KeyARN(keyID), types.DataKeyPairSpecEccNistP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(p256)
	other, _, err := e.GenerateDataKeyPair(ctx, srv.KeyARN(keyID), types.DataKeyPairSpecEccNistP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherSPKI, _ := x509.MarshalPKIXPublicKey(other.Public())
	if _, err := parseKeyPair(pkcs8, otherSPKI); err == nil || !strings.Contains(err.Error(), "not the private key's") {
		t.Errorf("a PublicKey of another pair: %v", err)
	}
}

// TestDeriveSharedSecret: DeriveSharedSecret with a Recipient gives the enclave the secret the other party
// computes from the KMS key's public key, never in SharedSecret; both downgrade faults are refused.
func TestDeriveSharedSecret(t *testing.T) {
	a := startAttestd(t)
	const agreeID = "0f0f0f0f-1111-2222-3333-444455556666"
	srv, err := kmsfake.New(kmsfake.Config{
		Region: region, Account: account, Principal: principal, Root: a.root,
		Credentials:  kmsfake.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey},
		Keys:         []kmsfake.Key{{ID: agreeID, Spec: "ECC_NIST_P256", Policy: policy(a.pcr0, "kms:DeriveSharedSecret")}},
		RandomPolicy: policy(a.pcr0, "kms:GenerateRandom"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	e := enclave(t, a, ts.URL, secretKey)

	peer, err := ecdh.P256().GenerateKey(rand.Reader) // the other party
	if err != nil {
		t.Fatal(err)
	}
	peerSPKI, err := x509.MarshalPKIXPublicKey(peer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	secret, err := e.DeriveSharedSecret(context.Background(), srv.KeyARN(agreeID), peerSPKI)
	if err != nil {
		t.Fatal(err)
	}
	kmsPub, err := x509.ParsePKIXPublicKey(srv.AgreementPublicKey(agreeID))
	if err != nil {
		t.Fatal(err)
	}
	kmsECDH, err := kmsPub.(*ecdsa.PublicKey).ECDH()
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.ECDH(kmsECDH)
	if err != nil || !bytes.Equal(secret, want) {
		t.Fatalf("the enclave derived %x, the other party %x (%v)", secret, want, err)
	}
	for _, f := range []kmsfake.Faults{{PlaintextWithRecipient: true}, {IgnoreRecipient: true}} {
		srv.SetFaults(f)
		if _, err := e.DeriveSharedSecret(context.Background(), srv.KeyARN(agreeID), peerSPKI); !errors.Is(err, ErrDowngrade) {
			t.Errorf("%+v: DeriveSharedSecret error %v, want ErrDowngrade", f, err)
		}
	}
}

// TestKeyIDChecked: an answer for another key than the ARN asked for is refused.
func TestKeyIDChecked(t *testing.T) {
	arn := "arn:aws:kms:us-east-1:111122223333:key/" + keyID
	for _, tc := range []struct {
		requested, got string
		ok             bool
	}{
		{arn, arn, true},
		{arn, strings.Replace(arn, "1234abcd", "9999abcd", 1), false},
		{keyID, arn, true},
		{keyID, "arn:aws:kms:us-east-1:111122223333:key/other", false},
		{"alias/example", arn, true},
	} {
		if err := checkKeyID(tc.requested, &tc.got); (err == nil) != tc.ok {
			t.Errorf("checkKeyID(%s, %s) = %v", tc.requested, tc.got, err)
		}
	}
	if checkKeyID(arn, nil) == nil {
		t.Error("no KeyId accepted")
	}
}

// spkiOf is the SubjectPublicKeyInfo DER of a PKCS#8 private key.
func spkiOf(t *testing.T, pkcs8 []byte) []byte {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(pkcs8)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(k.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	return spki
}

// TestCommand runs the program as an operator would, against the KMS-shaped server.
func TestCommand(t *testing.T) {
	a := startAttestd(t)
	srv, endpoint := kmsServer(t, a.root, a.pcr0)
	env := map[string]string{"AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": secretKey}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--attestd", a.local, "--region", region, "--key-id", srv.KeyARN(keyID),
		"--endpoint", endpoint}, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	issued := srv.Issued()
	if len(issued) != 4 {
		t.Fatalf("issued %+v", issued)
	}
	out := stdout.String()
	for _, want := range []string{
		"GenerateDataKey: 32-byte data key, sha256 " + fingerprint(issued[0].Plaintext),
		"Decrypt: the same data key, sha256 " + fingerprint(issued[0].Plaintext),
		"GenerateDataKeyPair: an ECC_NIST_P384 private key in the enclave; public key sha256 " + fingerprint(spkiOf(t, issued[2].Plaintext)),
		"GenerateRandom: 32 bytes, sha256 " + fingerprint(issued[3].Plaintext),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	for _, args := range [][]string{{}, {"--region", region}, {"--region", region, "--key-id", keyID, "extra"},
		{"--region", region, "--key-id", keyID, "--endpoint", endpoint, "--vsock-proxy", "3:8000"},
		{"--region", region, "--key-id", keyID, "--vsock-proxy", "3"}, {"--bogus"}, {"--region", ""}} {
		stderr.Reset()
		if code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr); code != 2 ||
			!strings.HasPrefix(stderr.String(), "kms-example: ") || !strings.HasSuffix(stderr.String(), "\nrun 'kms-example --help' for usage\n") ||
			strings.Count(stderr.String(), "\n") != 2 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line with the hint", args, code, stderr.String())
		}
	}
	if code := run(context.Background(), []string{"--region", region, "--key-id", keyID}, func(string) string { return "" }, &stdout, &stderr); code != 2 {
		t.Errorf("no credentials: exit %d, want 2", code)
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "usage: kms-example") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout.String())
	}
}
