package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/cli"
)

func init() {
	register(cli.Command{Name: "inspect", Summary: "decode a document WITHOUT verifying it: its fields and certificates (PEM), marked UNVERIFIED", Run: runInspect})
}

const inspectUsage = `usage: attest inspect [--json] DOC

Decodes an attestation document as strictly as attest verify does and prints
its fields and its certificates as PEM, WITHOUT verifying anything: no
certificate chain, signature, time, PCR policy or nonce is checked, and anyone
can write a document that decodes. Use it to look inside a document (why was it
rejected? which certificates does it carry?); decide trust with attest verify.

DOC is a file holding the raw COSE_Sign1 bytes or their hex (0x prefix
allowed) or base64 text; "-" reads standard input.

Exit status: 0 decoded, 1 the document does not decode (the failed check is
named), 2 usage error.

flags:
`

// inspectBanner heads the text output: nothing below it is verified.
const inspectBanner = "UNVERIFIED attestation document: decoded only; no certificate, signature, time or policy was checked (attest verify does)"

func runInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect")
	asJSON := fs.Bool("json", false, "print JSON (bytes as hex, certificates as PEM), with \"unverified\": true")
	pos, err := parseArgs(fs, inspectUsage, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("want exactly one DOC argument, got %d", len(pos))
	}
	doc, err := readDocument(pos[0])
	if err != nil {
		return err
	}
	u, err := attestation.Inspect(doc)
	if err != nil {
		return err
	}
	certs := inspectCerts(u)
	if *asJSON {
		return writeJSON(stdout, jsonInspected{
			Unverified: true,
			Warning:    inspectBanner,
			ModuleID:   u.ModuleID,
			Timestamp:  u.Timestamp.Format(msTime),
			Digest:     u.Digest,
			PCRs:       jsonPCRs(u.PCRs),
			PublicKey:  u.PublicKey,
			UserData:   u.UserData,
			Nonce:      u.Nonce,
			Signature:  u.Signature,
			Debug:      inspectDebug(u),
			Certs:      certs,
		})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n", inspectBanner)
	fmt.Fprintf(&b, "module_id    %s\n", show(u.ModuleID))
	fmt.Fprintf(&b, "timestamp    %s\n", u.Timestamp.Format(msTime))
	fmt.Fprintf(&b, "digest       %s\n", u.Digest)
	mode := "no"
	if inspectDebug(u) {
		mode = "YES: PCR0, PCR1, PCR2 are zero"
	}
	fmt.Fprintf(&b, "debug mode   %s\n", mode)
	printContents(&b, u.PCRs, namedBytes{"public_key", u.PublicKey}, namedBytes{"user_data", u.UserData},
		namedBytes{"nonce", u.Nonce}, namedBytes{"signature", u.Signature})
	for _, c := range certs {
		if c.ParseError != "" {
			fmt.Fprintf(&b, "\n%s: does not parse: %s\n", c.Role, show(c.ParseError))
		} else {
			fmt.Fprintf(&b, "\n%s: subject %s\n  issuer %s\n  valid %s .. %s, sha256 %s (UNVERIFIED)\n", c.Role,
				show(c.Subject), show(c.Issuer), c.NotBefore, c.NotAfter, c.SHA256)
		}
		b.WriteString(c.PEM)
	}
	_, err = stdout.Write(b.Bytes())
	return err
}

// jsonInspected is inspect --json.
type jsonInspected struct {
	Unverified bool              `json:"unverified"` // always true
	Warning    string            `json:"warning"`
	ModuleID   string            `json:"module_id"`
	Timestamp  string            `json:"timestamp"`
	Digest     string            `json:"digest"`
	PCRs       jsonPCRs          `json:"pcrs"`
	PublicKey  hexBytes          `json:"public_key"`
	UserData   hexBytes          `json:"user_data"`
	Nonce      hexBytes          `json:"nonce"`
	Signature  hexBytes          `json:"signature"`
	Debug      bool              `json:"debug"`
	Certs      []jsonInspectCert `json:"certificates"`
}

// jsonInspectCert is one certificate as carried: the leaf ("certificate"),
// then "cabundle[0]" (the root the document names) onwards.
type jsonInspectCert struct {
	Role       string `json:"role"`
	Subject    string `json:"subject,omitempty"`
	Issuer     string `json:"issuer,omitempty"`
	NotBefore  string `json:"not_before,omitempty"`
	NotAfter   string `json:"not_after,omitempty"`
	SHA256     string `json:"sha256"`
	ParseError string `json:"parse_error,omitempty"`
	PEM        string `json:"pem"`
}

func inspectCerts(u *attestation.Unverified) []jsonInspectCert {
	certs := []jsonInspectCert{inspectCert("certificate (leaf)", u.Certificate)}
	for i, der := range u.CABundle {
		certs = append(certs, inspectCert(fmt.Sprintf("cabundle[%d]", i), der))
	}
	return certs
}

func inspectCert(role string, der []byte) jsonInspectCert {
	sum := sha256.Sum256(der)
	c := jsonInspectCert{Role: role, SHA256: hex.EncodeToString(sum[:]),
		PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		c.ParseError = err.Error()
		return c
	}
	c.Subject, c.Issuer = x.Subject.String(), x.Issuer.String()
	c.NotBefore, c.NotAfter = x.NotBefore.UTC().Format(time.RFC3339), x.NotAfter.UTC().Format(time.RFC3339)
	return c
}

// inspectDebug: PCR0, PCR1 and PCR2 all zero, as Verify defines debug mode.
func inspectDebug(u *attestation.Unverified) bool {
	zero := make([]byte, 48)
	for i := range 3 {
		if !bytes.Equal(u.PCRs[i], zero) {
			return false
		}
	}
	return true
}
