package kmsfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Credentials are the one set of AWS credentials the server accepts.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	// SessionToken, when set, must arrive in a signed X-Amz-Security-Token header.
	SessionToken string
}

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateLayout  = "20060102T150405Z"
	// maxClockSkew is how far X-Amz-Date may be from the server's clock, as AWS allows.
	maxClockSkew = 15 * time.Minute
)

// verifySigV4 checks the request's SigV4 Authorization header for a request with path "/" and no query
// (KMS's only shape) and the given body: the header's shape, the credential scope (access key, date,
// region, service, aws4_request), X-Amz-Date, and the signature recomputed with cred's secret.
func verifySigV4(r *http.Request, body []byte, cred Credentials, region, service string, now time.Time) *apiError {
	auth := r.Header.Values("Authorization")
	if len(auth) == 0 {
		return errMissingAuth
	}
	if len(auth) != 1 {
		return incompleteSignature("more than one Authorization header")
	}
	rest, ok := strings.CutPrefix(auth[0], sigV4Algorithm+" ")
	if !ok {
		return incompleteSignature("Authorization header does not start with " + sigV4Algorithm)
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return incompleteSignature("Authorization header component " + strconv.Quote(part) + " is not key=value")
		}
		if _, dup := fields[k]; dup {
			return incompleteSignature("Authorization header repeats " + k)
		}
		fields[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if fields[k] == "" {
			return incompleteSignature("Authorization header lacks " + k)
		}
	}
	if len(fields) != 3 {
		return incompleteSignature("Authorization header has components other than Credential, SignedHeaders and Signature")
	}

	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return incompleteSignature("Credential is not ACCESSKEY/DATE/REGION/SERVICE/aws4_request")
	}
	if scope[0] != cred.AccessKeyID {
		return errUnrecognizedClient
	}
	if scope[2] != region {
		return incompleteSignature("credential scope names region " + strconv.Quote(scope[2]) + ", this endpoint is " + region)
	}
	if scope[3] != service {
		return incompleteSignature("credential scope names service " + strconv.Quote(scope[3]) + ", want " + service)
	}

	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateLayout, amzDate)
	if err != nil {
		return incompleteSignature("X-Amz-Date is missing or not " + amzDateLayout)
	}
	if scope[1] != amzDate[:8] {
		return incompleteSignature("credential scope date " + scope[1] + " is not the date of X-Amz-Date " + amzDate)
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return invalidSignature("Signature expired: " + amzDate + " is more than 15 minutes from the server's time " + now.UTC().Format(amzDateLayout))
	}

	signed := strings.Split(fields["SignedHeaders"], ";")
	for i := 1; i < len(signed); i++ {
		if signed[i-1] >= signed[i] {
			return incompleteSignature("SignedHeaders are not sorted and unique")
		}
	}
	for _, must := range []string{"host", "x-amz-date"} {
		if !slices.Contains(signed, must) {
			return incompleteSignature("SignedHeaders lack " + must)
		}
	}
	if cred.SessionToken != "" {
		if !slices.Contains(signed, "x-amz-security-token") || r.Header.Get("X-Amz-Security-Token") != cred.SessionToken {
			return errUnrecognizedClient
		}
	}
	payloadHash := sha256.Sum256(body)
	payloadHex := hex.EncodeToString(payloadHash[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHex {
		return invalidSignature("X-Amz-Content-Sha256 is not the SHA-256 of the body")
	}

	canon, e := canonicalRequest(r, signed, payloadHex)
	if e != nil {
		return e
	}
	want := sigV4Signature(cred.SecretAccessKey, scope[1:4], amzDate, canon)
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return invalidSignature("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}

// canonicalRequest is SigV4's canonical request for path "/" with no query: method, path, query, the signed
// headers (lower-case name, values trimmed, inner spaces collapsed, several values joined by commas), the
// signed header list and the hex SHA-256 of the body.
func canonicalRequest(r *http.Request, signed []string, payloadHex string) (string, *apiError) {
	var canon strings.Builder
	canon.WriteString(r.Method + "\n/\n\n")
	for _, name := range signed {
		if name != strings.ToLower(name) || name == "" {
			return "", incompleteSignature("SignedHeaders must be lower-case names")
		}
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			values = slices.Clone(r.Header.Values(name))
		}
		if len(values) == 0 {
			return "", incompleteSignature("signed header " + name + " is not in the request")
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		canon.WriteString(name + ":" + strings.Join(values, ",") + "\n")
	}
	canon.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHex)
	return canon.String(), nil
}

// sigV4Signature is the hex signature of a canonical request with scope DATE/REGION/SERVICE/aws4_request.
func sigV4Signature(secret string, dateRegionService []string, amzDate, canonical string) string {
	canonHash := sha256.Sum256([]byte(canonical))
	stringToSign := sigV4Algorithm + "\n" + amzDate + "\n" + strings.Join(dateRegionService, "/") + "/aws4_request\n" +
		hex.EncodeToString(canonHash[:])
	key := []byte("AWS4" + secret)
	for _, s := range append(slices.Clone(dateRegionService), "aws4_request") {
		key = hmacSHA256(key, s)
	}
	return hex.EncodeToString(hmacSHA256(key, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
