package relyingparty_test

import (
	"context"
	"encoding/hex"
	"log"
	"os"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/vsockrpc"
)

// Fetch a document binding the enclave's HPKE key, verify it against a pinned
// PCR0, and seal a secret that only that enclave can open.
func ExampleFetch() {
	pcr0, _ := hex.DecodeString(os.Getenv("PCR0")) // the enclave image you trust
	ctx := context.Background()
	c, err := vsockrpc.Dial(ctx, "vsock://16:5005")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	k, err := relyingparty.Fetch(ctx, c, keys.HPKE, attestation.Options{PCRs: map[int][][]byte{0: {pcr0}}})
	if err != nil {
		log.Fatal(err) // unreachable agent, rejected document or key binding
	}
	envelope, err := k.Seal([]byte("the database password"), relyingparty.SealOptions{AAD: []byte("db")})
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(envelope) // send it to the enclave application, which opens it through attestd's local API
}

// Re-check a document and key saved by `attest fetch --out DOC --out-key KEY`
// and seal to its RSA key the way pycryptodome's PKCS1_OAEP does.
func ExampleCheck() {
	doc, _ := os.ReadFile("doc.cbor")
	full, _ := os.ReadFile("key.der")
	k, err := relyingparty.Check(keys.RSA, doc, full, attestation.Options{AnyPCRs: true}) // a stale document is refused
	if err != nil {
		log.Fatal(err)
	}
	ct, err := k.Seal([]byte("secret"), relyingparty.SealOptions{OAEPHash: "sha1"})
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(ct)
}
