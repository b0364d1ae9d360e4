package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/cli"
)

func init() {
	register(cli.Command{Name: "verify", Summary: "verify an attestation document: AWS chain, signature, PCR policy, debug, nonce, freshness", Run: runVerify})
}

const verifyUsage = `usage: attest verify [flags] DOC

Verifies an AWS Nitro Enclaves attestation document: the certificate chain to
the AWS Nitro Enclaves root (or --root), the ES384 signature, then the policy.
DOC is a file holding the raw COSE_Sign1 bytes or their hex (0x prefix
allowed) or base64 text; "-" reads standard input.

A PCR policy is required: --pcr N=HEX (repeatable), --pcrs-from FILE (a JSON
policy as written by "attest eif describe --policy", nitro-cli's describe-eif
or build-enclave output, or the EIF image itself), or --any-pcrs to accept any
enclave image. --pcr may add PCRs to --pcrs-from's policy but not name one of
its PCRs again: adding a flag never widens the policy. Debug-mode enclaves are
rejected unless --allow-debug. Documents older than 5 minutes (--max-age) are
rejected. --nonce, --user-data and --public-key require what the document
binds. No flag takes an empty value: leave a flag out instead.

Exit status: 0 valid, 1 rejected: the document or a file was read and is not
acceptable (the failed check is named on stderr; with --json also in a JSON
error object on stdout), 2 usage error: a flag, or a file that cannot be opened.

flags:
`

// maxDocText bounds DOC: a hex dump of the largest acceptable document.
const maxDocText = 2*attestation.MaxDocumentSize + 4096

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify")
	vf := addVerifyFlags(fs)
	ef := addExpectFlags(fs)
	pos, err := parseArgs(fs, verifyUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("want exactly one DOC argument, got %d", len(pos))
	}
	opts, err := vf.options()
	if err != nil {
		return err
	}
	full, err := ef.apply(&opts)
	if err != nil {
		return err
	}
	doc, err := readDocument(pos[0])
	if err != nil {
		return err
	}
	d, err := vf.verify(doc, opts)
	if err != nil {
		return err
	}
	if err := ef.check(d, full); err != nil {
		return err
	}
	return printDocument(stdout, d, vf.json)
}

// readDocument reads DOC (a file, "-" for standard input) as decodeDocumentText
// accepts it.
func readDocument(path string) ([]byte, error) {
	raw, err := readInput("DOC", path, maxDocText)
	if err != nil {
		return nil, err
	}
	doc, err := decodeDocumentText(raw)
	if err != nil {
		return nil, rejectf(checkInput, "DOC %s: %v", path, err)
	}
	return doc, nil
}

// decodeDocumentText accepts raw COSE_Sign1 bytes (an untagged array of four,
// 0x84, or tag 18, 0xd2) or their hex (0x prefix allowed) or base64 text
// (whitespace ignored).
func decodeDocumentText(b []byte) ([]byte, error) {
	if len(b) > 0 && (b[0] == 0x84 || b[0] == 0xd2) {
		return b, nil
	}
	text := bytes.Join(bytes.Fields(b), nil)
	if len(text) == 0 {
		return nil, errors.New("empty")
	}
	if !isText(text) {
		return nil, errors.New("neither COSE_Sign1 bytes nor their hex or base64 text")
	}
	d, ok := decodeHexOrBase64(text)
	// Base64 of a COSE_Sign1 array starts "h" (0x84) or "0" (0xd2): hex with a
	// stray character decodes as base64 to something else.
	if !ok || len(d) == 0 || (d[0] != 0x84 && d[0] != 0xd2) {
		return nil, errors.New("not valid hex or base64 of a COSE_Sign1 document")
	}
	return d, nil
}

// decodeHexOrBase64 decodes text (no whitespace) as hex, with an optional 0x
// prefix, or as base64 (standard or URL alphabet, padded or not). Text made
// of hex digits only is hex, never base64.
func decodeHexOrBase64(text []byte) ([]byte, bool) {
	h := text
	if len(h) >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if len(h) == 0 {
		return nil, false
	}
	if d, err := hex.DecodeString(string(h)); err == nil {
		return d, true
	}
	if len(h) < len(text) || isHex(text) {
		return nil, false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(string(text)); err == nil {
			return d, true
		}
	}
	return nil, false
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isText reports whether b is printable ASCII: text to decode, not raw bytes.
func isText(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
