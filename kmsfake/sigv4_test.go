package kmsfake

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// AWS's SigV4 test suite (aws-sig-v4-test-suite): credentials, scope and time shared by every vector.
var (
	vectorCred = Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	vectorTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
)

func vectorRequest(method, signature string) *http.Request {
	r := httptest.NewRequest(method, "http://example.amazonaws.com/", nil)
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "+
		"SignedHeaders=host;x-amz-date, Signature="+signature)
	return r
}

// TestSigV4AWSVectors: the verifier accepts AWS's published get-vanilla and post-vanilla signatures, so its
// canonical request, key derivation and final HMAC are AWS's, not just consistent with the tests' signer.
func TestSigV4AWSVectors(t *testing.T) {
	for _, v := range []struct{ method, sig string }{
		{"GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
		{"POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
	} {
		if e := verifySigV4(vectorRequest(v.method, v.sig), nil, vectorCred, "us-east-1", "service", vectorTime); e != nil {
			t.Errorf("%s vanilla: %v", v.method, e)
		}
	}
}

// TestSigV4Rejects: each part of the signature and its scope is checked, with the error AWS's JSON services
// give.
func TestSigV4Rejects(t *testing.T) {
	const good = "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
	for _, tc := range []struct {
		name    string
		mod     func(r *http.Request) // applied to a POST post-vanilla request
		body    []byte
		cred    Credentials
		region  string
		service string
		at      time.Time
		want    string
	}{
		{name: "no Authorization", mod: func(r *http.Request) { r.Header.Del("Authorization") }, want: "MissingAuthenticationTokenException"},
		{name: "two Authorization headers", mod: func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) }, want: "IncompleteSignatureException"},
		{name: "other algorithm", mod: replaceAuth("AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 "), want: "IncompleteSignatureException"},
		{name: "no SignedHeaders", mod: replaceAuth("SignedHeaders=host;x-amz-date, ", ""), want: "IncompleteSignatureException"},
		{name: "extra component", mod: appendAuth(", Foo=bar"), want: "IncompleteSignatureException"},
		{name: "repeated component", mod: appendAuth(", Signature=" + good), want: "IncompleteSignatureException"},
		{name: "host not signed", mod: replaceAuth("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date"), want: "IncompleteSignatureException"},
		{name: "signed headers unsorted", mod: replaceAuth("SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date;host"), want: "IncompleteSignatureException"},
		{name: "signed header missing", mod: replaceAuth("SignedHeaders=host;x-amz-date", "SignedHeaders=host;x-amz-date;x-amz-target"), want: "IncompleteSignatureException"},
		{name: "scope short", mod: replaceAuth("/service/aws4_request", "/service"), want: "IncompleteSignatureException"},
		{name: "scope date not X-Amz-Date's", mod: replaceAuth("/20150830/", "/20150831/"), want: "IncompleteSignatureException"},
		{name: "no X-Amz-Date", mod: func(r *http.Request) { r.Header.Del("X-Amz-Date") }, want: "IncompleteSignatureException"},
		{name: "other access key", cred: Credentials{AccessKeyID: "AKIDOTHER", SecretAccessKey: vectorCred.SecretAccessKey}, want: "UnrecognizedClientException"},
		{name: "wrong secret", cred: Credentials{AccessKeyID: vectorCred.AccessKeyID, SecretAccessKey: "not the secret"}, want: "InvalidSignatureException"},
		{name: "session token required", cred: Credentials{AccessKeyID: vectorCred.AccessKeyID, SecretAccessKey: vectorCred.SecretAccessKey, SessionToken: "tok"}, want: "UnrecognizedClientException"},
		{name: "other region", region: "eu-west-1", want: "IncompleteSignatureException"},
		{name: "other service", service: "kms", want: "IncompleteSignatureException"},
		{name: "body changed", body: []byte("{}"), want: "InvalidSignatureException"},
		{name: "header value changed", mod: func(r *http.Request) { r.Host = "example2.amazonaws.com" }, want: "InvalidSignatureException"},
		{name: "signature changed", mod: replaceAuth(good, good[:63]+"c"), want: "InvalidSignatureException"},
		{name: "content hash header differs", mod: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", strings.Repeat("0", 64)) }, want: "InvalidSignatureException"},
		{name: "16 minutes late", at: vectorTime.Add(16 * time.Minute), want: "InvalidSignatureException"},
		{name: "16 minutes early", at: vectorTime.Add(-16 * time.Minute), want: "InvalidSignatureException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := vectorRequest("POST", good)
			if tc.mod != nil {
				tc.mod(r)
			}
			cred, region, service, at := vectorCred, "us-east-1", "service", vectorTime
			if tc.cred != (Credentials{}) {
				cred = tc.cred
			}
			if tc.region != "" {
				region = tc.region
			}
			if tc.service != "" {
				service = tc.service
			}
			if !tc.at.IsZero() {
				at = tc.at
			}
			e := verifySigV4(r, tc.body, cred, region, service, at)
			if e == nil || e.Type != tc.want || e.Status != http.StatusBadRequest {
				t.Fatalf("verifySigV4 = %v, want %s (400)", e, tc.want)
			}
		})
	}
	// The 15-minute window is inclusive of 15 minutes either way.
	if e := verifySigV4(vectorRequest("POST", good), nil, vectorCred, "us-east-1", "service", vectorTime.Add(15*time.Minute)); e != nil {
		t.Errorf("15 minutes late: %v", e)
	}
}

func replaceAuth(old, new string) func(*http.Request) {
	return func(r *http.Request) {
		a := r.Header.Get("Authorization")
		if !strings.Contains(a, old) {
			panic("test: " + old + " not in " + a)
		}
		r.Header.Set("Authorization", strings.Replace(a, old, new, 1))
	}
}

func appendAuth(s string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", r.Header.Get("Authorization")+s) }
}

// signRequest signs r the way an AWS SDK does for KMS (content-type, host, x-amz-date, x-amz-target and,
// with a session token, x-amz-security-token), for the server tests. Its math is the verifier's, which the
// AWS vectors above pin; the example module signs with the real SDK.
func signRequest(r *http.Request, body []byte, cred Credentials, region string, at time.Time) {
	amzDate := at.UTC().Format(amzDateLayout)
	r.Header.Set("X-Amz-Date", amzDate)
	signed := []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	if cred.SessionToken != "" {
		r.Header.Set("X-Amz-Security-Token", cred.SessionToken)
		signed = append(signed, "x-amz-security-token")
	}
	if r.Host == "" {
		r.Host = r.URL.Host // what the client will send
	}
	sum := sha256.Sum256(body)
	canon, e := canonicalRequest(r, signed, hex.EncodeToString(sum[:]))
	if e != nil {
		panic(e)
	}
	scope := []string{amzDate[:8], region, "kms"}
	r.Header.Set("Authorization", sigV4Algorithm+" Credential="+cred.AccessKeyID+"/"+strings.Join(scope, "/")+
		"/aws4_request, SignedHeaders="+strings.Join(signed, ";")+", Signature="+sigV4Signature(cred.SecretAccessKey, scope, amzDate, canon))
}
