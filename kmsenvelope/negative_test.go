package kmsenvelope

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"
)

// checkRejected asserts that Parse fails naming field (when field is not "") and that Open fails
// with ErrOpen and its one message.
func checkRejected(t *testing.T, key *rsa.PrivateKey, b []byte, field string) {
	t.Helper()
	_, perr := Parse(b)
	if field != "" {
		var fe *FieldError
		if !errors.As(perr, &fe) {
			t.Fatalf("Parse: %v, want a *FieldError on %s", perr, field)
		}
		if fe.Field != field {
			t.Fatalf("Parse: %v, want field %q", perr, field)
		}
	} else if perr != nil {
		t.Fatalf("Parse: %v, want the envelope to parse (the check is Open's)", perr)
	}
	pt, err := Open(key, b)
	if err != ErrOpen || err.Error() != "kmsenvelope: the envelope could not be opened" || pt != nil {
		t.Fatalf("Open: %x, %v; want nil, ErrOpen", pt, err)
	}
}

func TestOpenGenerated(t *testing.T) {
	key := edgebitKey(t)
	for _, n := range []int{0, 1, 12, 15, 16, 17, 31, 32, 999, 1000, 1001, 4096} {
		pt := randBytes(n)
		s := seal(t, key.Public().(*rsa.PublicKey), pt)
		for _, form := range []string{"chunked", "primitive", "definite", "chunk7"} {
			ct := cbc(t, s.cek, s.iv, s.padded)
			f := s.fx
			switch form {
			case "primitive":
				f.eci = eciOf(aesAlg(oidAES256CBC, s.iv), tlv(tagCtx0, ct), false)
			case "definite":
				f.definite = true
				f.eci = eciOf(aesAlg(oidAES256CBC, s.iv), tlv(tagCtx0, ct), true)
			case "chunk7":
				f.eci = eciOf(aesAlg(oidAES256CBC, s.iv), chunked(ct, 7), false)
			}
			got, err := Open(key, f.bytes())
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes, %s: %x, %v", n, form, got, err)
			}
		}
	}
}

// TestOpenAcceptsVariants: what the template allows besides KMS's exact bytes.
func TestOpenAcceptsVariants(t *testing.T) {
	key := edgebitKey(t)
	pub := &key.PublicKey
	noNull := []byte(tlv(tagSequence, tlv(tagOID, oidSHA256)))
	for name, mut := range map[string]func(s *sealed){
		"hash params absent (OpenSSL)": func(s *sealed) { s.ktri.alg = oaepAlg(noNull, noNull) },
		"empty label spelled out":      func(s *sealed) { s.ktri.alg = oaepAlg(sha256Alg, sha256Alg, labelParam(nil)) },
	} {
		s := seal(t, pub, []byte("hello"))
		mut(s)
		if got, err := Open(key, s.setKTRI().bytes()); err != nil || string(got) != "hello" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
}

// TestNegativeCorpus: each envelope differs from a good one in one way and is rejected by Parse on
// the named field, or (field "") parses but does not open.
func TestNegativeCorpus(t *testing.T) {
	key := edgebitKey(t)
	pub := &key.PublicKey
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	noNull := []byte(tlv(tagSequence, tlv(tagOID, oidSHA256)))
	v := func(n byte) []byte { return tlv(tagInteger, []byte{n}) }
	cases := []struct {
		name  string
		field string
		mut   func(s *sealed)
	}{
		{"wrong rid", "", func(s *sealed) { s.ktri.rid = tlv(tagCtx0, randBytes(32)) }},
		{"rid of another key", "", func(s *sealed) {
			id, _ := KeyID(&other.PublicKey)
			s.ktri.rid = tlv(tagCtx0, id)
		}},
		{"rid SHA-1 sized", "rid", func(s *sealed) { s.ktri.rid = tlv(tagCtx0, randBytes(20)) }},
		{"rid constructed", "rid", func(s *sealed) { s.ktri.rid = tlv(tagCtx0Cons, tlv(tagOctetString, randBytes(32))) }},
		{"OAEP hash SHA-1", "hashFunc", func(s *sealed) { s.ktri.alg = oaepAlg(sha1Alg, sha256Alg) }},
		{"MGF1 hash SHA-1", "maskGenFunc.hash", func(s *sealed) { s.ktri.alg = oaepAlg(sha256Alg, sha1Alg) }},
		{"OAEP params empty (SHA-1 defaults)", "hashFunc", func(s *sealed) {
			s.ktri.alg = tlv(tagSequence, tlv(tagOID, oidRSAESOAEP), tlv(tagSequence))
		}},
		{"OAEP params absent", "RSAES-OAEP-params", func(s *sealed) { s.ktri.alg = tlv(tagSequence, tlv(tagOID, oidRSAESOAEP)) }},
		{"PKCS#1 v1.5", "keyEncryptionAlgorithm", func(s *sealed) {
			s.ktri.alg = tlv(tagSequence, tlv(tagOID, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}), derNull)
		}},
		{"NULL in one hash only", "maskGenFunc.hash", func(s *sealed) { s.ktri.alg = oaepAlg(sha256Alg, noNull) }},
		{"hash params not NULL", "hashFunc.parameters", func(s *sealed) {
			s.ktri.alg = oaepAlg(tlv(tagSequence, tlv(tagOID, oidSHA256), tlv(tagOctetString)), sha256Alg)
		}},
		{"a label", "pSourceFunc.label", func(s *sealed) { s.ktri.alg = oaepAlg(sha256Alg, sha256Alg, labelParam([]byte("x"))) }},
		{"a label, and OAEP under it", "pSourceFunc.label", func(s *sealed) {
			ek, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, s.cek, []byte("x"))
			s.ktri.ek = tlv(tagOctetString, ek)
			s.ktri.alg = oaepAlg(sha256Alg, sha256Alg, labelParam([]byte("x")))
		}},
		{"OAEP under a label the envelope does not state", "", func(s *sealed) {
			ek, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, s.cek, []byte("x"))
			s.ktri.ek = tlv(tagOctetString, ek)
		}},
		{"OAEP done with SHA-1", "", func(s *sealed) {
			ek, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, s.cek, nil)
			s.ktri.ek = tlv(tagOctetString, ek)
		}},
		{"encryptedKey short", "", func(s *sealed) { s.ktri.ek = tlv(tagOctetString, randBytes(255)) }},
		{"encryptedKey garbage", "", func(s *sealed) { s.ktri.ek = tlv(tagOctetString, randBytes(256)) }},
		{"ktri v0 with a subjectKeyIdentifier", "KeyTransRecipientInfo.version", func(s *sealed) { s.ktri.version = v(0) }},
		{"ktri v2 with issuerAndSerialNumber", "rid", func(s *sealed) { s.ktri.rid = issuerAndSerial() }},
		{"EnvelopedData v0", "EnvelopedData.version", func(s *sealed) { s.envVersion = v(0) }},
		{"EnvelopedData v3", "EnvelopedData.version", func(s *sealed) { s.envVersion = v(3) }},
		{"version long", "EnvelopedData.version", func(s *sealed) { s.envVersion = tlv(tagInteger, []byte{0, 2}) }},
		{"originatorInfo", "originatorInfo", func(s *sealed) { s.originator = tlv(tagCtx0Cons) }},
		{"unprotectedAttrs", "unprotectedAttrs", func(s *sealed) { s.unprot = tlv(tagCtx1Cons, tlv(tagSequence)) }},
		{"two recipients", "recipientInfos", func(s *sealed) { s.recipients = append(s.recipients, s.recipients[0]) }},
		{"no recipient", "recipientInfos", func(s *sealed) { s.recipients = nil }},
		{"kari recipient", "recipientInfos", func(s *sealed) { s.recipients = [][]byte{tlv(tagCtx1Cons, v(3))} }},
		{"kekri recipient", "recipientInfos", func(s *sealed) { s.recipients = [][]byte{tlv(tagCtx2Cons, v(4))} }},
		{"15-byte ciphertext", "encryptedContent", func(s *sealed) { s.setContent(chunked(randBytes(15), 1000)) }},
		{"17-byte ciphertext", "encryptedContent", func(s *sealed) { s.setContent(tlv(tagCtx0, randBytes(17))) }},
		{"empty ciphertext", "encryptedContent", func(s *sealed) { s.setContent(tlv(tagCtx0)) }},
		{"no chunks", "encryptedContent", func(s *sealed) { s.setContent(indef(tagCtx0Cons)) }},
		{"empty chunk", "encryptedContent.chunk", func(s *sealed) {
			s.setContent(indef(tagCtx0Cons, tlv(tagOctetString), tlv(tagOctetString, randBytes(16))))
		}},
		{"nested constructed chunk", "encryptedContent.chunk", func(s *sealed) {
			s.setContent(indef(tagCtx0Cons, indef(0x24, tlv(tagOctetString, randBytes(16)))))
		}},
		{"primitive content then chunks", "encryptedContentInfo", func(s *sealed) {
			s.setContent(cat(tlv(tagCtx0, randBytes(16)), tlv(tagOctetString, randBytes(16))))
		}},
		{"content missing", "encryptedContent", func(s *sealed) { s.setContent(nil) }},
		{"8-byte IV", "iv", func(s *sealed) { s.eci = eciOf(aesAlg(oidAES256CBC, s.iv[:8]), s.content(), false) }},
		{"17-byte IV", "iv", func(s *sealed) { s.eci = eciOf(aesAlg(oidAES256CBC, cat(s.iv, []byte{0})), s.content(), false) }},
		{"AES-128-CBC OID", "contentEncryptionAlgorithm", func(s *sealed) { s.eci = eciOf(aesAlg(oidAES128, s.iv), s.content(), false) }},
		{"AES-256-GCM OID", "contentEncryptionAlgorithm", func(s *sealed) { s.eci = eciOf(aesAlg(oidAES256GCM, s.iv), s.content(), false) }},
		{"content type not data", "encryptedContentInfo.contentType", func(s *sealed) {
			s.eci = indef(tagSequence, tlv(tagOID, oidEnvelopedData), aesAlg(oidAES256CBC, s.iv), s.content())
		}},
		{"trailing bytes", "ContentInfo", func(s *sealed) { s.trailing = []byte{0xff, 0xff} }},
		{"trailing EOC", "ContentInfo", func(s *sealed) { s.trailing = []byte{0, 0} }},
		{"trailing empty SEQUENCE", "ContentInfo", func(s *sealed) { s.trailing = []byte{0x30, 0} }},
		{"indefinite RecipientInfos", "recipientInfos", func(s *sealed) { s.recipients = nil; s.eci = cat(indef(tagSet, s.ktri.bytes())[2:], s.eci) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := seal(t, pub, []byte("a secret"))
			c.mut(s)
			if c.name != "two recipients" && c.name != "no recipient" && c.name != "kari recipient" &&
				c.name != "kekri recipient" && c.name != "indefinite RecipientInfos" {
				s.setKTRI()
			}
			checkRejected(t, key, s.bytes(), c.field)
		})
	}
}

// content is the KMS-form encryptedContent of s.
func (s *sealed) content() []byte { return chunked(cbcNoT(s.cek, s.iv, s.padded), 1000) }

func (s *sealed) setContent(c []byte) {
	s.eci = indef(tagSequence, tlv(tagOID, oidData), aesAlg(oidAES256CBC, s.iv), c)
}

func cbcNoT(key, iv, padded []byte) []byte { return cbc(panicTB{}, key, iv, padded) }

// panicTB lets helpers that take a testing.TB run where no *testing.T is at hand.
type panicTB struct{ testing.TB }

func (panicTB) Helper()           {}
func (panicTB) Fatal(args ...any) { panic(args) }

// issuerAndSerial is LocalStack's recipient identifier: issuer CN=recipient, serial 1.
func issuerAndSerial() []byte {
	cn := tlv(tagSequence, tlv(tagOID, []byte{0x55, 0x04, 0x03}), tlv(0x0c, []byte("recipient")))
	name := tlv(tagSequence, tlv(tagSet, cn))
	return tlv(tagSequence, name, tlv(tagInteger, []byte{1}))
}

// TestRejectLocalStackShape: LocalStack's Recipient envelope (utils/crypto.py
// pkcs7_envelope_encrypt): DER, EnvelopedData v0, KeyTransRecipientInfo v0 naming the key by
// issuerAndSerialNumber (CN=recipient, serial 1), primitive [0]. OpenSSL opens it; KMS never sends
// it, and it does not name this request's key, so it is refused at EnvelopedData.version before
// any key is used.
func TestRejectLocalStackShape(t *testing.T) {
	key := edgebitKey(t)
	s := seal(t, &key.PublicKey, []byte("a secret"))
	s.envVersion = tlv(tagInteger, []byte{0})
	s.ktri.version = tlv(tagInteger, []byte{0})
	s.ktri.rid = issuerAndSerial()
	s.definite = true
	s.eci = eciOf(aesAlg(oidAES256CBC, s.iv), tlv(tagCtx0, cbc(t, s.cek, s.iv, s.padded)), true)
	checkRejected(t, key, s.setKTRI().bytes(), "EnvelopedData.version")
}

// TestBadPadding: every wrong padding byte, and every wrong count, is rejected the same way.
func TestBadPadding(t *testing.T) {
	key := edgebitKey(t)
	pub := &key.PublicKey
	cek, iv := randBytes(32), randBytes(16)
	for p := 1; p <= 16; p++ {
		good := cat(bytesOf('x', 32-p), bytesOf(byte(p), p))
		if got, err := Open(key, sealRaw(t, pub, cek, iv, good).bytes()); err != nil || len(got) != 32-p {
			t.Fatalf("pad %d: %x, %v", p, got, err)
		}
		for i := 32 - p; i < 32; i++ { // each padding byte wrong in turn
			for _, w := range []byte{0, byte(p) ^ 1, byte(p) + 1, 0xff} {
				bad := bytes.Clone(good)
				bad[i] = w
				if i == 31 && (w == 0 || w > 16) {
					continue // covered below
				}
				if i == 31 && int(w) < p && w != 0 {
					// A smaller count whose bytes happen to match is valid padding.
					if bytes.Equal(bad[32-int(w):], bytesOf(w, int(w))) {
						continue
					}
				}
				checkRejected(t, key, sealRaw(t, pub, cek, iv, bad).bytes(), "")
			}
		}
	}
	for _, last := range []byte{0, 17, 32, 0x80, 0xff} {
		bad := cat(bytesOf(last, 32))
		checkRejected(t, key, sealRaw(t, pub, cek, iv, bad).bytes(), "")
	}
}

// TestContentKeySize: a content key that is not 32 bytes is refused even though AES accepts 16 and
// 24 (edgebit's parser decrypts a 16-byte key as AES-128 under the AES-256 OID).
func TestContentKeySize(t *testing.T) {
	key := edgebitKey(t)
	for _, n := range []int{0, 1, 16, 24, 31, 33, 64} {
		cek := randBytes(n)
		aesKey := cek
		if n != 16 && n != 24 {
			aesKey = randBytes(32)
		}
		s := seal(t, &key.PublicKey, []byte("a secret"))
		ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, cek, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.ktri.ek = tlv(tagOctetString, ek)
		s.setContent(chunked(cbc(t, aesKey, s.iv, s.padded), 1000))
		checkRejected(t, key, s.setKTRI().bytes(), "")
	}
}

// TestTruncations: every proper prefix of every real envelope is refused, and so is every
// extension by one byte.
func TestTruncations(t *testing.T) {
	key := edgebitKey(t)
	for _, r := range realEnvelopes {
		b := readTestdata(t, r.file)
		for i := range b {
			if _, err := Parse(b[:i]); err == nil {
				t.Fatalf("%s: prefix of %d bytes parsed", r.file, i)
			}
		}
		if _, err := Parse(cat(b, []byte{0})); err == nil {
			t.Fatalf("%s: one trailing byte parsed", r.file)
		}
	}
	b := readTestdata(t, "edgebit.ber")
	for i := range b {
		if _, err := Open(key, b[:i]); err != ErrOpen {
			t.Fatalf("edgebit.ber prefix of %d bytes: %v", i, err)
		}
	}
}

// TestEncodingRules: DER inside the template, BER only at KMS's indefinite levels.
func TestEncodingRules(t *testing.T) {
	good := readTestdata(t, "edgebit.ber")
	cases := []struct {
		name  string
		b     []byte
		field string
	}{
		// version 2 at offset 17 spelled with a non-minimal long form length (02 81 01 02).
		{"non-minimal length", cat(good[:18], []byte{0x81, 0x01}, good[19:]), "EnvelopedData.version"},
		{"high tag number", cat([]byte{0x3f, 0x80}, good[2:]), "ContentInfo"},
		{"three-byte length", cat(good[:1], []byte{0x83, 0, 0x01, 0xeb}, good[2:len(good)-2]), "ContentInfo"},
		{"oversize", cat(good, make([]byte, MaxSize)), "ContentInfo"},
		{"indefinite primitive", cat(good[:24], []byte{0x30, 0x80}, good[28:]), "KeyTransRecipientInfo"},
		{"missing EOC", good[:len(good)-2], "ContentInfo"},
	}
	for _, c := range cases {
		_, err := Parse(c.b)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a *FieldError on %s", c.name, err, c.field)
		}
	}
}
