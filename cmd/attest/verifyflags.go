package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/keys"
)

// verifyFlags are the verification flags shared by `attest verify`, `attest
// fetch` and every command that verifies a document: define them with
// addVerifyFlags, parse with parseArgs (which refuses empty values), then call
// options, or verify to get the verified document with hints on rejection.
type verifyFlags struct {
	root       string
	at         string
	atDocTime  bool
	pcrs       pcrFlag
	pcrsFrom   string
	anyPCRs    bool
	allowDebug bool
	nonce      string // "" when not given: parseArgs refuses an empty value
	maxAge     maxAgeFlag
	json       bool
}

// addVerifyFlags defines the verification flags on fs.
func addVerifyFlags(fs *flag.FlagSet) *verifyFlags {
	f := &verifyFlags{}
	fs.StringVar(&f.root, "root", "", "trust anchor `FILE.pem` (default: the embedded AWS Nitro Enclaves Root-G1)")
	fs.StringVar(&f.at, "at", "", "verify as of this `RFC3339` time instead of now")
	fs.BoolVar(&f.atDocTime, "at-doc-time", false, "verify as of the document's own timestamp (audit: proves AWS signed it then, not that it is fresh)")
	fs.Var(&f.pcrs, "pcr", "require PCR `N=HEX` (repeatable; several values for one N allow any of them; an N also named by --pcrs-from is refused)")
	fs.StringVar(&f.pcrsFrom, "pcrs-from", "", "read the PCR policy from a JSON `FILE` ({\"pcrs\": {\"0\": [\"HEX\", ...], ...}}, or nitro-cli's describe-eif/build-enclave output {\"Measurements\": ...}) or measure it from an EIF image (PCR0, 1, 2, and 8 if signed); --pcr may add other PCRs, not the same ones")
	fs.BoolVar(&f.anyPCRs, "any-pcrs", false, "accept any PCR values: explicitly no PCR policy")
	fs.BoolVar(&f.allowDebug, "allow-debug", false, "accept debug-mode enclaves (PCR0, PCR1, PCR2 zero; the parent can read their memory)")
	fs.StringVar(&f.nonce, "nonce", "", "require this nonce (`HEX`)")
	fs.Var(&f.maxAge, "max-age", "maximum age of the document timestamp, a Go `DURATION` such as 30s or 10m, or \"off\" (default 5m)")
	fs.BoolVar(&f.json, "json", false, "print JSON (bytes as hex); on failure a JSON error object {\"error\": {\"check\": ..., \"message\": ...}}")
	return f
}

// maxRootFile bounds a --root PEM file.
const maxRootFile = 64 << 10

// options turns the flags into attestation.Options. Flags that do not parse
// and files that cannot be opened are usage errors; files that were read and
// are not acceptable are rejections (exit 1).
func (f *verifyFlags) options() (attestation.Options, error) {
	var o attestation.Options
	if f.root != "" {
		data, err := readInput("--root", f.root, maxRootFile)
		if err != nil {
			return o, err
		}
		if o.Root, err = attestation.ParseRootPEM(data); err != nil {
			return o, rejectf(checkInput, "--root %s: %v", f.root, err)
		}
	}
	if f.at != "" {
		if f.atDocTime {
			return o, cli.Usagef("--at and --at-doc-time are mutually exclusive")
		}
		t, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return o, cli.Usagef("--at: want an RFC 3339 time such as 2025-09-23T12:00:00Z: %v", err)
		}
		o.Time = t
	}
	o.AtDocumentTime = f.atDocTime

	pinned := len(f.pcrs.policy) != 0 || f.pcrsFrom != ""
	switch {
	case f.anyPCRs && pinned:
		return o, cli.Usagef("--any-pcrs cannot be combined with --pcr or --pcrs-from")
	case f.anyPCRs:
		o.AnyPCRs = true
	case !pinned:
		return o, cli.Usagef("no PCR policy: pin the enclave image with --pcr N=HEX or --pcrs-from FILE, or pass --any-pcrs to accept any image")
	default:
		o.PCRs = map[int][][]byte{}
		if f.pcrsFrom != "" {
			p, err := loadPCRPolicyFile(f.pcrsFrom)
			if err != nil {
				return o, err
			}
			o.PCRs = p
		}
		for idx := range 32 {
			vals, ok := f.pcrs.policy[idx]
			if !ok {
				continue
			}
			// Adding --pcr must never widen the file's policy: one source per PCR.
			if _, dup := o.PCRs[idx]; dup {
				return o, cli.Usagef("PCR%d is named by both --pcrs-from and --pcr: give each PCR in one place", idx)
			}
			o.PCRs[idx] = vals
		}
	}
	o.AllowDebug = f.allowDebug
	if f.nonce != "" {
		n, err := hex.DecodeString(f.nonce)
		if err != nil {
			return o, cli.Usagef("--nonce: not hex: %v", err)
		}
		o.Nonce = n
	}
	o.MaxAge = f.maxAge.d
	return o, nil
}

// verify verifies doc with opts (from options) and, when it is rejected,
// says the obvious next step where there is one.
func (f *verifyFlags) verify(doc []byte, opts attestation.Options) (*attestation.Document, error) {
	d, err := attestation.Verify(doc, opts)
	if err != nil {
		return nil, f.hint(doc, opts, err)
	}
	return d, nil
}

// hint adds the obvious next step, where there is one, to err, the rejection
// of doc under opts (doc may be nil when the caller no longer has it).
func (f *verifyFlags) hint(doc []byte, opts attestation.Options, err error) error {
	switch {
	case errors.Is(err, attestation.ErrDebug):
		return hinted{err, "--allow-debug accepts it, for development only: the parent instance can read a debug enclave's memory"}
	case doc != nil && errors.Is(err, attestation.ErrValidity) && !opts.AtDocumentTime && opts.Time.IsZero():
		// A genuine document whose certificates have since expired verifies as of its own time.
		o := opts
		o.AtDocumentTime, o.MaxAge = true, 0
		if _, err2 := attestation.Verify(doc, o); err2 == nil || laterCheck(err2) {
			return hinted{err, "the document was valid when issued: --at-doc-time verifies it as of its own timestamp, for audits (it proves AWS signed it then, not that it is fresh)"}
		}
	}
	return err
}

// laterCheck reports whether err is from a check Verify makes after the
// certificates' validity and the signature.
func laterCheck(err error) bool {
	for _, k := range []error{attestation.ErrFreshness, attestation.ErrDebug, attestation.ErrPCRPolicy,
		attestation.ErrNonce, attestation.ErrPublicKey, attestation.ErrUserData} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// hinted is an error with the next step the user can take.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() + "; " + h.hint }
func (h hinted) Unwrap() error { return h.err }

// expectFlags require what the document binds besides the PCRs and nonce:
// user_data and the full public key the agent returned (`attest verify`).
type expectFlags struct {
	userData  string
	publicKey string
	key       string
}

// addExpectFlags defines --user-data, --public-key and --key on fs.
func addExpectFlags(fs *flag.FlagSet) *expectFlags {
	e := &expectFlags{}
	fs.StringVar(&e.userData, "user-data", "", "require the document's user_data to be these bytes (`HEX`)")
	fs.StringVar(&e.publicKey, "public-key", "", "require the document's public_key to bind this full public key, as the agent returned it (`FILE`: raw bytes, hex, base64 or PEM; attest fetch --json and attest describe --json print it as hex)")
	fs.StringVar(&e.key, "key", "", "which agent key --public-key is, by `NAME`: hpke or rsa (default: inferred from the document's public_key)")
	return e
}

// maxPublicKeyFile bounds --public-key: the largest key (an ML-KEM-768 +
// X25519 HPKE key, 1216 bytes) as hex with room for PEM armour.
const maxPublicKeyFile = 8 << 10

// apply adds the user_data requirement to o and reads the public key, if any.
func (e *expectFlags) apply(o *attestation.Options) (publicKey []byte, err error) {
	if e.key != "" {
		if e.publicKey == "" {
			return nil, cli.Usagef("--key names the key of --public-key: give --public-key too")
		}
		if e.key != keys.HPKE && e.key != keys.RSA {
			return nil, cli.Usagef("--key %q: want %s or %s", e.key, keys.HPKE, keys.RSA)
		}
	}
	if e.userData != "" {
		if o.UserData, err = hex.DecodeString(e.userData); err != nil {
			return nil, cli.Usagef("--user-data: not hex: %v", err)
		}
	}
	if e.publicKey == "" {
		return nil, nil
	}
	data, err := readInput("--public-key", e.publicKey, maxPublicKeyFile)
	if err != nil {
		return nil, err
	}
	if publicKey, err = decodeKeyText(data); err != nil {
		return nil, rejectf(checkInput, "--public-key %s: %v", e.publicKey, err)
	}
	return publicKey, nil
}

// check checks that doc's public_key binds the full key (nil: nothing to check).
func (e *expectFlags) check(doc *attestation.Document, full []byte) error {
	if full == nil {
		return nil
	}
	if doc.PublicKey == nil {
		return rejectf(checkKeyBinding, "key-binding check failed: --public-key given, but the document has no public_key")
	}
	name := e.key
	if name == "" {
		name = keys.RSA
		if bytes.HasPrefix(doc.PublicKey, []byte(keys.HPKEBindingTag)) {
			name = keys.HPKE
		}
	}
	if err := keys.CheckBinding(name, doc.PublicKey, full); err != nil {
		return rejectf(checkKeyBinding, "key-binding check failed: --public-key %s: %v", e.publicKey, err)
	}
	return nil
}

// decodeKeyText accepts a public key as a PEM block, hex or base64 text, or
// raw bytes.
func decodeKeyText(b []byte) ([]byte, error) {
	if blk, rest := pem.Decode(b); blk != nil {
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("data after the PEM block")
		}
		if len(blk.Bytes) == 0 {
			return nil, errors.New("empty PEM block")
		}
		return blk.Bytes, nil
	}
	text := bytes.Join(bytes.Fields(b), nil)
	if len(text) == 0 {
		return nil, errors.New("empty")
	}
	if !isText(text) {
		return b, nil // raw key bytes
	}
	if d, ok := decodeHexOrBase64(text); ok && len(d) != 0 {
		return d, nil
	}
	return nil, errors.New("not valid hex or base64")
}

// pcrFlag collects repeated --pcr N=HEX values.
type pcrFlag struct{ policy map[int][][]byte }

func (p *pcrFlag) String() string { return "" }

func (p *pcrFlag) Set(v string) error {
	n, h, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want N=HEX, got %q", v)
	}
	idx, err := pcrIndex(n)
	if err != nil {
		return err
	}
	val, err := pcrValue(h)
	if err != nil {
		return fmt.Errorf("PCR%d: %v", idx, err)
	}
	if p.policy == nil {
		p.policy = map[int][][]byte{}
	}
	p.policy[idx] = append(p.policy[idx], val)
	return nil
}

// pcrIndex parses a decimal PCR index 0..31 written without sign or leading
// zeros.
func pcrIndex(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 31 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("PCR index %q is not a number 0..31", s)
	}
	return n, nil
}

// pcrValue parses a 48-byte (96 hex digit) PCR value.
func pcrValue(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("value is not hex: %v", err)
	}
	if len(b) != 48 {
		return nil, fmt.Errorf("value is %d bytes, want 48 (96 hex digits)", len(b))
	}
	return b, nil
}

// maxAgeFlag is a positive duration or "off" (attestation.NoMaxAge).
type maxAgeFlag struct{ d time.Duration }

func (m *maxAgeFlag) String() string {
	if m.d == attestation.NoMaxAge {
		return "off"
	}
	if m.d == 0 {
		return ""
	}
	return m.d.String()
}

func (m *maxAgeFlag) Set(v string) error {
	if v == "off" {
		m.d = attestation.NoMaxAge
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 30s or 10m, or \"off\"")
	}
	m.d = d
	return nil
}

// maxPolicyFile bounds a PCR policy file (32 indexes with a few values each
// fit in a few KiB).
const maxPolicyFile = 1 << 20

// loadPCRPolicyFile reads --pcrs-from: an EIF image (by its magic), whose
// PCR0, 1, 2 and 8 if signed are measured, or a JSON policy. A file that
// cannot be opened is a usage error, one that does not parse a rejection.
func loadPCRPolicyFile(path string) (map[int][][]byte, error) {
	if p, isEIF, err := eifPCRPolicy(path); isEIF {
		if err != nil {
			return nil, rejectf(checkInput, "--pcrs-from %s: %v", path, err)
		}
		return p, nil
	}
	data, err := readInput("--pcrs-from", path, maxPolicyFile)
	if err != nil {
		return nil, err
	}
	p, err := parsePCRPolicy(data)
	if err != nil {
		return nil, rejectf(checkInput, "--pcrs-from %s: %v", path, err)
	}
	return p, nil
}

// parsePCRPolicy parses a PCR policy strictly (no duplicate keys, indexes
// 0..31, 48-byte values) in one of two shapes:
//   - attest's own, {"pcrs": {"0": ["<96 hex>", ...], "8": [...]}}, with no
//     other key, at least one index and at least one value per index;
//   - nitro-cli's describe-eif or build-enclave output, {"Measurements":
//     {"HashAlgorithm": "Sha384 { ... }", "PCR0": "<96 hex>", "PCR1": ...,
//     "PCR2": ..., "PCR8": ...}, ...}: one value per PCR; the other keys of
//     describe-eif (EifVersion, Metadata, ...) are not policy and are skipped.
func parsePCRPolicy(data []byte) (map[int][][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := jsonDelim(dec, '{'); err != nil {
		return nil, err
	}
	var policy map[int][][]byte
	seen := map[string]bool{}
	for dec.More() {
		key, err := jsonString(dec)
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		switch key {
		case "pcrs":
			policy, err = parsePCRMap(dec)
		case "Measurements":
			policy, err = parseMeasurements(dec)
		default:
			var skip json.RawMessage
			if err = dec.Decode(&skip); err != nil {
				err = fmt.Errorf("invalid JSON: %v", err)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if err := jsonDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the policy object")
	}
	switch {
	case seen["pcrs"] && seen["Measurements"]:
		return nil, fmt.Errorf("both \"pcrs\" and \"Measurements\": want one policy")
	case seen["pcrs"] && len(seen) > 1:
		for k := range seen {
			if k != "pcrs" {
				return nil, fmt.Errorf("unknown key %q (want only \"pcrs\")", k)
			}
		}
	case !seen["pcrs"] && !seen["Measurements"]:
		return nil, fmt.Errorf("no policy: want {\"pcrs\": {...}} or nitro-cli's {\"Measurements\": {...}}")
	}
	if len(policy) == 0 {
		return nil, fmt.Errorf("the policy names no PCR")
	}
	return policy, nil
}

// nitroHashAlgorithm is the HashAlgorithm nitro-cli writes beside SHA-384
// measurements (Rust's Debug form of its hasher).
const nitroHashAlgorithm = "Sha384 { ... }"

// parseMeasurements parses nitro-cli's Measurements object.
func parseMeasurements(dec *json.Decoder) (map[int][][]byte, error) {
	if err := jsonDelim(dec, '{'); err != nil {
		return nil, err
	}
	policy := map[int][][]byte{}
	algorithm := false
	for dec.More() {
		key, err := jsonString(dec)
		if err != nil {
			return nil, err
		}
		val, err := jsonString(dec)
		if err != nil {
			return nil, fmt.Errorf("nitro-cli Measurements.%s: %v", key, err)
		}
		if key == "HashAlgorithm" {
			if algorithm {
				return nil, fmt.Errorf("duplicate key \"HashAlgorithm\"")
			}
			if val != nitroHashAlgorithm {
				return nil, fmt.Errorf("nitro-cli Measurements.HashAlgorithm is %q, want %q (the NSM measures with SHA-384)", val, nitroHashAlgorithm)
			}
			algorithm = true
			continue
		}
		n, ok := strings.CutPrefix(key, "PCR")
		if !ok {
			return nil, fmt.Errorf("unknown key Measurements.%s", key)
		}
		idx, err := pcrIndex(n)
		if err != nil {
			return nil, fmt.Errorf("nitro-cli Measurements.%s: %v", key, err)
		}
		if _, dup := policy[idx]; dup {
			return nil, fmt.Errorf("duplicate key Measurements.%s", key)
		}
		v, err := pcrValue(val)
		if err != nil {
			return nil, fmt.Errorf("nitro-cli Measurements.%s: %v", key, err)
		}
		policy[idx] = [][]byte{v}
	}
	if err := jsonDelim(dec, '}'); err != nil {
		return nil, err
	}
	if !algorithm {
		return nil, fmt.Errorf("nitro-cli Measurements has no HashAlgorithm")
	}
	for _, i := range []int{0, 1, 2} {
		if policy[i] == nil {
			return nil, fmt.Errorf("nitro-cli Measurements has no PCR%d", i)
		}
	}
	return policy, nil
}

func parsePCRMap(dec *json.Decoder) (map[int][][]byte, error) {
	if err := jsonDelim(dec, '{'); err != nil {
		return nil, err
	}
	policy := map[int][][]byte{}
	for dec.More() {
		key, err := jsonString(dec)
		if err != nil {
			return nil, err
		}
		idx, err := pcrIndex(key)
		if err != nil {
			return nil, err
		}
		if _, dup := policy[idx]; dup {
			return nil, fmt.Errorf("duplicate PCR index %d", idx)
		}
		if err := jsonDelim(dec, '['); err != nil {
			return nil, err
		}
		vals := [][]byte{}
		for dec.More() {
			s, err := jsonString(dec)
			if err != nil {
				return nil, err
			}
			v, err := pcrValue(s)
			if err != nil {
				return nil, fmt.Errorf("PCR%d: %v", idx, err)
			}
			vals = append(vals, v)
		}
		if err := jsonDelim(dec, ']'); err != nil {
			return nil, err
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("PCR%d has no allowed value", idx)
		}
		policy[idx] = vals
	}
	return policy, jsonDelim(dec, '}')
}

func jsonDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("invalid policy: got %v, want %q", tok, want)
	}
	return nil
}

func jsonString(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("invalid JSON: %v", err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("invalid policy: got %v, want a string", tok)
	}
	return s, nil
}

// jsonDocument is the --json form of a verified document.
type jsonDocument struct {
	ModuleID   string     `json:"module_id"`
	Timestamp  string     `json:"timestamp"`
	Digest     string     `json:"digest"`
	PCRs       jsonPCRs   `json:"pcrs"`
	Chain      []jsonCert `json:"chain"`
	PublicKey  hexBytes   `json:"public_key"` // null when absent
	UserData   hexBytes   `json:"user_data"`
	Nonce      hexBytes   `json:"nonce"`
	Debug      bool       `json:"debug"`
	VerifiedAt string     `json:"verified_at"`
}

type jsonCert struct {
	Subject   string `json:"subject"`
	Issuer    string `json:"issuer"`
	NotBefore string `json:"not_before"`
	NotAfter  string `json:"not_after"`
	SHA256    string `json:"sha256"`
}

// hexBytes marshals as a hex string, or null when nil: every byte string
// attest prints as JSON is hex, as in its text output.
type hexBytes []byte

func (h hexBytes) MarshalJSON() ([]byte, error) {
	if h == nil {
		return []byte("null"), nil
	}
	return []byte(`"` + hex.EncodeToString(h) + `"`), nil
}

// jsonPCRs marshals as {"0": "hex", "1": ...} in numeric index order.
type jsonPCRs map[int][]byte

func (p jsonPCRs) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := range 32 {
		v, ok := p[i]
		if !ok {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", strconv.Itoa(i), hex.EncodeToString(v))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// msTime is RFC 3339 in UTC with milliseconds, the precision of timestamps.
const msTime = "2006-01-02T15:04:05.000Z07:00"

// printDocument writes a verified document, as JSON or as a readable summary.
func printDocument(w io.Writer, doc *attestation.Document, asJSON bool) error {
	if doc == nil {
		return errors.New("no document")
	}
	if asJSON {
		j := jsonDocument{
			ModuleID:   doc.ModuleID,
			Timestamp:  doc.Timestamp.UTC().Format(msTime),
			Digest:     doc.Digest,
			PCRs:       jsonPCRs(doc.PCRs),
			Chain:      []jsonCert{},
			PublicKey:  doc.PublicKey,
			UserData:   doc.UserData,
			Nonce:      doc.Nonce,
			Debug:      doc.Debug,
			VerifiedAt: doc.VerifiedAt.UTC().Format(msTime),
		}
		for _, c := range doc.Chain {
			j.Chain = append(j.Chain, jsonCert{
				Subject:   c.Subject,
				Issuer:    c.Issuer,
				NotBefore: c.NotBefore.UTC().Format(time.RFC3339),
				NotAfter:  c.NotAfter.UTC().Format(time.RFC3339),
				SHA256:    hex.EncodeToString(c.SHA256[:]),
			})
		}
		out, err := json.MarshalIndent(j, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(out, '\n'))
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "valid attestation document\n")
	fmt.Fprintf(&b, "module_id    %s\n", doc.ModuleID)
	fmt.Fprintf(&b, "timestamp    %s\n", doc.Timestamp.UTC().Format(msTime))
	fmt.Fprintf(&b, "verified at  %s\n", doc.VerifiedAt.UTC().Format(msTime))
	fmt.Fprintf(&b, "digest       %s\n", doc.Digest)
	mode := "no"
	if doc.Debug {
		mode = "YES: PCR0, PCR1, PCR2 are zero; the parent instance can read the enclave's memory"
	}
	fmt.Fprintf(&b, "debug mode   %s\n", mode)
	printContents(&b, doc.PCRs, namedBytes{"public_key", doc.PublicKey}, namedBytes{"user_data", doc.UserData},
		namedBytes{"nonce", doc.Nonce})
	for i, c := range doc.Chain {
		role := "CA"
		switch i {
		case 0:
			role = "leaf"
		case len(doc.Chain) - 1:
			role = "root"
		}
		fmt.Fprintf(&b, "chain[%d]     %s %s\n             valid %s .. %s, sha256 %x\n", i, role, c.Subject,
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), c.SHA256)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// namedBytes is a document field for printContents.
type namedBytes struct {
	name string
	v    []byte // nil: absent
}

// printContents writes a document's PCRs in index order, then the fields, one
// a line, as verify and inspect print them.
func printContents(b *bytes.Buffer, pcrs map[int][]byte, fields ...namedBytes) {
	for i := range 32 {
		if v, ok := pcrs[i]; ok {
			fmt.Fprintf(b, "PCR%-2d        %x\n", i, v)
		}
	}
	for _, f := range fields {
		if f.v == nil {
			fmt.Fprintf(b, "%-12s absent\n", f.name)
		} else {
			fmt.Fprintf(b, "%-12s %d bytes %x\n", f.name, len(f.v), f.v)
		}
	}
}
