package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/attestd/attestd/attestation"
)

func init() {
	register(command{name: "verify", summary: "verify an attestation document: AWS chain, signature, PCR policy, debug, nonce, freshness", run: runVerify})
}

const verifyUsage = `usage: attest verify [flags] DOC

Verifies an AWS Nitro Enclaves attestation document: the certificate chain to
the AWS Nitro Enclaves root (or --root), the ES384 signature, then the policy.
DOC is a file holding the raw COSE_Sign1 bytes or their hex or base64 text;
"-" reads standard input.

A PCR policy is required: --pcr N=HEX (repeatable), --pcrs-from FILE (a JSON
policy as written by "attest eif describe --policy", or the EIF image itself),
or --any-pcrs to accept any enclave image. Debug-mode enclaves are rejected unless --allow-debug.
Documents older than 5 minutes (--max-age) are rejected.

Exit status: 0 valid, 1 rejected (the failed check is named on stderr),
2 usage error.

flags:
`

// maxDocText bounds DOC: a hex dump of the largest acceptable document.
const maxDocText = 2*attestation.MaxDocumentSize + 4096

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vf := addVerifyFlags(fs)
	fs.Usage = func() { fmt.Fprint(stderr, verifyUsage); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usagef("want exactly one DOC argument, got %d", len(pos))
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	raw, err := readLimited(pos[0], maxDocText)
	if err != nil {
		return usagef("DOC: %v", err)
	}
	doc, err := decodeDocumentText(raw)
	if err != nil {
		return err
	}
	d, err := attestation.Verify(doc, opts)
	if err != nil {
		return err
	}
	return printDocument(stdout, d, vf.json)
}

// decodeDocumentText accepts raw COSE_Sign1 bytes (an untagged array of four,
// 0x84, or tag 18, 0xd2) or their hex or base64 text (whitespace ignored).
func decodeDocumentText(b []byte) ([]byte, error) {
	if len(b) > 0 && (b[0] == 0x84 || b[0] == 0xd2) {
		return b, nil
	}
	text := bytes.Join(bytes.Fields(b), nil)
	if len(text) == 0 {
		return nil, errors.New("DOC is empty")
	}
	if d, err := hex.DecodeString(string(text)); err == nil {
		return d, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(string(text)); err == nil {
			return d, nil
		}
	}
	return nil, errors.New("DOC is neither COSE_Sign1 bytes nor their hex or base64 text")
}
