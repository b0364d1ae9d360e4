// Package pcr computes Nitro Enclaves PCR values the way the NSM and nitro-cli do.
//
// Every PCR is SHA-384 and starts at 48 zero bytes; extending it with data sets it to
// SHA-384(old || data). Two shapes occur:
//
//   - runtime measurements extend the zero PCR with a raw string: PCR3 with the IAM role ARN of
//     the parent instance, PCR4 with the parent instance id (see [RoleARN], [InstanceID]);
//   - image measurements extend the zero PCR with the SHA-384 digest of the data: PCR0/1/2 of an
//     EIF, PCR8 with the DER of the signing certificate (see [Measure], [SigningCertificate]).
package pcr

import (
	"bytes"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Size is the length in bytes of a PCR value (SHA-384).
const Size = sha512.Size384

// Extend returns SHA-384(old || data), the value of a PCR holding old after it is extended
// with data. old must be Size bytes.
func Extend(old, data []byte) ([]byte, error) {
	if len(old) != Size {
		return nil, fmt.Errorf("pcr: old value is %d bytes, want %d", len(old), Size)
	}
	h := sha512.New384()
	h.Write(old)
	h.Write(data)
	return h.Sum(nil), nil
}

// FromZero returns SHA-384(0^48 || data): a zero PCR extended once with data.
func FromZero(data []byte) []byte {
	var zero [Size]byte
	h := sha512.New384()
	h.Write(zero[:])
	h.Write(data)
	return h.Sum(nil)
}

// Measure returns SHA-384(0^48 || SHA-384(data)), the value nitro-cli reports for a blob
// (`nitro-cli pcr --input FILE`), and the form of PCR0/1/2 and PCR8.
func Measure(data []byte) []byte {
	d := sha512.Sum384(data)
	return FromZero(d[:])
}

// MeasureReader is Measure over everything r yields.
func MeasureReader(r io.Reader) ([]byte, error) {
	h := sha512.New384()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return FromZero(h.Sum(nil)), nil
}

// roleARN matches an IAM role ARN: partition, 12-digit account, role path and name.
// The name's bound (maxRoleName) is checked apart: a counted repetition of 512
// compiles into a program that costs every process milliseconds at start-up.
var roleARN = regexp.MustCompile(`^arn:aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?:iam::[0-9]{12}:role/[\x21-\x7e]+$`)

// maxRoleName bounds the role path and name after "role/".
const maxRoleName = 512

// ErrRoleARN reports a string that is not an IAM role ARN.
var ErrRoleARN = errors.New("pcr: not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")

// RoleARN returns PCR3 of an enclave whose parent instance has the IAM role arn:
// SHA-384(0^48 || arn). An instance-profile ARN or any other string is rejected, since
// the NSM measures the role ARN and a mistyped expectation would never match.
func RoleARN(arn string) ([]byte, error) {
	_, name, _ := strings.Cut(arn, ":role/")
	if len(name) > maxRoleName || !roleARN.MatchString(arn) {
		return nil, fmt.Errorf("%w: %q", ErrRoleARN, arn)
	}
	return FromZero([]byte(arn)), nil
}

// instanceID matches an EC2 instance id: "i-" and 8 or 17 lowercase hex digits.
var instanceID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

// ErrInstanceID reports a string that is not an EC2 instance id.
var ErrInstanceID = errors.New("pcr: not an EC2 instance id (i- and 8 or 17 lowercase hex digits)")

// InstanceID returns PCR4 of an enclave running on the parent instance id:
// SHA-384(0^48 || id).
func InstanceID(id string) ([]byte, error) {
	if !instanceID.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrInstanceID, id)
	}
	return FromZero([]byte(id)), nil
}

// ErrCertificate reports signing-certificate input that is neither one PEM CERTIFICATE
// block nor a DER certificate.
var ErrCertificate = errors.New("pcr: not a certificate")

// CertificateDER returns the DER bytes of a certificate given as PEM (exactly one
// CERTIFICATE block, only whitespace around it) or DER. The DER must parse as an X.509
// certificate.
func CertificateDER(data []byte) ([]byte, error) {
	der := data
	if block, rest := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			return nil, fmt.Errorf("%w: PEM block %q, want CERTIFICATE", ErrCertificate, block.Type)
		}
		if !onlySpace(rest) || !onlySpace(leadingBeforePEM(data)) {
			return nil, fmt.Errorf("%w: data around the PEM block", ErrCertificate)
		}
		der = block.Bytes
	}
	if _, err := x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCertificate, err)
	}
	return der, nil
}

// SigningCertificate returns PCR8 of an EIF signed with the certificate (PEM or DER):
// SHA-384(0^48 || SHA-384(DER)).
func SigningCertificate(cert []byte) ([]byte, error) {
	der, err := CertificateDER(cert)
	if err != nil {
		return nil, err
	}
	return Measure(der), nil
}

// Hex returns the lowercase hex form used by nitro-cli and policy files.
func Hex(v []byte) string { return hex.EncodeToString(v) }

// ParseHex decodes a PCR value written as hex (either case); it must be Size bytes.
func ParseHex(s string) ([]byte, error) {
	v, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pcr: %q is not hex: %v", s, err)
	}
	if len(v) != Size {
		return nil, fmt.Errorf("pcr: value is %d bytes, want %d", len(v), Size)
	}
	return v, nil
}

func onlySpace(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return false
		}
	}
	return true
}

// leadingBeforePEM returns what precedes the first "-----BEGIN" (pem.Decode skips it silently).
func leadingBeforePEM(data []byte) []byte {
	if i := bytes.Index(data, []byte("-----BEGIN")); i >= 0 {
		return data[:i]
	}
	return data
}
