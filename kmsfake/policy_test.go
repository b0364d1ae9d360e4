package kmsfake

import (
	"strings"
	"testing"
)

func TestParsePolicyRejects(t *testing.T) {
	const head = `{"Version":"2012-10-17","Statement":`
	stmt := func(s string) string { return head + s + `}` }
	for name, doc := range map[string]string{
		"empty":                   ``,
		"no statement":            `{"Version":"2012-10-17"}`,
		"empty statement list":    stmt(`[]`),
		"old version":             `{"Version":"2008-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}`,
		"unknown top field":       `{"Version":"2012-10-17","Foo":1,"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}`,
		"duplicate Statement":     `{"Version":"2012-10-17","Statement":[],"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}`,
		"trailing data":           stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}`) + `x`,
		"effect maybe":            stmt(`{"Effect":"Maybe","Principal":"*","Action":"kms:*","Resource":"*"}`),
		"no principal":            stmt(`{"Effect":"Allow","Action":"kms:*","Resource":"*"}`),
		"principal not star":      stmt(`{"Effect":"Allow","Principal":"arn:aws:iam::111122223333:root","Action":"kms:*","Resource":"*"}`),
		"principal service":       stmt(`{"Effect":"Allow","Principal":{"Service":"x"},"Action":"kms:*","Resource":"*"}`),
		"NotAction":               stmt(`{"Effect":"Allow","Principal":"*","NotAction":"kms:Decrypt","Resource":"*"}`),
		"no action":               stmt(`{"Effect":"Allow","Principal":"*","Resource":"*"}`),
		"action of s3":            stmt(`{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}`),
		"inner wildcard":          stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*Key","Resource":"*"}`),
		"no resource":             stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*"}`),
		"StringLike":              stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringLike":{"kms:RecipientAttestation:PCR0":"a*"}}}`),
		"other condition key":     stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:app":"x"}}}`),
		"PCR32":                   stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR32":"a"}}}`),
		"PCR01":                   stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR01":"a"}}}`),
		"empty condition value":   stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR0":""}}}`),
		"empty condition list":    stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR0":[]}}}`),
		"empty condition op":      stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{}}}`),
		"duplicate condition key": stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:RecipientAttestation:PCR0":"a","kms:RecipientAttestation:PCR0":"b"}}}`),
		"statement unknown field": stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Foo":1}`),
	} {
		if _, err := ParsePolicy(doc); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}

func TestPolicyEvaluation(t *testing.T) {
	const image = "aa"
	p, err := ParsePolicy(`{"Version":"2012-10-17","Statement":[
	  {"Sid":"enclave","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:Decrypt","kms:Generate*"],
	   "Resource":"*","Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:ImageSha384":["` + image + `","bb"]}}},
	  {"Sid":"no debug images","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*",
	   "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:PCR0":"00"}}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	attested := map[string]string{condImageSha384: "AA", "kms:RecipientAttestation:PCR0": "AA"}
	for _, tc := range []struct {
		name string
		r    request
		want bool
	}{
		{"account principal, allowed image", request{"arn:aws:sts::111122223333:assumed-role/enclave/i-1", "kms:Decrypt", "arn:x", attested}, true},
		{"second allowed value", request{"arn:aws:iam::111122223333:role/r", "kms:GenerateDataKey", "arn:x", map[string]string{condImageSha384: "bb"}}, true},
		{"wildcard action", request{"arn:aws:iam::111122223333:role/r", "kms:GenerateRandom", "*", attested}, true},
		{"action not listed", request{"arn:aws:iam::111122223333:role/r", "kms:Encrypt", "arn:x", attested}, false},
		{"other account", request{"arn:aws:iam::999999999999:role/r", "kms:Decrypt", "arn:x", attested}, false},
		{"account prefix is not the account", request{"arn:aws:iam::1111222233334:role/r", "kms:Decrypt", "arn:x", attested}, false},
		{"no attestation", request{"arn:aws:iam::111122223333:role/r", "kms:Decrypt", "arn:x", nil}, false},
		{"explicit deny wins", request{"arn:aws:iam::111122223333:role/r", "kms:Decrypt", "arn:x",
			map[string]string{condImageSha384: "aa", "kms:RecipientAttestation:PCR0": strings.Repeat("0", 2)}}, false},
	} {
		if got := p.allows(tc.r); got != tc.want {
			t.Errorf("%s: allows = %v, want %v", tc.name, got, tc.want)
		}
	}
}
