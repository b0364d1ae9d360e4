package kmsfake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/kmsenvelope"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
)

const (
	testRegion    = "us-east-1"
	testAccount   = "111122223333"
	testPrincipal = "arn:aws:iam::111122223333:role/enclave"
	testKeyID     = "1234abcd-12ab-34cd-56ef-1234567890ab"
	otherKeyID    = "0987dcba-09fe-87dc-65ba-ab0987654321"
)

var testCred = Credentials{AccessKeyID: "AKIAFAKEKMSTEST00001", SecretAccessKey: "fake-kms-secret-for-tests-only"}

// enclave is a software NSM (the mock's PKI) and an RSA-2048 recipient key whose SPKI its documents carry.
type enclave struct {
	sess *nsm.Session
	root *x509.Certificate
	pcr  map[int]string // lower-case hex of PCR0, PCR1, PCR2
	key  *rsa.PrivateKey
	spki []byte
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func newEnclave(t *testing.T) *enclave {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	enc := mockenclave.New(t, mocknsm.Config{})
	e := &enclave{sess: enc.Session, root: enc.Root, pcr: map[int]string{}, key: rsaKey}
	for i := range 3 {
		e.pcr[i] = hex.EncodeToString(enc.PCR(t, uint16(i)))
	}
	var err error
	if e.spki, err = x509.MarshalPKIXPublicKey(&rsaKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *enclave) document(t *testing.T, publicKey []byte) []byte {
	t.Helper()
	doc, err := e.sess.Attestation(context.Background(), nsm.AttestationRequest{PublicKey: publicKey})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// recipient is the request's Recipient for a fresh document carrying the enclave's RSA key.
func (e *enclave) recipient(t *testing.T) map[string]any {
	return map[string]any{"AttestationDocument": e.document(t, e.spki), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
}

// policyFor allows the actions to testPrincipal under the given attestation conditions (none: unconditioned).
func policyFor(op string, conds map[string]string, actions ...string) string {
	st := map[string]any{"Effect": "Allow", "Principal": map[string]any{"AWS": testPrincipal}, "Action": actions, "Resource": "*"}
	if len(conds) > 0 {
		st["Condition"] = map[string]any{op: conds}
	}
	b, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{st}})
	return string(b)
}

type fixture struct {
	srv *Server
	ts  *httptest.Server
}

func newFixture(t *testing.T, root *x509.Certificate, keyPolicy, randomPolicy string) *fixture {
	t.Helper()
	srv, err := New(Config{
		Region: testRegion, Account: testAccount, Credentials: testCred, Principal: testPrincipal, Root: root,
		Keys: []Key{
			{ID: testKeyID, Alias: "alias/enclave", Policy: keyPolicy},
			{ID: otherKeyID, Policy: policyFor("", nil, "kms:*")},
		},
		RandomPolicy: randomPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &fixture{srv: srv, ts: ts}
}

// call sends a signed KMS request and returns the status and the decoded JSON object.
func (f *fixture) call(t *testing.T, op string, body any) (int, map[string]json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return f.send(t, op, b, contentType, true)
}

func (f *fixture) send(t *testing.T, op string, body []byte, ct string, sign bool) (int, map[string]json.RawMessage) {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, f.ts.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", ct)
	r.Header.Set("X-Amz-Target", "TrentService."+op)
	if sign {
		signRequest(r, body, testCred, testRegion, time.Now())
	}
	resp, err := f.ts.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Content-Type"); got != contentType {
		t.Errorf("response Content-Type %q", got)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %q: %v", raw, err)
	}
	return resp.StatusCode, out
}

// wantError checks a KMS error answer: the status and exactly {"__type", "message"}.
func wantError(t *testing.T, status int, out map[string]json.RawMessage, wantStatus int, wantType string) {
	t.Helper()
	var typ string
	_ = json.Unmarshal(out["__type"], &typ)
	if status != wantStatus || typ != wantType || len(out) != 2 || out["message"] == nil {
		t.Fatalf("got %d %v, want %d %s with a message", status, out, wantStatus, wantType)
	}
}

func blob(t *testing.T, out map[string]json.RawMessage, field string) []byte {
	t.Helper()
	var b []byte
	if err := json.Unmarshal(out[field], &b); err != nil || len(b) == 0 {
		t.Fatalf("%s: %s, %v", field, out[field], err)
	}
	return b
}

// TestRecipientRoundTrip: GenerateDataKey and Decrypt with a Recipient from the allowed image answer with
// CiphertextForRecipient (and no Plaintext), which opens with the recipient key to the data key the server
// generated; the same calls without a Recipient are denied by the attestation condition.
func TestRecipientRoundTrip(t *testing.T) {
	e := newEnclave(t)
	policy := policyFor("StringEqualsIgnoreCase", map[string]string{condImageSha384: e.pcr[0]}, "kms:Decrypt", "kms:GenerateDataKey")
	f := newFixture(t, e.root, policy, policyFor("", nil, "kms:GenerateRandom"))

	status, out := f.call(t, "GenerateDataKey", map[string]any{"KeyId": "alias/enclave", "KeySpec": "AES_256",
		"EncryptionContext": map[string]string{"app": "test"}, "Recipient": e.recipient(t)})
	if status != http.StatusOK {
		t.Fatalf("GenerateDataKey: %d %v", status, out)
	}
	if _, ok := out["Plaintext"]; ok {
		t.Fatal("Plaintext returned with a Recipient")
	}
	var keyID string
	_ = json.Unmarshal(out["KeyId"], &keyID)
	if keyID != f.srv.KeyARN(testKeyID) {
		t.Fatalf("KeyId %q", keyID)
	}
	dataKey, err := kmsenvelope.Open(e.key, blob(t, out, "CiphertextForRecipient"))
	if err != nil {
		t.Fatal(err)
	}
	issued := f.srv.Issued()
	if len(issued) != 1 || !bytes.Equal(issued[0].Plaintext, dataKey) || len(dataKey) != 32 || !issued[0].Recipient {
		t.Fatalf("opened %x; server issued %+v", dataKey, issued)
	}

	ciphertextBlob := blob(t, out, "CiphertextBlob")
	status, out = f.call(t, "Decrypt", map[string]any{"CiphertextBlob": ciphertextBlob, "KeyId": testKeyID,
		"EncryptionContext": map[string]string{"app": "test"}, "Recipient": e.recipient(t)})
	if status != http.StatusOK {
		t.Fatalf("Decrypt: %d %v", status, out)
	}
	if _, ok := out["Plaintext"]; ok {
		t.Fatal("Decrypt returned Plaintext with a Recipient")
	}
	again, err := kmsenvelope.Open(e.key, blob(t, out, "CiphertextForRecipient"))
	if err != nil || !bytes.Equal(again, dataKey) {
		t.Fatalf("Decrypt opened to %x, %v; want %x", again, err, dataKey)
	}

	// Without a Recipient, the condition key is absent: denied.
	status, out = f.call(t, "Decrypt", map[string]any{"CiphertextBlob": ciphertextBlob, "EncryptionContext": map[string]string{"app": "test"}})
	wantError(t, status, out, http.StatusBadRequest, "AccessDeniedException")
	status, out = f.call(t, "GenerateDataKey", map[string]any{"KeyId": testKeyID, "NumberOfBytes": 64})
	wantError(t, status, out, http.StatusBadRequest, "AccessDeniedException")

	// GenerateRandom with a Recipient, under its own (IAM) policy.
	status, out = f.call(t, "GenerateRandom", map[string]any{"NumberOfBytes": 1024, "Recipient": e.recipient(t)})
	if status != http.StatusOK || out["Plaintext"] != nil || len(out) != 1 {
		t.Fatalf("GenerateRandom: %d %v", status, out)
	}
	random, err := kmsenvelope.Open(e.key, blob(t, out, "CiphertextForRecipient"))
	issued = f.srv.Issued()
	if err != nil || len(random) != 1024 || !bytes.Equal(issued[len(issued)-1].Plaintext, random) {
		t.Fatalf("GenerateRandom opened %d bytes, %v", len(random), err)
	}
	// Without a Recipient the unconditioned GenerateRandom policy answers in plaintext, as KMS does.
	status, out = f.call(t, "GenerateRandom", map[string]any{"NumberOfBytes": 16})
	if status != http.StatusOK || len(blob(t, out, "Plaintext")) != 16 || out["CiphertextForRecipient"] != nil {
		t.Fatalf("GenerateRandom without Recipient: %d %v", status, out)
	}
}

// TestPolicyConditions: the attestation condition keys against documents of the mock image.
func TestPolicyConditions(t *testing.T) {
	e := newEnclave(t)
	wrong := strings.Repeat("ab", 48)
	for _, tc := range []struct {
		name  string
		op    string
		conds map[string]string
		allow bool
	}{
		{"ImageSha384 matches", "StringEqualsIgnoreCase", map[string]string{condImageSha384: e.pcr[0]}, true},
		{"ImageSha384 in upper case, IgnoreCase", "StringEqualsIgnoreCase", map[string]string{condImageSha384: strings.ToUpper(e.pcr[0])}, true},
		{"ImageSha384 in upper case, StringEquals", "StringEquals", map[string]string{condImageSha384: strings.ToUpper(e.pcr[0])}, false},
		{"wrong image", "StringEqualsIgnoreCase", map[string]string{condImageSha384: wrong}, false},
		{"PCR0 PCR1 PCR2 match", "StringEqualsIgnoreCase", map[string]string{"kms:RecipientAttestation:PCR0": e.pcr[0],
			"kms:RecipientAttestation:PCR1": e.pcr[1], "kms:RecipientAttestation:PCR2": e.pcr[2]}, true},
		{"PCR1 wrong", "StringEqualsIgnoreCase", map[string]string{"kms:RecipientAttestation:PCR0": e.pcr[0],
			"kms:RecipientAttestation:PCR1": wrong}, false},
		{"PCR20 absent from the document", "StringEqualsIgnoreCase", map[string]string{"kms:RecipientAttestation:PCR20": wrong}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, e.root, policyFor(tc.op, tc.conds, "kms:GenerateDataKey"), policyFor("", nil, "kms:GenerateRandom"))
			status, out := f.call(t, "GenerateDataKey", map[string]any{"KeyId": testKeyID, "KeySpec": "AES_256", "Recipient": e.recipient(t)})
			if tc.allow {
				if status != http.StatusOK || out["CiphertextForRecipient"] == nil {
					t.Fatalf("%d %v", status, out)
				}
				return
			}
			wantError(t, status, out, http.StatusBadRequest, "AccessDeniedException")
			if len(f.srv.Issued()) != 0 {
				t.Fatal("a denied request issued a plaintext")
			}
		})
	}
}

// TestRecipientDocumentChecks: a document that does not verify, or whose key KMS could not encrypt to, never
// gets an answer: AccessDenied under an attestation condition, ValidationException otherwise.
func TestRecipientDocumentChecks(t *testing.T) {
	e := newEnclave(t)
	other := newEnclave(t) // another mock PKI: its documents do not chain to e.root
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSPKI, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	conditioned := policyFor("StringEqualsIgnoreCase", map[string]string{condImageSha384: e.pcr[0]}, "kms:GenerateDataKey")
	open := policyFor("", nil, "kms:GenerateDataKey")
	for _, tc := range []struct {
		name      string
		recipient map[string]any
		policy    string
		want      string
	}{
		{"other root, conditioned", map[string]any{"AttestationDocument": other.document(t, other.spki)}, conditioned, "AccessDeniedException"},
		{"other root, unconditioned", map[string]any{"AttestationDocument": other.document(t, other.spki)}, open, "ValidationException"},
		{"truncated document", map[string]any{"AttestationDocument": e.document(t, e.spki)[:100]}, conditioned, "AccessDeniedException"},
		{"no public_key", map[string]any{"AttestationDocument": e.document(t, nil)}, open, "ValidationException"},
		{"EC public_key", map[string]any{"AttestationDocument": e.document(t, ecSPKI)}, open, "ValidationException"},
		{"public_key not an SPKI", map[string]any{"AttestationDocument": e.document(t, []byte("not a key"))}, conditioned, "AccessDeniedException"},
		{"other algorithm", map[string]any{"AttestationDocument": e.document(t, e.spki), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}, open, "ValidationException"},
		{"empty document", map[string]any{"AttestationDocument": []byte{}}, open, "ValidationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, e.root, tc.policy, policyFor("", nil, "kms:GenerateRandom"))
			status, out := f.call(t, "GenerateDataKey", map[string]any{"KeyId": testKeyID, "KeySpec": "AES_256", "Recipient": tc.recipient})
			wantError(t, status, out, http.StatusBadRequest, tc.want)
			if len(f.srv.Issued()) != 0 {
				t.Fatal("a rejected request issued a plaintext")
			}
		})
	}
}

// TestDecryptErrors: blobs are authenticated, bound to their key and encryption context.
func TestDecryptErrors(t *testing.T) {
	e := newEnclave(t)
	f := newFixture(t, e.root, policyFor("", nil, "kms:*"), policyFor("", nil, "kms:GenerateRandom"))
	status, out := f.call(t, "GenerateDataKey", map[string]any{"KeyId": testKeyID, "NumberOfBytes": 32, "EncryptionContext": map[string]string{"a": "1"}})
	if status != http.StatusOK {
		t.Fatalf("%d %v", status, out)
	}
	b := blob(t, out, "CiphertextBlob")
	plain := blob(t, out, "Plaintext")
	tampered := bytes.Clone(b)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name string
		req  map[string]any
		want string
	}{
		{"tampered", map[string]any{"CiphertextBlob": tampered, "EncryptionContext": map[string]string{"a": "1"}}, "InvalidCiphertextException"},
		{"other context", map[string]any{"CiphertextBlob": b, "EncryptionContext": map[string]string{"a": "2"}}, "InvalidCiphertextException"},
		{"no context", map[string]any{"CiphertextBlob": b}, "InvalidCiphertextException"},
		{"not a blob", map[string]any{"CiphertextBlob": []byte("garbage")}, "InvalidCiphertextException"},
		{"other key named", map[string]any{"CiphertextBlob": b, "KeyId": otherKeyID, "EncryptionContext": map[string]string{"a": "1"}}, "IncorrectKeyException"},
		{"unknown key named", map[string]any{"CiphertextBlob": b, "KeyId": "alias/none", "EncryptionContext": map[string]string{"a": "1"}}, "NotFoundException"},
		{"other algorithm", map[string]any{"CiphertextBlob": b, "EncryptionAlgorithm": "RSAES_OAEP_SHA_256", "EncryptionContext": map[string]string{"a": "1"}}, "ValidationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := f.call(t, "Decrypt", tc.req)
			wantError(t, status, out, http.StatusBadRequest, tc.want)
		})
	}
	status, out = f.call(t, "Decrypt", map[string]any{"CiphertextBlob": b, "KeyId": f.srv.KeyARN(testKeyID), "EncryptionContext": map[string]string{"a": "1"}})
	if status != http.StatusOK || !bytes.Equal(blob(t, out, "Plaintext"), plain) {
		t.Fatalf("Decrypt: %d %v", status, out)
	}
	status, out = f.call(t, "Decrypt", map[string]any{"CiphertextBlob": b, "EncryptionContext": map[string]string{"a": "1"}, "DryRun": true})
	wantError(t, status, out, http.StatusPreconditionFailed, "DryRunOperationException")
}

// TestProtocolErrors: the JSON protocol's envelope is checked before any operation runs.
func TestProtocolErrors(t *testing.T) {
	e := newEnclave(t)
	f := newFixture(t, e.root, policyFor("", nil, "kms:*"), policyFor("", nil, "kms:GenerateRandom"))
	for _, tc := range []struct {
		name   string
		op     string
		body   string
		ct     string
		unsig  bool
		status int
		want   string
	}{
		{"unsigned", "GenerateRandom", `{"NumberOfBytes":8}`, contentType, true, 400, "MissingAuthenticationTokenException"},
		{"JSON 1.0 content type", "GenerateRandom", `{"NumberOfBytes":8}`, "application/x-amz-json-1.0", false, 400, "SerializationException"},
		{"unknown operation", "Encrypt", `{}`, contentType, false, 400, "UnknownOperationException"},
		{"unknown field", "GenerateRandom", `{"NumberOfBytes":8,"Extra":1}`, contentType, false, 400, "SerializationException"},
		{"duplicate field", "GenerateRandom", `{"NumberOfBytes":8,"NumberOfBytes":9}`, contentType, false, 400, "SerializationException"},
		{"duplicate field, other case", "GenerateRandom", `{"NumberOfBytes":8,"numberofbytes":9}`, contentType, false, 400, "SerializationException"},
		{"trailing data", "GenerateRandom", `{"NumberOfBytes":8} {}`, contentType, false, 400, "SerializationException"},
		{"not base64", "Decrypt", `{"CiphertextBlob":"!!"}`, contentType, false, 400, "SerializationException"},
		{"too few bytes", "GenerateRandom", `{"NumberOfBytes":0}`, contentType, false, 400, "ValidationException"},
		{"too many bytes", "GenerateRandom", `{"NumberOfBytes":1025}`, contentType, false, 400, "ValidationException"},
		{"KeySpec and NumberOfBytes", "GenerateDataKey", `{"KeyId":"` + testKeyID + `","KeySpec":"AES_256","NumberOfBytes":32}`, contentType, false, 400, "ValidationException"},
		{"no KeyId", "GenerateDataKey", `{"KeySpec":"AES_256"}`, contentType, false, 400, "ValidationException"},
		{"unknown key", "GenerateDataKey", `{"KeyId":"nope","KeySpec":"AES_256"}`, contentType, false, 400, "NotFoundException"},
		{"body over the limit", "GenerateRandom", `{"NumberOfBytes":8,"Pad":"` + strings.Repeat("x", MaxRequestBody) + `"}`, contentType, false, 413, "SerializationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := f.send(t, tc.op, []byte(tc.body), tc.ct, !tc.unsig)
			wantError(t, status, out, tc.status, tc.want)
		})
	}
	resp, err := f.ts.Client().Get(f.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// TestFaults: the two unsafe behaviours seen in real stand-ins, for clients to test their refusal against.
func TestFaults(t *testing.T) {
	e := newEnclave(t)
	f := newFixture(t, e.root, policyFor("", nil, "kms:*"), policyFor("", nil, "kms:GenerateRandom"))
	f.srv.SetFaults(Faults{PlaintextWithRecipient: true})
	status, out := f.call(t, "GenerateRandom", map[string]any{"NumberOfBytes": 32, "Recipient": e.recipient(t)})
	if status != http.StatusOK || out["Plaintext"] == nil || out["CiphertextForRecipient"] == nil {
		t.Fatalf("PlaintextWithRecipient: %d %v", status, out)
	}
	f.srv.SetFaults(Faults{IgnoreRecipient: true})
	status, out = f.call(t, "GenerateRandom", map[string]any{"NumberOfBytes": 32, "Recipient": e.recipient(t)})
	if status != http.StatusOK || out["Plaintext"] == nil || out["CiphertextForRecipient"] != nil {
		t.Fatalf("IgnoreRecipient: %d %v", status, out)
	}
}

func TestNewRejects(t *testing.T) {
	e := newEnclave(t)
	good := Config{Region: testRegion, Account: testAccount, Credentials: testCred, Principal: testPrincipal, Root: e.root,
		Keys: []Key{{ID: testKeyID, Policy: policyFor("", nil, "kms:*")}}, RandomPolicy: policyFor("", nil, "kms:GenerateRandom")}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no region":         func(c *Config) { c.Region = "" },
		"bad account":       func(c *Config) { c.Account = "12" },
		"no secret":         func(c *Config) { c.Credentials.SecretAccessKey = "" },
		"no principal":      func(c *Config) { c.Principal = "" },
		"no root":           func(c *Config) { c.Root = nil },
		"no keys":           func(c *Config) { c.Keys = nil },
		"empty key policy":  func(c *Config) { c.Keys = []Key{{ID: testKeyID}} },
		"empty random":      func(c *Config) { c.RandomPolicy = "" },
		"key id with slash": func(c *Config) { c.Keys = []Key{{ID: "a/b", Policy: good.RandomPolicy}} },
		"bad alias":         func(c *Config) { c.Keys = []Key{{ID: testKeyID, Alias: "enclave", Policy: good.RandomPolicy}} },
		"same key id twice": func(c *Config) { c.Keys = append(c.Keys, c.Keys[0]) },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
