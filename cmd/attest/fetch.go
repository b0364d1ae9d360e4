package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(cli.Command{Name: "fetch", Summary: "fetch a fresh document from attestd and verify it", Run: runFetch})
}

const fetchUsage = `usage: attest fetch --addr ADDR [--nonce HEX|random] [--key hpke|rsa] [verify flags] [--out DOC] [--out-key KEY] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT) for an
attestation document binding its key --key and a nonce (by default 32 fresh
random bytes), verifies the document (certificate chain, signature, freshness,
PCR policy, debug mode and the nonce), checks that the document's public_key
binds the full key the agent returned beside it, and prints the document.
--out saves the raw document once it has been verified, --out-key the full
public key it binds: attest seal --doc DOC --public-key KEY seals to them later
(after verifying them again).

Exit status: 0 verified, 1 failed or rejected, 2 usage error.

flags:
`

func runFetch(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("fetch")
	addr := fs.String("addr", "", addrUsage)
	key := fs.String("key", keys.HPKE, "the agent key the document binds: hpke or rsa")
	out := fs.String("out", "", "write the raw verified document (COSE_Sign1 bytes) to `FILE`")
	outKey := fs.String("out-key", "", "write the full public key the document binds (binding checked) to `FILE`, for attest seal --doc --public-key")
	timeout := fs.Duration("timeout", defaultAgentTimeout, timeoutUsage)
	vf := addVerifyFlags(fs)
	fs.Lookup("nonce").Usage = "the nonce to send and require: `HEX`, or random (32 fresh random bytes, the default)"
	pos, err := parseArgs(fs, fetchUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("unexpected argument %q", pos[0])
	}
	if *addr == "" {
		return cli.Usagef("--addr is required")
	}
	if _, err := vsockrpc.ParseAddr(*addr); err != nil {
		return cli.Usagef("--addr: %v", err)
	}
	if *key != keys.HPKE && *key != keys.RSA {
		return cli.Usagef("--key %q: want %s or %s", *key, keys.HPKE, keys.RSA)
	}
	if *timeout <= 0 {
		return cli.Usagef("--timeout must be positive")
	}

	for _, o := range []struct{ flag, path string }{{"--out", *out}, {"--out-key", *outKey}} {
		if o.path != "" {
			if err := checkOutput(o.flag, o.path); err != nil {
				return err
			}
		}
	}

	if vf.nonce == "random" {
		vf.nonce = "" // relyingparty.Fetch sends fresh random bytes
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	if opts.Nonce != nil && len(opts.Nonce) > vsockrpc.MaxNonceSize {
		return cli.Usagef("--nonce: %d bytes, want 1..%d", len(opts.Nonce), vsockrpc.MaxNonceSize)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	k, err := vf.fetchKey(ctx, *addr, *key, opts)
	if err != nil {
		return err
	}
	if err := saveFetched(k, *out, *outKey); err != nil {
		return err
	}
	return printFetched(stdout, k.Document(), k.Name(), k.PublicKey(), vf.json)
}

// fetchKey dials addr, then fetches, verifies and binds the key name
// (relyingparty.Fetch): what fetch and seal share.
func (f *verifyFlags) fetchKey(ctx context.Context, addr, name string, opts attestation.Options) (*relyingparty.Key, error) {
	c, err := vsockrpc.Dial(ctx, addr)
	if err != nil {
		return nil, checkError{checkAgent, err}
	}
	defer c.Close()
	k, err := relyingparty.Fetch(ctx, c, name, opts)
	switch {
	case errors.Is(err, relyingparty.ErrAgent):
		return nil, checkError{checkAgent, err}
	case err != nil:
		return nil, fmt.Errorf("document rejected: %w", f.hint(nil, opts, err))
	}
	return k, nil
}

// saveFetched writes the raw verified document to docPath and the full public
// key to keyPath (each when not empty).
func saveFetched(k *relyingparty.Key, docPath, keyPath string) error {
	for _, o := range []struct {
		flag, path string
		data       []byte
	}{{"--out", docPath, k.RawDocument()}, {"--out-key", keyPath, k.PublicKey()}} {
		if o.path == "" {
			continue
		}
		if err := writeFileAtomic(o.flag, o.path, func(f *os.File) error {
			_, err := f.Write(o.data)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
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
