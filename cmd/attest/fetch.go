package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(command{name: "fetch", summary: "fetch a fresh document from attestd and verify it", run: runFetch})
}

// fetchNonceSize is the size of the random nonce fetch sends by default.
const fetchNonceSize = 32

const fetchUsage = `usage: attest fetch --addr ADDR [--nonce HEX|random] [--key hpke|rsa] [verify flags] [--out FILE] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT) for an
attestation document binding its key --key and a nonce (by default 32 fresh
random bytes), verifies the document (certificate chain, signature, freshness,
PCR policy, debug mode and the nonce), checks that the document's public_key
binds the full key the agent returned beside it, and prints the document.
--out saves the raw document once it has been verified.

Exit status: 0 verified, 1 failed or rejected, 2 usage error.

flags:
`

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fetch")
	addr := fs.String("addr", "", addrUsage)
	key := fs.String("key", keys.HPKE, "the agent key the document binds: hpke or rsa")
	out := fs.String("out", "", "write the raw verified document (COSE_Sign1 bytes) to `FILE`")
	timeout := fs.Duration("timeout", defaultAgentTimeout, timeoutUsage)
	vf := addVerifyFlags(fs)
	fs.Lookup("nonce").Usage = "the nonce to send and require: `HEX`, or random (32 fresh random bytes, the default)"
	pos, err := parseArgs(fs, fetchUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *addr == "" {
		return usagef("--addr is required")
	}
	if _, err := vsockrpc.ParseAddr(*addr); err != nil {
		return usagef("--addr: %v", err)
	}
	if *key != keys.HPKE && *key != keys.RSA {
		return usagef("--key %q: want %s or %s", *key, keys.HPKE, keys.RSA)
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive")
	}

	var nonce []byte
	switch vf.nonce {
	case "", "random": // "": not given (parseArgs refuses an empty value)
		nonce = make([]byte, fetchNonceSize)
		rand.Read(nonce)
	default:
		if nonce, err = hex.DecodeString(vf.nonce); err != nil {
			return usagef("--nonce: not hex: %v", err)
		}
		if len(nonce) == 0 || len(nonce) > vsockrpc.MaxNonceSize {
			return usagef("--nonce: %d bytes, want 1..%d", len(nonce), vsockrpc.MaxNonceSize)
		}
	}
	// The verifier requires exactly the nonce that was sent.
	vf.nonce = hex.EncodeToString(nonce)
	opts, err := vf.options()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := vsockrpc.Dial(ctx, *addr)
	if err != nil {
		return checkError{checkAgent, err}
	}
	defer c.Close()
	res, err := c.Attest(ctx, nonce, *key)
	if err != nil {
		return rejectf(checkAgent, "agent: %w", err)
	}
	doc, err := vf.verify(res.Document, opts)
	if err != nil {
		return fmt.Errorf("document rejected: %w", err)
	}
	if err := keys.CheckBinding(*key, doc.PublicKey, res.PublicKey); err != nil {
		return rejectf(checkKeyBinding, "document rejected: %w", err)
	}
	if *out != "" {
		if err := writeFileAtomic("--out", *out, func(f *os.File) error {
			_, err := f.Write(res.Document)
			return err
		}); err != nil {
			return err
		}
	}
	return printFetched(stdout, doc, *key, res.PublicKey, vf.json)
}

// fetchedKey describes the checked key binding.
type fetchedKey struct {
	Name      string   `json:"name"`
	Algorithm string   `json:"algorithm"`
	Binding   string   `json:"binding"`
	PublicKey hexBytes `json:"public_key"` // the full key
}

func describeKey(name string, docKey, full []byte) fetchedKey {
	k := fetchedKey{Name: name, PublicKey: full}
	switch name {
	case keys.HPKE:
		id := binary.BigEndian.Uint16(docKey[len(keys.HPKEBindingTag):])
		k.Algorithm = fmt.Sprintf("HPKE KEM 0x%04x", id)
		switch id {
		case keys.KEMIDMLKEM768X25519:
			k.Algorithm += " (MLKEM768-X25519)"
		case keys.KEMIDX25519:
			k.Algorithm += " (DHKEM(X25519, HKDF-SHA256))"
		}
		k.Binding = keys.BindingDigest
	case keys.RSA:
		k.Algorithm = fmt.Sprintf("RSA-%d (SPKI DER)", keys.RSABits)
		k.Binding = keys.BindingWhole
	}
	return k
}

// printFetched prints the verified document and the checked key.
func printFetched(w io.Writer, doc *attestation.Document, name string, full []byte, asJSON bool) error {
	k := describeKey(name, doc.PublicKey, full)
	var d bytes.Buffer
	if err := printDocument(&d, doc, asJSON); err != nil {
		return err
	}
	if asJSON {
		b, err := json.MarshalIndent(struct {
			Document json.RawMessage `json:"document"`
			Key      fetchedKey      `json:"key"`
		}{d.Bytes(), k}, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	how := "the document carries it whole"
	if k.Binding == keys.BindingDigest {
		how = "the document carries " + keys.HPKEBindingTag + " || KEM id || SHA-384(key)"
	}
	fmt.Fprintf(&d, "key          %s: %s, %d bytes; binding checked (%s)\n", k.Name, k.Algorithm, len(full), how)
	_, err := w.Write(d.Bytes())
	return err
}
