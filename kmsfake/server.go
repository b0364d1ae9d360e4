package kmsfake

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/kmsenvelope"
)

const (
	contentType  = "application/x-amz-json-1.1"
	targetPrefix = "TrentService."
	// MaxRequestBody bounds a request body: a 262144-byte attestation document in base64 plus the rest.
	MaxRequestBody = 512 << 10
	// KeyEncryptionAlgorithm is the only Recipient algorithm KMS accepts.
	KeyEncryptionAlgorithm = "RSAES_OAEP_SHA_256"
	maxAttestationDocument = 262144
	maxEncryptionContext   = 8192 // total bytes of keys and values
)

// Config configures a Server. Every field but Now and Faults is required.
type Config struct {
	// Region is the endpoint's region (the SigV4 credential scope must name it), e.g. "us-east-1".
	Region string
	// Account is the 12-digit account the keys belong to.
	Account string
	// Credentials are the only credentials accepted.
	Credentials Credentials
	// Principal is the ARN the credentials authenticate as, e.g. arn:aws:iam::ACCOUNT:role/enclave.
	Principal string
	// Root is the trust anchor of Recipient attestation documents (the mock NSM's root in tests).
	Root *x509.Certificate
	// Keys are the KMS keys, each with its key policy.
	Keys []Key
	// RandomPolicy is the IAM policy (JSON) that governs kms:GenerateRandom, which has no key.
	RandomPolicy string
	// Now is the server's clock for X-Amz-Date; nil means time.Now. Attestation documents are judged at
	// the real time (they must be at most attestation.DefaultMaxAge old).
	Now func() time.Time
	// Faults start the server in an unsafe mode; see Faults.
	Faults Faults
}

// Key is one KMS key.
type Key struct {
	// ID is the key id (in KMS a UUID); the key's ARN is arn:aws:kms:REGION:ACCOUNT:key/ID.
	ID string
	// Alias, if set, is another name of the key ("alias/NAME").
	Alias string
	// Policy is the key policy document (JSON, see Policy).
	Policy string
	// Spec is "" (or SYMMETRIC_DEFAULT) for a symmetric ENCRYPT_DECRYPT key, or ECC_NIST_P256,
	// ECC_NIST_P384 or ECC_NIST_P521 for a KEY_AGREEMENT key, which serves DeriveSharedSecret only.
	Spec string
}

// agreementCurves are the KeySpecs of KEY_AGREEMENT keys the server makes.
var agreementCurves = map[string]ecdh.Curve{"ECC_NIST_P256": ecdh.P256(), "ECC_NIST_P384": ecdh.P384(), "ECC_NIST_P521": ecdh.P521()}

// Faults are unsafe behaviours for testing clients. The zero value is the safe server.
type Faults struct {
	// PlaintextWithRecipient answers a Recipient request with Plaintext as well as CiphertextForRecipient.
	PlaintextWithRecipient bool
	// IgnoreRecipient ignores the Recipient: plaintext answers and no CiphertextForRecipient.
	IgnoreRecipient bool
}

// Issued is a plaintext the server produced or revealed, for tests to compare with what the client opened.
type Issued struct {
	Operation string // the KMS operation, e.g. GenerateDataKey
	KeyID     string // the key's ARN; empty for GenerateRandom
	Plaintext []byte
	// Recipient is true when the plaintext went out only as CiphertextForRecipient.
	Recipient bool
}

// maxIssued bounds the record of Issued plaintexts (the oldest are dropped).
const maxIssued = 256

// Server is the KMS-shaped http.Handler. Safe for concurrent use.
type Server struct {
	cfg      Config
	keys     map[string]*serverKey // by key id, ARN, alias and alias ARN
	random   *Policy
	verifier *attestation.Verifier

	mu     sync.Mutex
	faults Faults
	issued []Issued
}

type serverKey struct {
	id, arn   string
	policy    *Policy
	material  []byte           // a symmetric key's
	agreement *ecdh.PrivateKey // a KEY_AGREEMENT key's
}

// New checks cfg and returns a Server with fresh key material for each key.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Region == "":
		return nil, errors.New("kmsfake: no Region")
	case len(cfg.Account) != 12 || strings.Trim(cfg.Account, "0123456789") != "":
		return nil, fmt.Errorf("kmsfake: Account %q is not 12 digits", cfg.Account)
	case cfg.Credentials.AccessKeyID == "" || cfg.Credentials.SecretAccessKey == "":
		return nil, errors.New("kmsfake: Credentials need an access key id and a secret")
	case cfg.Principal == "":
		return nil, errors.New("kmsfake: no Principal")
	case cfg.Root == nil:
		return nil, errors.New("kmsfake: no Root for attestation documents")
	case len(cfg.Keys) == 0:
		return nil, errors.New("kmsfake: no Keys")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	random, err := ParsePolicy(cfg.RandomPolicy)
	if err != nil {
		return nil, fmt.Errorf("kmsfake: RandomPolicy: %w", err)
	}
	// KMS accepts debug-mode documents (a PCR condition then rejects their zero PCRs) and the key policy,
	// not the verifier, decides which images may use a key.
	verifier, err := attestation.NewVerifier(attestation.Options{Root: cfg.Root, AnyPCRs: true, AllowDebug: true})
	if err != nil {
		return nil, fmt.Errorf("kmsfake: %w", err)
	}
	s := &Server{cfg: cfg, keys: map[string]*serverKey{}, random: random, verifier: verifier, faults: cfg.Faults}
	for _, k := range cfg.Keys {
		if k.ID == "" || len(k.ID) > 255 || strings.ContainsAny(k.ID, "/:") {
			return nil, fmt.Errorf("kmsfake: key id %q: want 1..255 bytes, no '/' or ':' characters", k.ID)
		}
		p, err := ParsePolicy(k.Policy)
		if err != nil {
			return nil, fmt.Errorf("kmsfake: key %s: %w", k.ID, err)
		}
		sk := &serverKey{id: k.ID, arn: s.KeyARN(k.ID), policy: p}
		switch curve, ok := agreementCurves[k.Spec]; {
		case k.Spec == "" || k.Spec == "SYMMETRIC_DEFAULT":
			sk.material = make([]byte, 32)
			if _, err := rand.Read(sk.material); err != nil {
				return nil, err
			}
		case ok:
			if sk.agreement, err = curve.GenerateKey(rand.Reader); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("kmsfake: key %s: Spec %q is not SYMMETRIC_DEFAULT or an ECC_NIST key agreement spec", k.ID, k.Spec)
		}
		names := []string{sk.id, sk.arn}
		if k.Alias != "" {
			if !strings.HasPrefix(k.Alias, "alias/") || len(k.Alias) == len("alias/") {
				return nil, fmt.Errorf("kmsfake: key %s: alias %q is not alias/NAME", k.ID, k.Alias)
			}
			names = append(names, k.Alias, "arn:aws:kms:"+cfg.Region+":"+cfg.Account+":"+k.Alias)
		}
		for _, n := range names {
			if _, dup := s.keys[n]; dup {
				return nil, fmt.Errorf("kmsfake: key name %q used twice", n)
			}
			s.keys[n] = sk
		}
	}
	return s, nil
}

// AgreementPublicKey is the SubjectPublicKeyInfo DER of the KEY_AGREEMENT key with this id (what KMS's
// GetPublicKey returns), or nil if there is no such key.
func (s *Server) AgreementPublicKey(id string) []byte {
	k, ok := s.keys[id]
	if !ok || k.agreement == nil {
		return nil
	}
	spki, err := x509.MarshalPKIXPublicKey(k.agreement.PublicKey())
	if err != nil {
		return nil
	}
	return spki
}

// KeyARN is the ARN of the key with this id.
func (s *Server) KeyARN(id string) string {
	return "arn:aws:kms:" + s.cfg.Region + ":" + s.cfg.Account + ":key/" + id
}

// SetFaults replaces the faults for the requests that follow.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Issued returns the plaintexts the server produced or revealed, oldest first (at most the last 256).
func (s *Server) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

func (s *Server) record(i Issued) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.issued) == maxIssued {
		s.issued = s.issued[1:]
	}
	s.issued = append(s.issued, i)
}

// ServeHTTP answers one KMS JSON request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp, apiErr := s.serve(r)
	if apiErr != nil {
		apiErr.write(w)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		internalError(err).write(w)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", requestID())
	_, _ = w.Write(body)
}

func (s *Server) serve(r *http.Request) (any, *apiError) {
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.URL.RawQuery != "" {
		return nil, newError(http.StatusNotFound, "UnknownOperationException", "KMS answers POST / only")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxRequestBody))
	if err != nil {
		return nil, newError(http.StatusRequestEntityTooLarge, "SerializationException", "request body over "+strconv.Itoa(MaxRequestBody)+" bytes")
	}
	if e := verifySigV4(r, body, s.cfg.Credentials, s.cfg.Region, "kms", s.cfg.Now()); e != nil {
		return nil, e
	}
	if ct := r.Header.Get("Content-Type"); ct != contentType {
		return nil, serialization("Content-Type " + strconv.Quote(ct) + " is not " + contentType)
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if !ok {
		return nil, newError(http.StatusBadRequest, "UnknownOperationException", "X-Amz-Target is not TrentService.<Operation>")
	}
	switch op {
	case "GenerateDataKey":
		return call(body, s.generateDataKey)
	case "Decrypt":
		return call(body, s.decrypt)
	case "GenerateDataKeyPair":
		return call(body, s.generateDataKeyPair)
	case "DeriveSharedSecret":
		return call(body, s.deriveSharedSecret)
	case "GenerateRandom":
		return call(body, s.generateRandom)
	}
	return nil, newError(http.StatusBadRequest, "UnknownOperationException", "operation "+strconv.Quote(op)+" is not served by this test server")
}

// call decodes body strictly into an operation's request and runs the operation.
func call[Req any](body []byte, op func(*Req) (any, *apiError)) (any, *apiError) {
	var req Req
	if err := decodeStrict(body, &req); err != nil {
		return nil, serialization(err.Error())
	}
	return op(&req)
}

// recipientInfo is KMS's RecipientInfo.
type recipientInfo struct {
	AttestationDocument    []byte
	KeyEncryptionAlgorithm string
}

type generateDataKeyRequest struct {
	KeyID             string `json:"KeyId"`
	KeySpec           string
	NumberOfBytes     *int
	EncryptionContext map[string]string
	GrantTokens       []string
	Recipient         *recipientInfo
	DryRun            bool
}

type generateDataKeyResponse struct {
	CiphertextBlob         []byte
	KeyID                  string `json:"KeyId"`
	Plaintext              []byte `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

type generateDataKeyPairRequest struct {
	KeyID             string `json:"KeyId"`
	KeyPairSpec       string
	EncryptionContext map[string]string
	GrantTokens       []string
	Recipient         *recipientInfo
	DryRun            bool
}

type generateDataKeyPairResponse struct {
	KeyID                    string `json:"KeyId"`
	KeyPairSpec              string
	PublicKey                []byte
	PrivateKeyCiphertextBlob []byte
	PrivateKeyPlaintext      []byte `json:",omitempty"`
	CiphertextForRecipient   []byte `json:",omitempty"`
}

type deriveSharedSecretRequest struct {
	KeyID                 string `json:"KeyId"`
	KeyAgreementAlgorithm string
	PublicKey             []byte
	GrantTokens           []string
	Recipient             *recipientInfo
	DryRun                bool
}

type deriveSharedSecretResponse struct {
	KeyID                  string `json:"KeyId"`
	KeyAgreementAlgorithm  string
	KeyOrigin              string
	SharedSecret           []byte `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

type decryptRequest struct {
	CiphertextBlob      []byte
	KeyID               string `json:"KeyId"`
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
	GrantTokens         []string
	Recipient           *recipientInfo
	DryRun              bool
}

type decryptResponse struct {
	KeyID                  string `json:"KeyId"`
	EncryptionAlgorithm    string
	Plaintext              []byte `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

type generateRandomRequest struct {
	NumberOfBytes    *int
	CustomKeyStoreID string `json:"CustomKeyStoreId"`
	Recipient        *recipientInfo
}

type generateRandomResponse struct {
	Plaintext              []byte `json:",omitempty"`
	CiphertextForRecipient []byte `json:",omitempty"`
}

func (s *Server) generateDataKey(req *generateDataKeyRequest) (any, *apiError) {
	key, e := s.symmetricKey(req.KeyID)
	if e != nil {
		return nil, e
	}
	n := 0
	switch {
	case req.KeySpec != "" && req.NumberOfBytes != nil:
		return nil, validation("KeySpec and NumberOfBytes are mutually exclusive")
	case req.KeySpec == "AES_256":
		n = 32
	case req.KeySpec == "AES_128":
		n = 16
	case req.KeySpec != "":
		return nil, validation("KeySpec " + strconv.Quote(req.KeySpec) + " is not AES_256 or AES_128")
	case req.NumberOfBytes == nil:
		return nil, validation("either KeySpec or NumberOfBytes is required")
	case *req.NumberOfBytes < 1 || *req.NumberOfBytes > 1024:
		return nil, validation("NumberOfBytes must be 1..1024")
	default:
		n = *req.NumberOfBytes
	}
	if e := checkEncryptionContext(req.EncryptionContext); e != nil {
		return nil, e
	}
	rcpt, e := s.authorize("kms:GenerateDataKey", key.arn, key.policy, req.Recipient)
	if e != nil {
		return nil, e
	}
	if req.DryRun {
		return nil, errDryRun
	}
	plaintext := make([]byte, n)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, internalError(err)
	}
	blob, err := sealBlob(key.id, key.material, plaintext, req.EncryptionContext)
	if err != nil {
		return nil, internalError(err)
	}
	resp := &generateDataKeyResponse{CiphertextBlob: blob, KeyID: key.arn}
	resp.Plaintext, resp.CiphertextForRecipient, e = s.answer("GenerateDataKey", key.arn, plaintext, rcpt)
	return resp, e
}

// keyPairSpecs are the KeyPairSpec values the server generates. KMS also offers ECC_SECG_P256K1 and
// (in China) SM2, which the Go standard library does not generate.
var keyPairSpecs = map[string]func() (crypto.Signer, error){
	"RSA_2048":      func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 2048) },
	"RSA_3072":      func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) },
	"RSA_4096":      func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 4096) },
	"ECC_NIST_P256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
	"ECC_NIST_P384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
	"ECC_NIST_P521": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
}

// generateDataKeyPair answers as KMS does: the public key as SubjectPublicKeyInfo DER, the private key
// as PKCS#8 DER sealed under the KMS key (PrivateKeyCiphertextBlob), and the same PKCS#8 DER either in
// PrivateKeyPlaintext or, with a Recipient, in CiphertextForRecipient.
func (s *Server) generateDataKeyPair(req *generateDataKeyPairRequest) (any, *apiError) {
	key, e := s.symmetricKey(req.KeyID)
	if e != nil {
		return nil, e
	}
	gen, ok := keyPairSpecs[req.KeyPairSpec]
	if !ok {
		return nil, validation("KeyPairSpec " + strconv.Quote(req.KeyPairSpec) + " is not served by this test server (RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521)")
	}
	if e := checkEncryptionContext(req.EncryptionContext); e != nil {
		return nil, e
	}
	rcpt, e := s.authorize("kms:GenerateDataKeyPair", key.arn, key.policy, req.Recipient)
	if e != nil {
		return nil, e
	}
	if req.DryRun {
		return nil, errDryRun
	}
	priv, err := gen()
	if err != nil {
		return nil, internalError(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, internalError(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, internalError(err)
	}
	blob, err := sealBlob(key.id, key.material, pkcs8, req.EncryptionContext)
	if err != nil {
		return nil, internalError(err)
	}
	resp := &generateDataKeyPairResponse{KeyID: key.arn, KeyPairSpec: req.KeyPairSpec, PublicKey: spki, PrivateKeyCiphertextBlob: blob}
	resp.PrivateKeyPlaintext, resp.CiphertextForRecipient, e = s.answer("GenerateDataKeyPair", key.arn, pkcs8, rcpt)
	return resp, e
}

// deriveSharedSecret answers as KMS does: the raw ECDH secret (the x-coordinate) of the KMS key and
// PublicKey (SubjectPublicKeyInfo DER on the key's curve), in SharedSecret or, with a Recipient, in
// CiphertextForRecipient.
func (s *Server) deriveSharedSecret(req *deriveSharedSecretRequest) (any, *apiError) {
	key, e := s.key(req.KeyID)
	if e != nil {
		return nil, e
	}
	if key.agreement == nil {
		return nil, invalidKeyUsage(key.arn + " key usage is ENCRYPT_DECRYPT which is not valid for DeriveSharedSecret.")
	}
	if req.KeyAgreementAlgorithm != "ECDH" {
		return nil, validation("KeyAgreementAlgorithm " + strconv.Quote(req.KeyAgreementAlgorithm) + " is not ECDH")
	}
	pub, err := x509.ParsePKIXPublicKey(req.PublicKey)
	if err != nil {
		return nil, validation("PublicKey is not a DER SubjectPublicKeyInfo")
	}
	ecPub, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, validation("PublicKey is not an elliptic-curve key")
	}
	peer, err := ecPub.ECDH()
	if err != nil || peer.Curve() != key.agreement.Curve() {
		return nil, validation("PublicKey is not on the KMS key's curve")
	}
	rcpt, e := s.authorize("kms:DeriveSharedSecret", key.arn, key.policy, req.Recipient)
	if e != nil {
		return nil, e
	}
	if req.DryRun {
		return nil, errDryRun
	}
	secret, err := key.agreement.ECDH(peer)
	if err != nil {
		return nil, validation("PublicKey: " + err.Error())
	}
	resp := &deriveSharedSecretResponse{KeyID: key.arn, KeyAgreementAlgorithm: "ECDH", KeyOrigin: "AWS_KMS"}
	resp.SharedSecret, resp.CiphertextForRecipient, e = s.answer("DeriveSharedSecret", key.arn, secret, rcpt)
	return resp, e
}

func (s *Server) decrypt(req *decryptRequest) (any, *apiError) {
	if len(req.CiphertextBlob) == 0 || len(req.CiphertextBlob) > 6144 {
		return nil, validation("CiphertextBlob must be 1..6144 bytes")
	}
	if req.EncryptionAlgorithm != "" && req.EncryptionAlgorithm != "SYMMETRIC_DEFAULT" {
		return nil, validation("EncryptionAlgorithm " + strconv.Quote(req.EncryptionAlgorithm) + " is not SYMMETRIC_DEFAULT")
	}
	if e := checkEncryptionContext(req.EncryptionContext); e != nil {
		return nil, e
	}
	blobKey, err := blobKeyID(req.CiphertextBlob)
	if err != nil {
		return nil, errInvalidCiphertext
	}
	key, ok := s.keys[blobKey]
	if !ok || key.id != blobKey {
		return nil, errInvalidCiphertext
	}
	if req.KeyID != "" {
		named, e := s.key(req.KeyID)
		if e != nil {
			return nil, e
		}
		if named != key {
			return nil, newError(http.StatusBadRequest, "IncorrectKeyException",
				"The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	plaintext, err := openBlob(key.material, req.CiphertextBlob, req.EncryptionContext)
	if err != nil {
		return nil, errInvalidCiphertext
	}
	rcpt, e := s.authorize("kms:Decrypt", key.arn, key.policy, req.Recipient)
	if e != nil {
		return nil, e
	}
	if req.DryRun {
		return nil, errDryRun
	}
	resp := &decryptResponse{KeyID: key.arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}
	resp.Plaintext, resp.CiphertextForRecipient, e = s.answer("Decrypt", key.arn, plaintext, rcpt)
	return resp, e
}

func (s *Server) generateRandom(req *generateRandomRequest) (any, *apiError) {
	if req.NumberOfBytes == nil || *req.NumberOfBytes < 1 || *req.NumberOfBytes > 1024 {
		return nil, validation("NumberOfBytes must be 1..1024")
	}
	if req.CustomKeyStoreID != "" {
		return nil, newError(http.StatusBadRequest, "CustomKeyStoreNotFoundException", "this test server has no custom key stores")
	}
	rcpt, e := s.authorize("kms:GenerateRandom", "*", s.random, req.Recipient)
	if e != nil {
		return nil, e
	}
	plaintext := make([]byte, *req.NumberOfBytes)
	if _, err := rand.Read(plaintext); err != nil {
		return nil, internalError(err)
	}
	resp := &generateRandomResponse{}
	resp.Plaintext, resp.CiphertextForRecipient, e = s.answer("GenerateRandom", "", plaintext, rcpt)
	return resp, e
}

var errDryRun = newError(http.StatusPreconditionFailed, "DryRunOperationException",
	"The request would have succeeded, but the DryRun option is set.")

// symmetricKey is key for the operations of ENCRYPT_DECRYPT keys.
func (s *Server) symmetricKey(name string) (*serverKey, *apiError) {
	k, e := s.key(name)
	if e == nil && k.material == nil {
		return nil, invalidKeyUsage(k.arn + " key usage is KEY_AGREEMENT which is not valid for this operation.")
	}
	return k, e
}

// key resolves a KeyId: key id, key ARN, alias or alias ARN.
func (s *Server) key(name string) (*serverKey, *apiError) {
	if name == "" {
		return nil, validation("KeyId is required")
	}
	k, ok := s.keys[name]
	if !ok {
		return nil, notFound("Key '" + name + "' does not exist")
	}
	return k, nil
}

func checkEncryptionContext(ec map[string]string) *apiError {
	total := 0
	for k, v := range ec {
		if k == "" {
			return validation("EncryptionContext has an empty key")
		}
		total += len(k) + len(v)
	}
	if total > maxEncryptionContext {
		return validation("EncryptionContext is over " + strconv.Itoa(maxEncryptionContext) + " bytes")
	}
	return nil
}

// recipient is a verified Recipient: the RSA public key to encrypt the answer to.
type recipient struct {
	spki []byte
}

// authorize verifies the Recipient (if any), builds the condition context from its PCRs and evaluates the
// policy. It returns the verified recipient, or nil when the request has none.
func (s *Server) authorize(action, resource string, policy *Policy, ri *recipientInfo) (*recipient, *apiError) {
	var rcpt *recipient
	var docErr error
	context := map[string]string{}
	if ri != nil {
		if ri.KeyEncryptionAlgorithm != "" && ri.KeyEncryptionAlgorithm != KeyEncryptionAlgorithm {
			return nil, validation("Recipient.KeyEncryptionAlgorithm " + strconv.Quote(ri.KeyEncryptionAlgorithm) + " is not " + KeyEncryptionAlgorithm)
		}
		if len(ri.AttestationDocument) == 0 || len(ri.AttestationDocument) > maxAttestationDocument {
			return nil, validation("Recipient.AttestationDocument must be 1..262144 bytes")
		}
		doc, err := s.verifier.Verify(ri.AttestationDocument)
		if err == nil {
			err = checkRecipientKey(doc.PublicKey)
		}
		// A document that does not verify contributes no condition keys.
		if err != nil {
			docErr = err
		} else {
			rcpt = &recipient{spki: doc.PublicKey}
			for i, v := range doc.PCRs {
				context[condPCRPrefix+strconv.Itoa(i)] = hex.EncodeToString(v)
			}
			if v, ok := doc.PCRs[0]; ok {
				context[condImageSha384] = hex.EncodeToString(v)
			}
		}
	}
	if !policy.allows(request{principal: s.cfg.Principal, action: action, resource: resource, context: context}) {
		return nil, accessDenied("User: " + s.cfg.Principal + " is not authorized to perform: " + action +
			" on resource: " + resource + " because no resource-based policy allows the " + action + " action")
	}
	if docErr != nil {
		return nil, validation("Recipient.AttestationDocument is not valid: " + docErr.Error())
	}
	return rcpt, nil
}

// checkRecipientKey requires the document's public_key to be an RSA-2048 SubjectPublicKeyInfo, as AWS
// documents for Recipient.
func checkRecipientKey(spki []byte) error {
	if spki == nil {
		return errors.New("the document has no public_key")
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return fmt.Errorf("public_key is not a SubjectPublicKeyInfo: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok || rsaPub.N.BitLen() != 2048 {
		return errors.New("public_key is not an RSA-2048 key")
	}
	return nil
}

// answer returns the plaintext fields of a response: Plaintext alone without a recipient, and
// CiphertextForRecipient alone with one (unless a fault says otherwise).
func (s *Server) answer(op, keyARN string, plaintext []byte, rcpt *recipient) ([]byte, []byte, *apiError) {
	s.mu.Lock()
	faults := s.faults
	s.mu.Unlock()
	if rcpt == nil || faults.IgnoreRecipient {
		s.record(Issued{Operation: op, KeyID: keyARN, Plaintext: bytes.Clone(plaintext)})
		return plaintext, nil, nil
	}
	cfr, err := kmsenvelope.Build(rcpt.spki, plaintext, kmsenvelope.BuildOptions{})
	if err != nil {
		return nil, nil, internalError(err)
	}
	s.record(Issued{Operation: op, KeyID: keyARN, Plaintext: bytes.Clone(plaintext), Recipient: !faults.PlaintextWithRecipient})
	if faults.PlaintextWithRecipient {
		return plaintext, cfr, nil
	}
	return nil, cfr, nil
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
