package eif

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/attestd/attestd/pcr"
)

// Description is the JSON object `nitro-cli describe-eif` prints, field for field, followed
// by attestd's one addition, Kernel.
type Description struct {
	EifVersion         uint16
	Measurements       DescribedMeasurements
	IsSigned           bool
	SigningCertificate *CertificateInfo `json:",omitempty"`
	CheckCRC           bool
	SignatureCheck     *bool              `json:",omitempty"`
	ImageName          *string            `json:",omitempty"`
	ImageVersion       *string            `json:",omitempty"`
	Metadata           *DescribedMetadata `json:",omitempty"`
	// Kernel is not in nitro-cli's object: the format and release the kernel section itself
	// declares (ReadKernel), {"Format": "bzImage", "Release": "6.6.52"}; Release is "" when
	// unknown.
	Kernel Kernel
}

// DescribedMeasurements are the PCRs as lowercase hex, with nitro-cli's HashAlgorithm string
// (Rust's Debug form of its Sha384 hasher).
type DescribedMeasurements struct {
	HashAlgorithm string
	PCR0          string
	PCR1          string
	PCR2          string
	PCR8          string `json:",omitempty"`
}

// CertificateInfo is nitro-cli's summary of the signing certificate, with OpenSSL's
// names and time format.
type CertificateInfo struct {
	IssuerName map[string]string
	Algorithm  string
	NotBefore  string
	NotAfter   string
	Signature  string // the certificate's signature, "XX:XX:..."
}

// DescribedMetadata is the Metadata object of describe-eif: the build metadata, DockerInfo,
// then CustomMetadata flattened into the object (serde's flatten) when it is a JSON object.
type DescribedMetadata struct {
	Build          BuildMetadata
	DockerInfo     json.RawMessage
	CustomMetadata json.RawMessage
}

// hashAlgorithm is how nitro-cli prints its hasher: format!("{:?}", Sha384::new()).
const hashAlgorithm = "Sha384 { ... }"

// Describe returns the describe-eif view of a parsed image. CheckCRC and SignatureCheck are
// true by construction: Parse rejects images that fail either.
func Describe(img *Image) *Description {
	m := img.Measurements
	d := &Description{
		EifVersion: img.Header.Version,
		Measurements: DescribedMeasurements{
			HashAlgorithm: hashAlgorithm,
			PCR0:          pcr.Hex(m.PCR0),
			PCR1:          pcr.Hex(m.PCR1),
			PCR2:          pcr.Hex(m.PCR2),
		},
		CheckCRC: true,
		Kernel:   img.Kernel,
	}
	if img.Signature != nil {
		ok := true
		d.IsSigned = true
		d.Measurements.PCR8 = pcr.Hex(m.PCR8)
		d.SigningCertificate = certificateInfo(img.Signature.Certificate)
		d.SignatureCheck = &ok
	}
	if md := img.Metadata; md != nil {
		d.ImageName, d.ImageVersion = &md.ImageName, &md.ImageVersion
		d.Metadata = &DescribedMetadata{Build: md.BuildMetadata, DockerInfo: md.DockerInfo, CustomMetadata: md.CustomMetadata}
	}
	return d
}

// JSON returns the description as nitro-cli prints it: serde_json pretty (two-space
// indent), no HTML escaping, and a final newline.
func (d *Description) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MarshalJSON writes the fixed fields in nitro-cli's order, then the custom metadata's keys
// (in sorted order, as serde_json::Value keeps them). Custom metadata that is not an object,
// or whose keys collide with the fixed ones, which serde could not flatten, stays under
// "CustomMetadata".
func (m *DescribedMetadata) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	add := func(k string, v any) error {
		var raw bytes.Buffer
		enc := json.NewEncoder(&raw)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = append(b, bytes.TrimSuffix(raw.Bytes(), []byte("\n"))...)
		return nil
	}
	fixed := []string{"BuildTime", "BuildTool", "BuildToolVersion", "OperatingSystem", "KernelVersion", "DockerInfo"}
	values := []any{m.Build.BuildTime, m.Build.BuildTool, m.Build.BuildToolVersion,
		m.Build.OperatingSystem, m.Build.KernelVersion, nullIfEmpty(m.DockerInfo)}
	for i, k := range fixed {
		if err := add(k, values[i]); err != nil {
			return nil, err
		}
	}
	custom := bytes.TrimSpace(m.CustomMetadata)
	if len(custom) == 0 || bytes.Equal(custom, []byte("null")) {
		return append(b, '}'), nil
	}
	var obj map[string]json.RawMessage
	flatten := custom[0] == '{' && json.Unmarshal(custom, &obj) == nil
	keys := make([]string, 0, len(obj))
	for k := range obj {
		flatten = flatten && !slices.Contains(fixed, k)
		keys = append(keys, k)
	}
	if !flatten {
		if err := add("CustomMetadata", json.RawMessage(custom)); err != nil {
			return nil, err
		}
		return append(b, '}'), nil
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := add(k, obj[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

func nullIfEmpty(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// certificateInfo renders the certificate as nitro-cli does through OpenSSL: issuer
// attributes by long name, signature algorithm long name, ASN1_TIME_print times and the
// signature bytes as uppercase hex pairs.
func certificateInfo(c *x509.Certificate) *CertificateInfo {
	issuer := map[string]string{}
	for _, atv := range c.Issuer.Names {
		issuer[oidLongName(atv.Type)] = fmt.Sprint(atv.Value)
	}
	sig := make([]string, len(c.Signature))
	for i, b := range c.Signature {
		sig[i] = fmt.Sprintf("%02X", b)
	}
	return &CertificateInfo{
		IssuerName: issuer,
		Algorithm:  sigAlgLongName(c.SignatureAlgorithm),
		NotBefore:  c.NotBefore.UTC().Format("Jan _2 15:04:05 2006 GMT"),
		NotAfter:   c.NotAfter.UTC().Format("Jan _2 15:04:05 2006 GMT"),
		Signature:  strings.Join(sig, ":"),
	}
}

// OpenSSL long names of the usual distinguished-name attributes; others print as dotted OIDs.
var oidNames = map[string]string{
	"2.5.4.3":                    "commonName",
	"2.5.4.4":                    "surname",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "countryName",
	"2.5.4.7":                    "localityName",
	"2.5.4.8":                    "stateOrProvinceName",
	"2.5.4.9":                    "streetAddress",
	"2.5.4.10":                   "organizationName",
	"2.5.4.11":                   "organizationalUnitName",
	"2.5.4.12":                   "title",
	"2.5.4.17":                   "postalCode",
	"2.5.4.42":                   "givenName",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.25": "domainComponent",
}

func oidLongName(oid asn1.ObjectIdentifier) string {
	if n, ok := oidNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}

func sigAlgLongName(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.ECDSAWithSHA1:
		return "ecdsa-with-SHA1"
	case x509.ECDSAWithSHA256:
		return "ecdsa-with-SHA256"
	case x509.ECDSAWithSHA384:
		return "ecdsa-with-SHA384"
	case x509.ECDSAWithSHA512:
		return "ecdsa-with-SHA512"
	case x509.SHA256WithRSA:
		return "sha256WithRSAEncryption"
	case x509.SHA384WithRSA:
		return "sha384WithRSAEncryption"
	case x509.SHA512WithRSA:
		return "sha512WithRSAEncryption"
	case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
		return "rsassaPss"
	case x509.PureEd25519:
		return "ED25519"
	}
	return a.String()
}
