package kmsenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// MaxBuildPlaintext is the largest plaintext Build accepts: KMS's own maximum (Decrypt returns at most 4096
// bytes; GenerateDataKey 1024, GenerateRandom 1024).
const MaxBuildPlaintext = 4096

// buildChunk is the size of the OCTET STRING chunks KMS writes the encrypted content in (1000,1000,1000,1000,112
// for 4112 bytes in the real rustcrypto-4 envelope).
const buildChunk = 1000

// The template's fixed parts, byte for byte as in every real KMS envelope (the OIDs and tags are the
// parser's, parse.go and ber.go).
var (
	buildVersion2 = []byte{tagInteger, 0x01, 0x02}
	buildNull     = []byte{tagNull, 0x00}
	// sha256 with NULL parameters, as KMS writes it (OpenSSL leaves the NULL out).
	buildSHA256 = buildTLV(tagSequence, buildTLV(tagOID, oidSHA256), buildNull)
	// keyEncryptionAlgorithm: rsaesOaep with [0] sha256 and [1] mgf1(sha256), no [2] pSourceFunc (so the
	// label is empty).
	buildOAEPAlgorithm = buildTLV(tagSequence, buildTLV(tagOID, oidRSAESOAEP), buildTLV(tagSequence,
		buildTLV(tagCtx0Cons, buildSHA256),
		buildTLV(tagCtx1Cons, buildTLV(tagSequence, buildTLV(tagOID, oidMGF1), buildSHA256))))
)

// BuildOptions are Build's choices. The zero value builds what KMS returns, with fresh randomness.
type BuildOptions struct {
	// Rand supplies, in this order, the 32-byte content key, the 16-byte IV and the 32-byte OAEP seed. Nil
	// means crypto/rand.Reader; tests pass a fixed stream to get reproducible envelopes.
	Rand io.Reader
	// Primitive writes the encrypted content as one primitive [0] (the form of sdk-c's second real vector)
	// instead of KMS's usual constructed, indefinite-length [0] of 1000-byte OCTET STRING chunks.
	Primitive bool
}

// Build returns the CiphertextForRecipient that AWS KMS would return for plaintext to the RSA key whose
// SubjectPublicKeyInfo DER is recipientSPKI: a BER ContentInfo/EnvelopedData in KMS's exact template (see
// docs/kms.md), with rid = SHA-256(recipientSPKI), the content key wrapped with RSAES-OAEP (SHA-256,
// MGF1-SHA-256, empty label) and the plaintext PKCS#7-padded and encrypted with AES-256-CBC.
//
// Build is the project's stand-in for KMS's side of the exchange, for tests and test servers: in production KMS
// builds the envelope. It does the OAEP encoding itself (RFC 8017 §7.1.1) so that the seed comes from
// opts.Rand; with the randomness recovered from a real envelope it reproduces that envelope byte for byte.
func Build(recipientSPKI, plaintext []byte, opts BuildOptions) ([]byte, error) {
	if len(plaintext) > MaxBuildPlaintext {
		return nil, fmt.Errorf("kmsenvelope: build: plaintext is %d bytes, more than %d", len(plaintext), MaxBuildPlaintext)
	}
	parsed, err := x509.ParsePKIXPublicKey(recipientSPKI)
	if err != nil {
		return nil, fmt.Errorf("kmsenvelope: build: recipient public key: %w", err)
	}
	pub, ok := parsed.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("kmsenvelope: build: recipient public key is %T, not RSA", parsed)
	}
	random := opts.Rand
	if random == nil {
		random = rand.Reader
	}
	var cek [ContentKeySize]byte
	var iv [IVSize]byte
	var seed [sha256.Size]byte
	for _, b := range [][]byte{cek[:], iv[:], seed[:]} {
		if _, err := io.ReadFull(random, b); err != nil {
			return nil, fmt.Errorf("kmsenvelope: build: randomness: %w", err)
		}
	}
	encryptedKey, err := buildOAEP(pub, cek[:], seed[:])
	if err != nil {
		return nil, err
	}

	// PKCS#7 padding: always 1..16 bytes, a full block when the plaintext fills its last one.
	pad := aes.BlockSize - len(plaintext)%aes.BlockSize
	ciphertext := make([]byte, len(plaintext)+pad)
	copy(ciphertext, plaintext)
	for i := len(plaintext); i < len(ciphertext); i++ {
		ciphertext[i] = byte(pad)
	}
	block, err := aes.NewCipher(cek[:])
	if err != nil {
		return nil, fmt.Errorf("kmsenvelope: build: %w", err)
	}
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(ciphertext, ciphertext)

	spkiHash := sha256.Sum256(recipientSPKI)
	ktri := buildTLV(tagSequence, buildVersion2, buildTLV(tagCtx0, spkiHash[:]), buildOAEPAlgorithm,
		buildTLV(tagOctetString, encryptedKey))
	contentAlgorithm := buildTLV(tagSequence, buildTLV(tagOID, oidAES256CBC), buildTLV(tagOctetString, iv[:]))

	var content []byte
	if opts.Primitive {
		content = buildTLV(tagCtx0, ciphertext)
	} else {
		var chunks [][]byte
		for rest := ciphertext; len(rest) > 0; {
			n := min(len(rest), buildChunk)
			chunks = append(chunks, buildTLV(tagOctetString, rest[:n]))
			rest = rest[n:]
		}
		content = buildIndefinite(tagCtx0Cons, chunks...)
	}
	encryptedContentInfo := buildIndefinite(tagSequence, buildTLV(tagOID, oidData), contentAlgorithm, content)
	envelopedData := buildIndefinite(tagSequence, buildVersion2, buildTLV(tagSet, ktri), encryptedContentInfo)
	return buildIndefinite(tagSequence, buildTLV(tagOID, oidEnvelopedData), buildIndefinite(tagCtx0Cons, envelopedData)), nil
}

// buildOAEP is RSAES-OAEP-ENCRYPT (RFC 8017 §7.1.1) with SHA-256, MGF1-SHA-256, an empty label and the
// caller's seed. crypto/rsa draws the seed itself (and from Go 1.26 ignores a custom reader), so a
// reproducible envelope needs the encoding done here; the RSA step is the textbook m^e mod n.
func buildOAEP(pub *rsa.PublicKey, msg, seed []byte) ([]byte, error) {
	k := pub.Size()
	hLen := sha256.Size
	if len(msg) > k-2*hLen-2 {
		return nil, errors.New("kmsenvelope: build: RSA key too small for OAEP with SHA-256")
	}
	em := make([]byte, k)
	maskedSeed := em[1 : 1+hLen]
	db := em[1+hLen:]
	lHash := sha256.Sum256(nil)
	copy(db, lHash[:])
	db[len(db)-len(msg)-1] = 0x01
	copy(db[len(db)-len(msg):], msg)
	copy(maskedSeed, seed)
	buildMGF1XOR(db, maskedSeed)
	buildMGF1XOR(maskedSeed, db)

	m := new(big.Int).SetBytes(em)
	c := m.Exp(m, big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, k)), nil
}

// buildMGF1XOR XORs out with MGF1-SHA-256(seed).
func buildMGF1XOR(out, seed []byte) {
	var counter [4]byte
	for done := 0; done < len(out); {
		h := sha256.New()
		h.Write(seed)
		h.Write(counter[:])
		for _, b := range h.Sum(nil) {
			if done == len(out) {
				break
			}
			out[done] ^= b
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}

// buildTLV encodes tag, a minimal definite length, and the concatenated contents.
func buildTLV(tag byte, contents ...[]byte) []byte {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	out := []byte{tag}
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	for _, c := range contents {
		out = append(out, c...)
	}
	return out
}

// buildIndefinite encodes tag with an indefinite length, the contents and the end-of-contents octets.
func buildIndefinite(tag byte, contents ...[]byte) []byte {
	out := []byte{tag, 0x80}
	for _, c := range contents {
		out = append(out, c...)
	}
	return append(out, 0x00, 0x00)
}
