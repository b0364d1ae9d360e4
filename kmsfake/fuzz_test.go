package kmsfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The seed corpora are in testdata/fuzz/<Fuzz name>/ (go test replays them).

// FuzzParsePolicy: any document either fails to parse or yields a policy that evaluates without panicking;
// an accepted policy re-encoded by encoding/json parses again (the subset is closed under a round trip).
func FuzzParsePolicy(f *testing.F) {
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := ParsePolicy(doc)
		if err != nil {
			return
		}
		p.allows(request{principal: "arn:aws:iam::111122223333:role/r", action: "kms:Decrypt", resource: "*",
			context: map[string]string{condImageSha384: "aa", condPCRPrefix + "0": "aa"}})
		var v any
		if err := json.Unmarshal([]byte(doc), &v); err != nil {
			t.Fatalf("accepted a policy encoding/json cannot read: %v", err)
		}
		again, _ := json.Marshal(v)
		if _, err := ParsePolicy(string(again)); err != nil {
			t.Fatalf("accepted %q but not its re-encoding %q: %v", doc, again, err)
		}
	})
}

// FuzzSigV4Header: an arbitrary Authorization header never panics the verifier and is never accepted.
func FuzzSigV4Header(f *testing.F) {
	f.Fuzz(func(t *testing.T, auth, amzDate string) {
		r := httptest.NewRequest("POST", "http://example.amazonaws.com/", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", amzDate)
		if e := verifySigV4(r, nil, vectorCred, "us-east-1", "service", vectorTime); e == nil {
			t.Fatalf("accepted Authorization %q, X-Amz-Date %q", auth, amzDate)
		}
	})
}

var (
	fuzzServerOnce sync.Once
	fuzzServer     *Server
)

// FuzzRequest: any signed request body for any target gets a JSON answer with a KMS error shape, or a 200
// that never carries Plaintext beside CiphertextForRecipient.
func FuzzRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, op string, body []byte) {
		if op == "GenerateDataKeyPair" && bytes.Contains(body, []byte("RSA_")) {
			return // RSA key generation takes 50 ms to seconds: too slow to fuzz; TestGenerateDataKeyPair covers it
		}
		fuzzServerOnce.Do(func() {
			e := newEnclave(t)
			fuzzServer = newFixture(t, e.root, policyFor("", nil, "kms:*"), policyFor("", nil, "kms:GenerateRandom")).srv
		})
		r := httptest.NewRequest(http.MethodPost, "http://kms.us-east-1.amazonaws.com/", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("X-Amz-Target", "TrentService."+op)
		signRequest(r, body, testCred, testRegion, time.Now())
		w := httptest.NewRecorder()
		fuzzServer.ServeHTTP(w, r)
		var out map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("answer %q is not a JSON object: %v", w.Body.Bytes(), err)
		}
		if w.Code != http.StatusOK {
			if out["__type"] == nil || out["message"] == nil || len(out) != 2 {
				t.Fatalf("error answer %d %q is not {__type, message}", w.Code, w.Body.Bytes())
			}
			return
		}
		if out["Plaintext"] != nil && out["CiphertextForRecipient"] != nil {
			t.Fatalf("Plaintext beside CiphertextForRecipient: %q", w.Body.Bytes())
		}
	})
}
