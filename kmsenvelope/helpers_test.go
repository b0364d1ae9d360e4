package kmsenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// This file holds a small test-only assembler of envelopes, for the negative corpus: each part of
// the template is a field a test can replace, and each is written with build.go's encoders (the
// assembler is checked by reproducing real envelopes byte for byte).

// tlv and indef write a definite-length and an indefinite-length element.
var tlv, indef = buildTLV, buildIndefinite

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	derNull      = []byte{tagNull, 0}
	sha256Alg    = tlv(tagSequence, tlv(tagOID, oidSHA256), derNull)
	sha1Alg      = tlv(tagSequence, tlv(tagOID, []byte{0x2b, 0x0e, 0x03, 0x02, 0x1a}), derNull)
	oidAES128    = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02}
	oidAES256GCM = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e}
)

// fx is an envelope in parts. Each field is the encoded element (TLV) the template has there.
type fx struct {
	envVersion []byte   // INTEGER 2
	originator []byte   // absent
	recipients [][]byte // one KeyTransRecipientInfo
	eci        []byte   // EncryptedContentInfo
	unprot     []byte   // absent
	trailing   []byte
	definite   bool // definite lengths at the outer levels
}

// ktriParts is a KeyTransRecipientInfo in parts.
type ktriParts struct {
	version, rid, alg, ek []byte
}

func (k ktriParts) bytes() []byte { return tlv(tagSequence, k.version, k.rid, k.alg, k.ek) }

func oaepAlg(hash, mgfHash []byte, extra ...[]byte) []byte {
	params := tlv(tagSequence, cat(tlv(tagCtx0Cons, hash),
		tlv(tagCtx1Cons, tlv(tagSequence, tlv(tagOID, oidMGF1), mgfHash)), cat(extra...)))
	return tlv(tagSequence, tlv(tagOID, oidRSAESOAEP), params)
}

func labelParam(label []byte) []byte {
	return tlv(tagCtx2Cons, tlv(tagSequence, tlv(tagOID, oidPSpecified), tlv(tagOctetString, label)))
}

func aesAlg(oid, iv []byte) []byte {
	return tlv(tagSequence, tlv(tagOID, oid), tlv(tagOctetString, iv))
}

// chunked is KMS's constructed indefinite encryptedContent with chunks of at most size bytes.
func chunked(ct []byte, size int) []byte {
	var chunks []byte
	for i := 0; i < len(ct); i += size {
		chunks = append(chunks, tlv(tagOctetString, ct[i:min(i+size, len(ct))])...)
	}
	return indef(tagCtx0Cons, chunks)
}

func eciOf(alg, content []byte, definite bool) []byte {
	if definite {
		return tlv(tagSequence, tlv(tagOID, oidData), alg, content)
	}
	return indef(tagSequence, tlv(tagOID, oidData), alg, content)
}

func (f fx) bytes() []byte {
	wrap := indef
	if f.definite {
		wrap = func(tag byte, c ...[]byte) []byte { return tlv(tag, c...) }
	}
	ed := wrap(tagSequence, f.envVersion, f.originator, tlv(tagSet, f.recipients...), f.eci, f.unprot)
	return cat(wrap(tagSequence, tlv(tagOID, oidEnvelopedData), wrap(tagCtx0Cons, ed)), f.trailing)
}

// sealed is what a sender chose: the parts and the secrets behind them.
type sealed struct {
	fx
	ktri            ktriParts
	cek, iv, padded []byte
}

// seal builds a KMS-template envelope of plaintext for pub (PKCS#7 padded, 1000-byte chunks).
func seal(t testing.TB, pub *rsa.PublicKey, plaintext []byte) *sealed {
	t.Helper()
	p := 16 - len(plaintext)%16
	padded := cat(plaintext, bytesOf(byte(p), p))
	return sealRaw(t, pub, randBytes(32), randBytes(16), padded)
}

// sealRaw encrypts padded (already padded, or deliberately not) under cek and iv, and cek to pub.
func sealRaw(t testing.TB, pub *rsa.PublicKey, cek, iv, padded []byte) *sealed {
	t.Helper()
	ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, cek, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	s := &sealed{cek: cek, iv: iv, padded: padded}
	s.ktri = ktriParts{
		version: tlv(tagInteger, []byte{2}),
		rid:     tlv(tagCtx0, id),
		alg:     oaepAlg(sha256Alg, sha256Alg),
		ek:      tlv(tagOctetString, ek),
	}
	s.fx = fx{
		envVersion: tlv(tagInteger, []byte{2}),
		recipients: [][]byte{s.ktri.bytes()},
		eci:        eciOf(aesAlg(oidAES256CBC, iv), chunked(cbc(t, cek, iv, padded), 1000), false),
	}
	return s
}

// setKTRI replaces the recipient after a test changed s.ktri.
func (s *sealed) setKTRI() *sealed { s.recipients = [][]byte{s.ktri.bytes()}; return s }

func cbc(t testing.TB, key, iv, padded []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(padded))
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, padded)
	return out
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func bytesOf(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edgebitKey and enclaverKey are the public test keys that open the two keyed real envelopes.
func edgebitKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	blk, _ := pem.Decode(readTestdata(t, "edgebit.key.pem"))
	if blk == nil {
		t.Fatal("edgebit.key.pem: no PEM block")
	}
	k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func enclaverKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(readTestdata(t, "enclaver.key.pk8.der"))
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}
