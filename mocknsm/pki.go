package mocknsm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// The certificate lifetimes of the AWS chain (nitro-specs §3.4).
const (
	regionalLifetime = 20*24*time.Hour + time.Hour // 20.04 days
	zonalLifetime    = 6 * 24 * time.Hour          // 5.54 .. 6.04 days at AWS
	instanceLifetime = 24 * time.Hour
	leafLifetime     = 3*time.Hour + 3*time.Second // exactly 10803 s

	// A CA certificate is re-issued when less than this is left, so that it outlives any leaf it signs.
	caRenewBefore = 4 * time.Hour
	// The leaf is reused across documents (as AWS does) until less than this is left.
	leafRenewBefore = time.Hour
)

// Levels of the mock CA chain, root first: the order of the document's cabundle.
const (
	levelRoot = iota
	levelRegional
	levelZonal
	levelInstance
	numLevels
)

var levelNames = [numLevels]string{"root", "regional", "zonal", "instance"}

var (
	oidCountry  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidState    = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidLocality = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidOrg      = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit  = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCN       = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// Mock names: shaped like AWS's, never mistakable for them.
const (
	mockOrg     = "attestd"
	mockOrgUnit = "mock"
	mockDomain  = "mock.nitro-enclaves"
)

// authority is one CA of the chain: its key and current certificate.
type authority struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

// rdn encodes a distinguished name with its attributes in exactly the given order (AWS's zonal certificates use
// an order pkix.Name cannot produce).
func rdn(attrs ...any) []byte {
	var seq pkix.RDNSequence
	for i := 0; i < len(attrs); i += 2 {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{
			Type: attrs[i].(asn1.ObjectIdentifier), Value: attrs[i+1].(string),
		}})
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		panic(err) // static shapes of strings: cannot fail
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x01 // keep 16 bytes, positive
	return new(big.Int).SetBytes(b)
}

// newTemplates returns the certificate templates of the four CAs for a module id and region, root first.
func newTemplates(instanceID, region string) [numLevels]*x509.Certificate {
	crl := func() []string {
		return []string{"http://crl." + mockDomain + ".invalid/crl/" + randomHex(16) + ".crl"}
	}
	caKU := x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	return [numLevels]*x509.Certificate{
		levelRoot: {
			RawSubject: rdn(oidCountry, "US", oidOrg, mockOrg, oidOrgUnit, mockOrgUnit, oidCN, mockDomain),
			KeyUsage:   caKU, BasicConstraintsValid: true, IsCA: true, MaxPathLen: -1,
		},
		levelRegional: {
			RawSubject: rdn(oidCountry, "US", oidOrg, mockOrg, oidOrgUnit, mockOrgUnit,
				oidCN, randomHex(8)+"."+region+"."+mockDomain),
			KeyUsage: caKU, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 2,
			CRLDistributionPoints: crl(),
		},
		levelZonal: {
			RawSubject: rdn(oidCN, randomHex(8)+".zonal."+region+"."+mockDomain, oidOrgUnit, mockOrgUnit,
				oidOrg, mockOrg, oidCountry, "US", oidState, "WA", oidLocality, "Seattle"),
			KeyUsage: caKU, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 1,
			CRLDistributionPoints: crl(),
		},
		levelInstance: {
			RawSubject: rdn(oidCountry, "US", oidState, "Washington", oidLocality, "Seattle", oidOrg, mockOrg,
				oidOrgUnit, mockOrgUnit, oidCN, instanceID+"."+region+"."+mockDomain),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLen: 0,
			MaxPathLenZero: true,
		},
	}
}

func lifetime(level int, notBefore time.Time) time.Time {
	switch level {
	case levelRoot:
		return notBefore.AddDate(30, 0, 0).Add(time.Hour)
	case levelRegional:
		return notBefore.Add(regionalLifetime)
	case levelZonal:
		return notBefore.Add(zonalLifetime)
	default:
		return notBefore.Add(instanceLifetime)
	}
}

// issueCA (re-)issues the certificate of level from tmpl (a template or the previous certificate: same subject,
// key and extensions), valid from now, signed by parent (nil for the self-signed root).
func issueCA(level int, tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *authority, now time.Time) (*x509.Certificate, error) {
	t := *tmpl
	t.SerialNumber = randomSerial()
	t.NotBefore = now.UTC().Truncate(time.Second)
	t.NotAfter = lifetime(level, t.NotBefore)
	t.SignatureAlgorithm = x509.ECDSAWithSHA384
	issuer, signer := &t, key
	if parent != nil {
		issuer, signer = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, &t, issuer, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("mocknsm: issue %s certificate: %w", levelNames[level], err)
	}
	return x509.ParseCertificate(der)
}

// issueLeaf issues the document-signing certificate: CA:FALSE, KeyUsage digitalSignature+nonRepudiation NOT
// critical, no SKI/AKI, serial = enclave id || 0^4 || NotBefore seconds, valid 10803 s, exactly like AWS.
func issueLeaf(instance *authority, key *ecdsa.PrivateKey, moduleID, region string, now time.Time) (*x509.Certificate, error) {
	instanceID, enclaveID := splitModuleID(moduleID)
	notBefore := now.UTC().Truncate(time.Second)
	encID, err := hex.DecodeString(enclaveID)
	if err != nil {
		return nil, err
	}
	serial := binary.BigEndian.AppendUint32(append(encID, 0, 0, 0, 0), uint32(notBefore.Unix()))
	ku, err := asn1.Marshal(asn1.BitString{Bytes: []byte{0xc0}, BitLength: 2})
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serial),
		RawSubject: rdn(oidCountry, "US", oidState, "Washington", oidLocality, "Seattle", oidOrg, mockOrg,
			oidOrgUnit, mockOrgUnit, oidCN, instanceID+"-enc"+enclaveID+"."+region+".mock"),
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(leafLifetime),
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: oidKeyUsage, Value: ku}},
		SignatureAlgorithm:    x509.ECDSAWithSHA384,
	}
	// Without the issuer's SubjectKeyId Go adds no AuthorityKeyId, matching AWS's leaf.
	parent := *instance.cert
	parent.SubjectKeyId = nil
	der, err := x509.CreateCertificate(rand.Reader, t, &parent, key.Public(), instance.key)
	if err != nil {
		return nil, fmt.Errorf("mocknsm: issue leaf certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) }

// newChain creates the four CAs.
func newChain(moduleID, region string, now time.Time) ([numLevels]*authority, error) {
	var chain [numLevels]*authority
	instanceID, _ := splitModuleID(moduleID)
	tmpls := newTemplates(instanceID, region)
	for level := range numLevels {
		key, err := newKey()
		if err != nil {
			return chain, err
		}
		var parent *authority
		if level > levelRoot {
			parent = chain[level-1]
		}
		cert, err := issueCA(level, tmpls[level], key, parent, now)
		if err != nil {
			return chain, err
		}
		chain[level] = &authority{key: key, cert: cert}
	}
	return chain, nil
}

func certFile(dir string, level int) string { return filepath.Join(dir, levelNames[level]+".pem") }
func keyFile(dir string, level int) string  { return filepath.Join(dir, levelNames[level]+".key") }

// writeNew creates path with perm and content, refusing to overwrite; it leaves nothing behind on error.
func writeNew(path string, perm os.FileMode, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// saveChain writes the CA keys and certificates; on error it removes what it wrote.
func saveChain(dir string, chain [numLevels]*authority) (err error) {
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	for level, a := range chain {
		der, err := x509.MarshalPKCS8PrivateKey(a.key)
		if err != nil {
			return err
		}
		files := []struct {
			path string
			perm os.FileMode
			data []byte
		}{
			{keyFile(dir, level), 0o600, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})},
			{certFile(dir, level), 0o644, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.cert.Raw})},
		}
		for _, f := range files {
			if err := writeNew(f.path, f.perm, f.data); err != nil {
				return err
			}
			written = append(written, f.path)
		}
	}
	return nil
}

// readPEM returns the DER of the single PEM block of type typ in path.
func readPEM(path, typ string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, rest := pem.Decode(b)
	if block == nil || block.Type != typ || len(rest) != 0 {
		return nil, fmt.Errorf("mocknsm: %s: want exactly one %s PEM block", path, typ)
	}
	return block.Bytes, nil
}

// loadChain reads the four CAs and checks that every key matches its certificate and every certificate is
// signed by its parent.
func loadChain(dir string) ([numLevels]*authority, error) {
	var chain [numLevels]*authority
	for level := range numLevels {
		certDER, err := readPEM(certFile(dir, level), "CERTIFICATE")
		if err != nil {
			return chain, err
		}
		cert, err := x509.ParseCertificate(certDER)
		if err != nil {
			return chain, fmt.Errorf("mocknsm: %s: %w", certFile(dir, level), err)
		}
		keyDER, err := readPEM(keyFile(dir, level), "PRIVATE KEY")
		if err != nil {
			return chain, err
		}
		k, err := x509.ParsePKCS8PrivateKey(keyDER)
		if err != nil {
			return chain, fmt.Errorf("mocknsm: %s: %w", keyFile(dir, level), err)
		}
		key, ok := k.(*ecdsa.PrivateKey)
		if !ok || key.Curve != elliptic.P384() || !key.PublicKey.Equal(cert.PublicKey) {
			return chain, fmt.Errorf("mocknsm: %s: not the P-384 key of %s", keyFile(dir, level), certFile(dir, level))
		}
		parent := cert
		if level > levelRoot {
			parent = chain[level-1].cert
		}
		if err := cert.CheckSignatureFrom(parent); err != nil {
			return chain, fmt.Errorf("mocknsm: %s is not signed by its parent: %w", certFile(dir, level), err)
		}
		chain[level] = &authority{key: key, cert: cert}
	}
	return chain, nil
}

// needsRenewal reports whether cert is not valid at now or has less than before left.
func needsRenewal(cert *x509.Certificate, now time.Time, before time.Duration) bool {
	return now.Before(cert.NotBefore) || !now.Add(before).Before(cert.NotAfter)
}
