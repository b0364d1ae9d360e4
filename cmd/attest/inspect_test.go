package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// TestInspect (item 14): inspect prints a document's fields and certificates,
// marked UNVERIFIED, for documents verify rejects too, and decodes as strictly.
func TestInspect(t *testing.T) {
	// What verify says of the same document, to compare with.
	vout := wantExit(t, 0, "", "verify", "--json", "--at-doc-time", "--any-pcrs", prodDoc)
	var v struct {
		ModuleID  string            `json:"module_id"`
		Timestamp string            `json:"timestamp"`
		PCRs      map[string]string `json:"pcrs"`
		PublicKey string            `json:"public_key"`
		UserData  string            `json:"user_data"`
		Nonce     string            `json:"nonce"`
		Chain     []struct {
			SHA256 string `json:"sha256"`
		} `json:"chain"`
	}
	if err := json.Unmarshal([]byte(vout), &v); err != nil {
		t.Fatal(err)
	}
	// The document has expired: verify rejects it today, inspect still shows it.
	wantExit(t, 1, "validity check failed", "verify", "--any-pcrs", prodDoc)
	out := wantExit(t, 0, "", "inspect", prodDoc)
	if !strings.HasPrefix(out, "UNVERIFIED attestation document") {
		t.Errorf("not marked unverified first:\n%s", out)
	}
	for _, want := range []string{"module_id    " + v.ModuleID, "timestamp    " + v.Timestamp, "PCR0         " + prodPCR0,
		"nonce        10 bytes " + v.Nonce, "user_data    14 bytes " + v.UserData, "signature    96 bytes ", "(UNVERIFIED)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The certificates as PEM: the leaf, then the bundle root first, the reverse of verify's chain.
	var sums []string
	for rest := []byte(out); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			t.Errorf("PEM block %q", b.Type)
		}
		s := sha256.Sum256(b.Bytes)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	n := len(v.Chain)
	if len(sums) != n || sums[0] != v.Chain[0].SHA256 {
		t.Fatalf("PEM certificates %v, chain %v", sums, v.Chain)
	}
	for i := 1; i < n; i++ {
		if sums[i] != v.Chain[n-i].SHA256 {
			t.Errorf("cabundle[%d] sha256 %s, chain[%d] %s", i-1, sums[i], n-i, v.Chain[n-i].SHA256)
		}
	}

	// --json: the same fields, hex, and "unverified": true.
	jout := wantExit(t, 0, "", "inspect", "--json", debugDoc)
	var j struct {
		Unverified bool              `json:"unverified"`
		Warning    string            `json:"warning"`
		ModuleID   string            `json:"module_id"`
		Timestamp  string            `json:"timestamp"`
		Digest     string            `json:"digest"`
		PCRs       map[string]string `json:"pcrs"`
		PublicKey  hexJSON           `json:"public_key"`
		UserData   hexJSON           `json:"user_data"`
		Nonce      *string           `json:"nonce"`
		Signature  hexJSON           `json:"signature"`
		Debug      bool              `json:"debug"`
		Certs      []jsonInspectCert `json:"certificates"`
	}
	dec := json.NewDecoder(strings.NewReader(jout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		t.Fatalf("%v\n%s", err, jout)
	}
	if !j.Unverified || !strings.Contains(j.Warning, "UNVERIFIED") || !j.Debug || j.Nonce != nil || len(j.Signature) != 96 ||
		string(j.UserData) != "hello, world!" || j.Digest != "SHA384" || len(j.Certs) < 2 || j.Certs[0].Role != "certificate (leaf)" ||
		j.Certs[1].Role != "cabundle[0]" || !strings.HasPrefix(j.Certs[0].PEM, "-----BEGIN CERTIFICATE-----") || j.Certs[0].Subject == "" {
		t.Errorf("inspect --json:\n%s", jout)
	}

	// As strict as verify: trailing bytes are refused, naming the check.
	doc, err := os.ReadFile(prodDoc)
	if err != nil {
		t.Fatal(err)
	}
	verifyStdin = bytes.NewReader(append(doc, 0))
	defer func() { verifyStdin = os.Stdin }()
	wantExit(t, 1, "cbor check failed", "inspect", "-")
}
