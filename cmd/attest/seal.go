package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(command{name: "seal", summary: "verify a document, then seal a secret that only its enclave can open", run: runSeal})
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
The enclave opens either through attestd's local API (open). docs/sealing.md.

Exit status: 0 sealed, 1 failed or rejected, 2 usage error.

flags:
`

// sealMaxDoc bounds --doc: the raw document or its hex or base64 text.
const sealMaxDoc = maxDocText

// sealMaxKey bounds --public-key: an X-Wing key is 1,216 bytes, an RSA-2048 SPKI 294.
const sealMaxKey = 4096

// setString is a string flag that knows whether it was given, so that an
// empty value is refused instead of meaning "not given".
type setString struct {
	v   string
	set bool
}

func (s *setString) String() string { return s.v }
func (s *setString) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty value")
	}
	s.v, s.set = v, true
	return nil
}

func runSeal(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("attest seal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, docPath, keyPath, aad, aadFile, oaepHash, in, out setString
	fs.Var(&addr, "addr", "attestd's parent API `ADDR` (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT): fetch a fresh document")
	fs.Var(&docPath, "doc", "offline: a saved document `DOC` (raw, hex or base64), with --public-key")
	fs.Var(&keyPath, "public-key", "offline: the full public key `FILE` the document binds (attest fetch --out-key)")
	key := fs.String("key", keys.HPKE, "the key to seal to: hpke or rsa")
	fs.Var(&aad, "aad", "hpke only: context `TEXT` the envelope authenticates (at most 1024 bytes)")
	fs.Var(&aadFile, "aad-file", "hpke only: read the aad from `FILE`")
	fs.Var(&oaepHash, "oaep-hash", "rsa only: the OAEP and MGF1 hash, `sha256` (the default) or sha1")
	fs.Var(&in, "in", "read the secret from `FILE` (- or not given: standard input)")
	fs.Var(&out, "out", "write the sealed result to `FILE` (- or not given: standard output)")
	b64 := fs.Bool("base64", false, "write the result as standard base64 text (one line) instead of binary")
	timeout := fs.Duration("timeout", defaultAgentTimeout, timeoutUsage)
	vf := addVerifyFlags(fs)
	fs.Lookup("nonce").Usage = "online: the nonce to send and require, `HEX` or random (the default); offline: require this nonce"
	fs.Lookup("json").Usage = "print a JSON report (the key, the verified document and, when --out is standard output, the result in base64)"
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), sealUsage)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if err == errHelp {
			fs.Usage()
		}
		return err
	}
	offline := docPath.set || keyPath.set
	switch {
	case len(pos) > 0:
		return usagef("unexpected argument %q", pos[0])
	case addr.set && offline:
		return usagef("--addr (online) cannot be combined with --doc and --public-key (offline)")
	case !addr.set && !offline:
		return usagef("give --addr ADDR to fetch a document, or --doc DOC and --public-key KEY to seal offline")
	case offline && !(docPath.set && keyPath.set):
		return usagef("offline sealing needs both --doc and --public-key")
	case *key != keys.HPKE && *key != keys.RSA:
		return usagef("--key %q: want %s or %s", *key, keys.HPKE, keys.RSA)
	case aad.set && aadFile.set:
		return usagef("--aad and --aad-file are mutually exclusive")
	case (aad.set || aadFile.set) && *key != keys.HPKE:
		return usagef("--aad and --aad-file apply to --key hpke only (RSA-OAEP carries no aad)")
	case oaepHash.set && *key != keys.RSA:
		return usagef("--oaep-hash applies to --key rsa only")
	case oaepHash.set && oaepHash.v != seal.OAEPSHA256 && oaepHash.v != seal.OAEPSHA1:
		return usagef("--oaep-hash %q: want %s or %s", oaepHash.v, seal.OAEPSHA256, seal.OAEPSHA1)
	case *timeout <= 0:
		return usagef("--timeout must be positive")
	}
	if addr.set {
		if _, err := vsockrpc.ParseAddr(addr.v); err != nil {
			return usagef("--addr: %v", err)
		}
		if vf.nonce == "random" {
			vf.nonce = "" // relyingparty.Fetch sends fresh random bytes
		}
	} else if vf.nonce == "random" {
		return usagef("--nonce random: a saved document can only be checked against the nonce it was fetched with (HEX)")
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	if opts.Nonce != nil && (len(opts.Nonce) == 0 || len(opts.Nonce) > vsockrpc.MaxNonceSize) {
		return usagef("--nonce: %d bytes, want 1..%d", len(opts.Nonce), vsockrpc.MaxNonceSize)
	}

	so := relyingparty.SealOptions{OAEPHash: oaepHash.v}
	switch {
	case aad.set:
		if len(aad.v) > seal.MaxAAD {
			return usagef("--aad is %d bytes, over %d", len(aad.v), seal.MaxAAD)
		}
		so.AAD = []byte(aad.v)
	case aadFile.set:
		if so.AAD, err = readInput("--aad-file", aadFile.v, seal.MaxAAD); err != nil {
			return err
		}
	}
	// Everything local is read before the agent is asked: a bad file costs no document.
	inPath := "-"
	if in.set {
		inPath = in.v
	}
	secret, err := readInput("--in", inPath, seal.MaxPlaintext)
	if err != nil {
		return err
	}
	var doc, full []byte
	if offline {
		raw, err := readInput("--doc", docPath.v, sealMaxDoc)
		if err != nil {
			return err
		}
		if full, err = readInput("--public-key", keyPath.v, sealMaxKey); err != nil {
			return err
		}
		if doc, err = decodeDocumentText(raw); err != nil {
			return err
		}
	}

	var k *relyingparty.Key
	if offline {
		if k, err = relyingparty.Check(*key, doc, full, opts); err != nil {
			return fmt.Errorf("document rejected: %w", err)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if k, err = fetchKey(ctx, addr.v, *key, opts); err != nil {
			return err
		}
	}
	sealed, err := k.Seal(secret, so)
	if err != nil {
		return err
	}
	result := sealed
	if *b64 {
		result = append([]byte(base64.StdEncoding.EncodeToString(sealed)), '\n')
	}
	toStdout := !out.set || out.v == "-"
	if !toStdout {
		if err := os.WriteFile(out.v, result, 0o644); err != nil {
			return err
		}
	}
	if vf.json {
		return printSealed(stdout, k, sealed, out.v, toStdout)
	}
	if toStdout {
		_, err = stdout.Write(result)
	}
	return err
}

// readInput reads the file a flag names: one that cannot be opened is a usage
// error, one that is too large is read and rejected.
func readInput(flagName, path string, limit int64) ([]byte, error) {
	b, err := readLimited(path, limit)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return nil, usagef("%s: %v", flagName, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return b, nil
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
		Sealed   []byte          `json:"sealed,omitempty"` // base64
		Out      string          `json:"out,omitempty"`
	}{Document: d.Bytes(), Key: describeKey(k.Name(), k.Document().PublicKey, k.PublicKey()), Bytes: len(sealed)}
	if inline {
		r.Sealed = sealed
	} else {
		r.Out = out
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
