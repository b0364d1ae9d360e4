package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/attestd/attestd/attestation"
)

// verifyFlags are the verification flags shared by `attest verify` and
// `attest fetch`.
type verifyFlags struct {
	root       string
	at         string
	atDocTime  bool
	pcrs       pcrFlag
	pcrsFrom   string
	anyPCRs    bool
	allowDebug bool
	nonce      string
	maxAge     maxAgeFlag
	json       bool
}

// addVerifyFlags defines the verification flags on fs.
func addVerifyFlags(fs *flag.FlagSet) *verifyFlags {
	f := &verifyFlags{}
	fs.StringVar(&f.root, "root", "", "trust anchor `FILE.pem` (default: the embedded AWS Nitro Enclaves Root-G1)")
	fs.StringVar(&f.at, "at", "", "verify as of this `RFC3339` time instead of now")
	fs.BoolVar(&f.atDocTime, "at-doc-time", false, "verify as of the document's own timestamp (audit: proves AWS signed it then, not that it is fresh)")
	fs.Var(&f.pcrs, "pcr", "require PCR `N=HEX` (repeatable; several values for one N allow any of them)")
	fs.StringVar(&f.pcrsFrom, "pcrs-from", "", "read the PCR policy from a JSON `FILE` ({\"pcrs\": {\"0\": [\"HEX\", ...], ...}}) or measure it from an EIF image (PCR0, 1, 2, and 8 if signed)")
	fs.BoolVar(&f.anyPCRs, "any-pcrs", false, "accept any PCR values: explicitly no PCR policy")
	fs.BoolVar(&f.allowDebug, "allow-debug", false, "accept debug-mode enclaves (PCR0, PCR1, PCR2 zero; the parent can read their memory)")
	fs.StringVar(&f.nonce, "nonce", "", "require this nonce (`HEX`)")
	fs.Var(&f.maxAge, "max-age", "maximum age of the document timestamp, a Go `DURATION` such as 30s or 10m, or \"off\" (default 5m)")
	fs.BoolVar(&f.json, "json", false, "print the verified document as JSON")
	return f
}

// options turns the flags into attestation.Options. Every error is a usage
// error.
func (f *verifyFlags) options() (attestation.Options, error) {
	var o attestation.Options
	if f.root != "" {
		data, err := readLimited(f.root, 64<<10)
		if err != nil {
			return o, usagef("--root: %v", err)
		}
		if o.Root, err = attestation.ParseRootPEM(data); err != nil {
			return o, usagef("--root %s: %v", f.root, err)
		}
	}
	if f.at != "" {
		if f.atDocTime {
			return o, usagef("--at and --at-doc-time are mutually exclusive")
		}
		t, err := time.Parse(time.RFC3339, f.at)
		if err != nil {
			return o, usagef("--at: want an RFC 3339 time such as 2025-09-23T12:00:00Z: %v", err)
		}
		o.Time = t
	}
	o.AtDocumentTime = f.atDocTime

	pinned := len(f.pcrs.policy) != 0 || f.pcrsFrom != ""
	switch {
	case f.anyPCRs && pinned:
		return o, usagef("--any-pcrs cannot be combined with --pcr or --pcrs-from")
	case f.anyPCRs:
		o.AnyPCRs = true
	case !pinned:
		return o, usagef("no PCR policy: pin the enclave image with --pcr N=HEX or --pcrs-from FILE, or pass --any-pcrs to accept any image")
	default:
		o.PCRs = map[int][][]byte{}
		if f.pcrsFrom != "" {
			p, err := loadPCRPolicyFile(f.pcrsFrom)
			if err != nil {
				return o, usagef("--pcrs-from: %v", err)
			}
			o.PCRs = p
		}
		for idx, vals := range f.pcrs.policy {
			o.PCRs[idx] = append(o.PCRs[idx], vals...)
		}
	}
	o.AllowDebug = f.allowDebug
	if f.nonce != "" {
		n, err := hex.DecodeString(f.nonce)
		if err != nil {
			return o, usagef("--nonce: not hex: %v", err)
		}
		o.Nonce = n
	}
	o.MaxAge = f.maxAge.d
	return o, nil
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

// loadPCRPolicyFile reads a JSON PCR policy file,
// {"pcrs": {"0": ["<96 hex>", ...], "8": [...]}}, strictly: no unknown or
// duplicate keys, indexes 0..31, 48-byte values, at least one value per index
// and at least one index.
func loadPCRPolicyFile(path string) (map[int][][]byte, error) {
	// An enclave image file (by its magic) is measured instead: PCR0, 1, 2 and 8 if signed.
	if p, isEIF, err := eifPCRPolicy(path); isEIF {
		return p, err
	}
	data, err := readLimited(path, maxPolicyFile)
	if err != nil {
		return nil, err
	}
	p, err := parsePCRPolicy(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return p, nil
}

func parsePCRPolicy(data []byte) (map[int][][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := jsonDelim(dec, '{'); err != nil {
		return nil, err
	}
	var policy map[int][][]byte
	for dec.More() {
		key, err := jsonString(dec)
		if err != nil {
			return nil, err
		}
		if key != "pcrs" {
			return nil, fmt.Errorf("unknown key %q (want only \"pcrs\")", key)
		}
		if policy != nil {
			return nil, fmt.Errorf("duplicate key \"pcrs\"")
		}
		if policy, err = parsePCRMap(dec); err != nil {
			return nil, err
		}
	}
	if err := jsonDelim(dec, '}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the policy object")
	}
	if len(policy) == 0 {
		return nil, fmt.Errorf("the policy names no PCR")
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

// readLimited reads a file of at most limit bytes ("-": standard input).
func readLimited(path string, limit int64) ([]byte, error) {
	var r io.Reader = verifyStdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// verifyStdin is where "-" reads from (a variable for tests).
var verifyStdin io.Reader = os.Stdin

// jsonDocument is the --json form of a verified document.
type jsonDocument struct {
	ModuleID   string     `json:"module_id"`
	Timestamp  string     `json:"timestamp"`
	Digest     string     `json:"digest"`
	PCRs       jsonPCRs   `json:"pcrs"`
	Chain      []jsonCert `json:"chain"`
	PublicKey  []byte     `json:"public_key"` // base64, null when absent
	UserData   []byte     `json:"user_data"`
	Nonce      []byte     `json:"nonce"`
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
	for i := range 32 {
		if v, ok := doc.PCRs[i]; ok {
			fmt.Fprintf(&b, "PCR%-2d        %x\n", i, v)
		}
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"public_key", doc.PublicKey}, {"user_data", doc.UserData}, {"nonce", doc.Nonce}} {
		if f.v == nil {
			fmt.Fprintf(&b, "%-12s absent\n", f.name)
		} else {
			fmt.Fprintf(&b, "%-12s %d bytes %x\n", f.name, len(f.v), f.v)
		}
	}
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

// parseInterleaved parses flags that may come before or after positional
// arguments and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usagef("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
