package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(cli.Command{Name: "seal", Summary: "verify a document, then seal a secret that only its enclave can open", Run: runSeal})
}

const sealUsage = `usage: attest seal --addr ADDR --key hpke|rsa [verify flags] [--aad TEXT | --aad-file FILE]
                  [--oaep-hash sha256|sha1] [--in FILE|-] [--out FILE|-] [--base64] [--json]
       attest seal --doc DOC --public-key KEY --key hpke|rsa [verify flags] ...

Online (--addr): fetches a document binding the enclave's key --key with a fresh
random nonce, verifies it (certificate chain, signature, freshness, PCR policy,
debug mode, nonce) and checks that it binds the full key returned beside it, then
seals the input to that key. Offline (--doc, --public-key): verifies a document and
key saved by attest fetch --out DOC --out-key KEY in the same way (a document older
than --max-age is refused) and seals to them.

hpke: an attestd-seal-v1 envelope (HPKE, HKDF-SHA256, AES-256-GCM; input up to
64 KiB); --aad is context it authenticates and the enclave gets back on open.
rsa: a raw 256-byte RSAES-OAEP ciphertext, MGF1 with the OAEP hash --oaep-hash
(sha256, or sha1 as pycryptodome's PKCS1_OAEP; input up to 190 or 214 bytes).
The enclave opens either through attestd's local API (open): docs/relying-party.md.

Exit status: 0 sealed, 1 failed or rejected, 2 usage error.

flags:
`

func runSeal(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seal")
	// parseArgs refuses an empty value for every flag: "" means not given.
	addr := fs.String("addr", "", "attestd's parent API `ADDR` (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT): fetch a fresh document")
	docPath := fs.String("doc", "", "offline: a saved document `DOC` (raw, hex or base64), with --public-key")
	keyPath := fs.String("public-key", "", "offline: the full public key `FILE` the document binds (attest fetch --out-key; raw, hex, base64 or PEM)")
	key := fs.String("key", keys.HPKE, "the key to seal to: hpke or rsa")
	aad := fs.String("aad", "", "hpke only: context `TEXT` the envelope authenticates (at most 1024 bytes)")
	aadFile := fs.String("aad-file", "", "hpke only: read the aad from `FILE`")
	oaepHash := fs.String("oaep-hash", "", "rsa only: the OAEP and MGF1 hash, `sha256` (the default) or sha1")
	in := fs.String("in", "-", "read the secret from `FILE` (-: standard input)")
	out := fs.String("out", "-", "write the sealed result to `FILE` (-: standard output)")
	b64 := fs.Bool("base64", false, "write the result as standard base64 text (one line) instead of binary")
	timeout := fs.Duration("timeout", defaultAgentTimeout, timeoutUsage)
	vf := addVerifyFlags(fs)
	fs.Lookup("nonce").Usage = "online: the nonce to send and require, `HEX` or random (the default); offline: require this nonce"
	fs.Lookup("json").Usage = "print a JSON report (the verified document, the key and, when --out is standard output, the result; bytes as hex); on failure a JSON error object"
	pos, err := parseArgs(fs, sealUsage, args, stdout)
	if err != nil {
		return err
	}
	offline := *docPath != "" || *keyPath != ""
	switch {
	case len(pos) > 0:
		return cli.Usagef("unexpected argument %q", pos[0])
	case *addr != "" && offline:
		return cli.Usagef("--addr (online) cannot be combined with --doc and --public-key (offline)")
	case *addr == "" && !offline:
		return cli.Usagef("give --addr ADDR to fetch a document, or --doc DOC and --public-key KEY to seal offline")
	case offline && (*docPath == "" || *keyPath == ""):
		return cli.Usagef("offline sealing needs both --doc and --public-key")
	case *key != keys.HPKE && *key != keys.RSA:
		return cli.Usagef("--key %q: want %s or %s", *key, keys.HPKE, keys.RSA)
	case *aad != "" && *aadFile != "":
		return cli.Usagef("--aad and --aad-file are mutually exclusive")
	case (*aad != "" || *aadFile != "") && *key != keys.HPKE:
		return cli.Usagef("--aad and --aad-file apply to --key hpke only (RSA-OAEP carries no aad)")
	case *oaepHash != "" && *key != keys.RSA:
		return cli.Usagef("--oaep-hash applies to --key rsa only")
	case *oaepHash != "" && *oaepHash != seal.OAEPSHA256 && *oaepHash != seal.OAEPSHA1:
		return cli.Usagef("--oaep-hash %q: want %s or %s", *oaepHash, seal.OAEPSHA256, seal.OAEPSHA1)
	case *timeout <= 0:
		return cli.Usagef("--timeout must be positive")
	case vf.at != "" || vf.atDocTime:
		// Audit modes: they prove a document was valid then, not that its key may be sealed to now.
		return cli.Usagef("--at and --at-doc-time are for audits: attest seal verifies as of now")
	}
	if *addr != "" {
		if _, err := vsockrpc.ParseAddr(*addr); err != nil {
			return cli.Usagef("--addr: %v", err)
		}
		if vf.nonce == "random" {
			vf.nonce = "" // relyingparty.Fetch sends fresh random bytes
		}
	} else if vf.nonce == "random" {
		return cli.Usagef("--nonce random: a saved document can only be checked against the nonce it was fetched with (HEX)")
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	if opts.Nonce != nil && len(opts.Nonce) > vsockrpc.MaxNonceSize {
		return cli.Usagef("--nonce: %d bytes, want 1..%d", len(opts.Nonce), vsockrpc.MaxNonceSize)
	}

	so := relyingparty.SealOptions{OAEPHash: *oaepHash}
	switch {
	case *aad != "":
		if len(*aad) > seal.MaxAAD {
			return cli.Usagef("--aad is %d bytes, over %d", len(*aad), seal.MaxAAD)
		}
		so.AAD = []byte(*aad)
	case *aadFile != "":
		if so.AAD, err = readInput("--aad-file", *aadFile, seal.MaxAAD); err != nil {
			return err
		}
	}
	// Everything local is read before the agent is asked: a bad file costs no document.
	secret, err := readInput("--in", *in, seal.MaxPlaintext)
	if err != nil {
		return err
	}
	var doc, full []byte
	if offline {
		raw, err := readInput("--doc", *docPath, maxDocText)
		if err != nil {
			return err
		}
		keyText, err := readInput("--public-key", *keyPath, maxPublicKeyFile)
		if err != nil {
			return err
		}
		if doc, err = decodeDocumentText(raw); err != nil {
			return rejectf(checkInput, "--doc %s: %v", *docPath, err)
		}
		if full, err = decodeKeyText(keyText); err != nil {
			return rejectf(checkInput, "--public-key %s: %v", *keyPath, err)
		}
	}

	var k *relyingparty.Key
	if offline {
		if k, err = relyingparty.Check(*key, doc, full, opts); err != nil {
			return fmt.Errorf("document rejected: %w", vf.hint(doc, opts, err))
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if k, err = vf.fetchKey(ctx, *addr, *key, opts); err != nil {
			return err
		}
	}
	sealed, err := k.Seal(secret, so)
	if err != nil {
		return rejectf(checkInput, "--in %s: %v", *in, err) // too long for the key
	}
	result := sealed
	if *b64 {
		result = append([]byte(base64.StdEncoding.EncodeToString(sealed)), '\n')
	}
	toStdout := *out == "-"
	if !toStdout {
		if err := writeFileAtomic("--out", *out, func(f *os.File) error {
			_, err := f.Write(result)
			return err
		}); err != nil {
			return err
		}
	}
	if vf.json {
		return printSealed(stdout, k, sealed, *out, toStdout)
	}
	if toStdout {
		_, err = stdout.Write(result)
	}
	return err
}

// printSealed prints the --json report: the verified document, the key and
// the result (base64, when it went to standard output) or where it went.
func printSealed(w io.Writer, k *relyingparty.Key, sealed []byte, out string, inline bool) error {
	var d bytes.Buffer
	if err := printDocument(&d, k.Document(), true); err != nil {
		return err
	}
	r := struct {
		Document json.RawMessage `json:"document"`
		Key      fetchedKey      `json:"key"`
		Bytes    int             `json:"sealed_bytes"`
		Sealed   hexBytes        `json:"sealed,omitempty"`
		Out      string          `json:"out,omitempty"`
	}{Document: d.Bytes(), Key: describeKey(k.Name(), k.Document().PublicKey, k.PublicKey()), Bytes: len(sealed)}
	if inline {
		r.Sealed = sealed
	} else {
		r.Out = out
	}
	return writeJSON(w, r)
}
