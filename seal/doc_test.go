package seal

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestDocWorkedExample decodes the worked example of docs/sealing.md: the key is the one
// DeriveKeyPair makes from ikm 00..1f, the envelope's hex and base64 agree, and it opens to the
// plaintext and aad the text says.
func TestDocWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/sealing.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(doc), "## 3. Worked example")
	sec, _, _ = strings.Cut(sec, "\n## ")
	blocks := strings.Split(sec, "```")
	if len(blocks) < 7 {
		t.Fatalf("%d pieces in the worked example", len(blocks))
	}
	r := exampleKey(t)
	sk, err := r.priv.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	keyBlock := blocks[1]
	for name, want := range map[string][]byte{"skR": sk, "pkR": r.public, "B  ": r.binding} {
		if !strings.Contains(keyBlock, name+" = "+hex.EncodeToString(want)+"\n") {
			t.Errorf("%s in the doc is not %x", name, want)
		}
	}
	var h strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(blocks[3]), "\n") {
		field, _, _ := strings.Cut(line, "  ")
		h.WriteString(field)
	}
	env, err := hex.DecodeString(h.String())
	if err != nil {
		t.Fatal(err)
	}
	text, err := base64.StdEncoding.DecodeString(strings.TrimSpace(blocks[5]))
	if err != nil || !bytes.Equal(text, env) {
		t.Fatalf("the text form is not the envelope: %v", err)
	}
	if len(env) != 164 {
		t.Fatalf("envelope is %d bytes", len(env))
	}
	pt, aad, err := OpenHPKE(r.priv, r.binding, env)
	if err != nil || string(pt) != "attested secret" || string(aad) != "example context" {
		t.Fatalf("open: %q %q %v", pt, aad, err)
	}
}
