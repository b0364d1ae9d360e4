package kmsenvelope

// Bounds of the template.
const (
	// MaxSize bounds a whole envelope: AWS documents CiphertextForRecipient as 1..6144 bytes (the
	// largest real one, for KMS's largest plaintext of 4096 bytes, is 4573).
	MaxSize = 6144
	// KeyIDSize is the size of the rid: SHA-256 of the recipient's SubjectPublicKeyInfo DER.
	KeyIDSize = 32
	// IVSize is AES-CBC's IV size.
	IVSize = 16
	// ContentKeySize is the AES-256 content-encryption key size.
	ContentKeySize = 32
	// maxEncryptedKey bounds encryptedKey: RSA-4096 at most (KMS uses RSA-2048, 256 bytes).
	maxEncryptedKey = 512
	blockSize       = 16
)

// DER contents of the OIDs in the template.
var (
	oidEnvelopedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03} // 1.2.840.113549.1.7.3
	oidData          = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01} // 1.2.840.113549.1.7.1
	oidRSAESOAEP     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07} // 1.2.840.113549.1.1.7
	oidMGF1          = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08} // 1.2.840.113549.1.1.8
	oidPSpecified    = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09} // 1.2.840.113549.1.1.9
	oidSHA256        = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01} // 2.16.840.1.101.3.4.2.1
	oidAES256CBC     = []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a} // 2.16.840.1.101.3.4.1.42
)

// Envelope is a parsed CiphertextForRecipient. Its byte slices alias the parsed input, except
// EncryptedContent when it was chunked.
type Envelope struct {
	// KeyID is the rid: SHA-256 of the recipient's SubjectPublicKeyInfo DER (KeyIDSize bytes).
	KeyID []byte
	// EncryptedKey is the RSAES-OAEP (SHA-256, MGF1-SHA-256, empty label) encrypted content key.
	EncryptedKey []byte
	// IV is the AES-256-CBC IV (IVSize bytes).
	IV []byte
	// EncryptedContent is the AES-256-CBC ciphertext, chunks joined: a positive multiple of 16 bytes.
	EncryptedContent []byte
	// Chunks lists the sizes of the OCTET STRING chunks of a constructed encryptedContent in order;
	// nil when encryptedContent was primitive.
	Chunks []int
	// HashParamsNull reports whether the sha256 AlgorithmIdentifiers carried NULL parameters (KMS
	// writes NULL; OpenSSL omits them). Both are accepted; the parser requires them consistent.
	HashParamsNull bool
}

// Parse parses a CiphertextForRecipient strictly against KMS's template (see the package
// documentation). It checks everything that does not need the private key: the rid's size but not
// its value, the content key's encrypted size bound but not its plaintext size, the ciphertext's
// size but not its padding. Errors are *FieldError.
func Parse(ber []byte) (*Envelope, error) {
	if len(ber) > MaxSize {
		return nil, fieldErr("ContentInfo", "%d bytes exceed %d", len(ber), MaxSize)
	}
	var e Envelope
	top := &reader{b: ber, field: "ContentInfo"}

	ci, err := top.enter(tagSequence, "ContentInfo", true)
	if err != nil {
		return nil, err
	}
	if err := ci.oid(oidEnvelopedData, "contentType"); err != nil {
		return nil, err
	}
	explicit, err := ci.enter(tagCtx0Cons, "content", true)
	if err != nil {
		return nil, err
	}
	ed, err := explicit.enter(tagSequence, "EnvelopedData", true)
	if err != nil {
		return nil, err
	}
	if err := ed.smallInt(2, "EnvelopedData.version"); err != nil {
		return nil, err
	}
	if t, ok := ed.peek(); ok && t == tagCtx0Cons {
		return nil, fieldErr("originatorInfo", "present; the template has none")
	}
	if err := parseRecipientInfos(ed, &e); err != nil {
		return nil, err
	}
	if err := parseEncryptedContentInfo(ed, &e); err != nil {
		return nil, err
	}
	if t, ok := ed.peek(); ok && t == tagCtx1Cons {
		return nil, fieldErr("unprotectedAttrs", "present; the template has none")
	}
	for _, r := range []*reader{ed, explicit, ci} {
		if err := r.leave(); err != nil {
			return nil, err
		}
	}
	if len(top.b) != 0 {
		return nil, fieldErr("ContentInfo", "%d trailing bytes", len(top.b))
	}
	return &e, nil
}

func parseRecipientInfos(ed *reader, e *Envelope) error {
	set, err := ed.enter(tagSet, "recipientInfos", false)
	if err != nil {
		return err
	}
	if t, ok := set.peek(); !ok {
		return fieldErr("recipientInfos", "empty")
	} else if t != tagSequence {
		// [1] kari, [2] kekri, [3] pwri, [4] ori.
		return fieldErr("recipientInfos", "tag 0x%02x: not a KeyTransRecipientInfo", t)
	}
	ktri, err := set.enter(tagSequence, "KeyTransRecipientInfo", false)
	if err != nil {
		return err
	}
	if !set.atEnd() {
		return fieldErr("recipientInfos", "more than one recipient")
	}
	// Version 0 goes with issuerAndSerialNumber (a certificate's issuer and serial), the shape
	// LocalStack emits. KMS never sends it: its recipient has no certificate, and an issuer and
	// serial would not name this request's key, so the envelope is refused rather than opened
	// with whatever key is at hand.
	if err := ktri.smallInt(2, "KeyTransRecipientInfo.version"); err != nil {
		return err
	}
	if e.KeyID, err = ktri.primitive(tagCtx0, "rid", KeyIDSize, KeyIDSize); err != nil {
		if t, ok := ktri.peek(); ok && t == tagSequence {
			return fieldErr("rid", "issuerAndSerialNumber; want subjectKeyIdentifier [0]")
		}
		return err
	}
	if err := parseOAEP(ktri, e); err != nil {
		return err
	}
	if e.EncryptedKey, err = ktri.primitive(tagOctetString, "encryptedKey", 1, maxEncryptedKey); err != nil {
		return err
	}
	if err := ktri.leave(); err != nil {
		return err
	}
	return set.leave()
}

// parseOAEP reads keyEncryptionAlgorithm: rsaesOaep with [0] sha256, [1] mgf1(sha256) and no label.
// RFC 4055's defaults for an absent [0] or [1] are SHA-1, so both are required.
func parseOAEP(ktri *reader, e *Envelope) error {
	alg, err := ktri.enter(tagSequence, "keyEncryptionAlgorithm", false)
	if err != nil {
		return err
	}
	if err := alg.oid(oidRSAESOAEP, "keyEncryptionAlgorithm"); err != nil {
		return err
	}
	params, err := alg.enter(tagSequence, "RSAES-OAEP-params", false)
	if err != nil {
		return err
	}
	hf, err := params.enter(tagCtx0Cons, "hashFunc", false)
	if err != nil {
		return err
	}
	if e.HashParamsNull, err = sha256AlgID(hf, "hashFunc"); err != nil {
		return err
	}
	if err := hf.leave(); err != nil {
		return err
	}
	mg, err := params.enter(tagCtx1Cons, "maskGenFunc", false)
	if err != nil {
		return err
	}
	mgAlg, err := mg.enter(tagSequence, "maskGenFunc", false)
	if err != nil {
		return err
	}
	if err := mgAlg.oid(oidMGF1, "maskGenFunc"); err != nil {
		return err
	}
	mgfNull, err := sha256AlgID(mgAlg, "maskGenFunc.hash")
	if err != nil {
		return err
	}
	if mgfNull != e.HashParamsNull {
		return fieldErr("maskGenFunc.hash", "NULL parameters in one sha256 AlgorithmIdentifier only")
	}
	for _, r := range []*reader{mgAlg, mg} {
		if err := r.leave(); err != nil {
			return err
		}
	}
	if t, ok := params.peek(); ok && t == tagCtx2Cons {
		if err := emptyLabel(params); err != nil {
			return err
		}
	}
	if err := params.leave(); err != nil {
		return err
	}
	return alg.leave()
}

// sha256AlgID reads the AlgorithmIdentifier SEQUENCE { sha256 [, NULL] } and reports whether the
// NULL was there.
func sha256AlgID(r *reader, field string) (bool, error) {
	a, err := r.enter(tagSequence, field, false)
	if err != nil {
		return false, err
	}
	if err := a.oid(oidSHA256, field); err != nil {
		return false, err
	}
	null := false
	if !a.atEnd() {
		if _, err := a.primitive(tagNull, field+".parameters", 0, 0); err != nil {
			return false, err
		}
		null = true
	}
	return null, a.leave()
}

// emptyLabel reads pSourceFunc [2] and accepts only pSpecified with an empty label (the default
// that DER would omit; KMS omits it).
func emptyLabel(params *reader) error {
	ps, err := params.enter(tagCtx2Cons, "pSourceFunc", false)
	if err != nil {
		return err
	}
	a, err := ps.enter(tagSequence, "pSourceFunc", false)
	if err != nil {
		return err
	}
	if err := a.oid(oidPSpecified, "pSourceFunc"); err != nil {
		return err
	}
	label, err := a.primitive(tagOctetString, "pSourceFunc.label", 0, maxEncryptedKey)
	if err != nil {
		return err
	}
	if len(label) != 0 {
		return fieldErr("pSourceFunc.label", "%d bytes; the template's label is empty", len(label))
	}
	if err := a.leave(); err != nil {
		return err
	}
	return ps.leave()
}

func parseEncryptedContentInfo(ed *reader, e *Envelope) error {
	eci, err := ed.enter(tagSequence, "encryptedContentInfo", true)
	if err != nil {
		return err
	}
	if err := eci.oid(oidData, "encryptedContentInfo.contentType"); err != nil {
		return err
	}
	alg, err := eci.enter(tagSequence, "contentEncryptionAlgorithm", false)
	if err != nil {
		return err
	}
	if err := alg.oid(oidAES256CBC, "contentEncryptionAlgorithm"); err != nil {
		return err
	}
	if e.IV, err = alg.primitive(tagOctetString, "iv", IVSize, IVSize); err != nil {
		return err
	}
	if err := alg.leave(); err != nil {
		return err
	}
	if err := parseContent(eci, e); err != nil {
		return err
	}
	return eci.leave()
}

// parseContent reads encryptedContent [0]: primitive, or constructed with primitive OCTET STRING
// chunks (one level; any non-zero sizes). KMS has sent both forms.
func parseContent(eci *reader, e *Envelope) error {
	const field = "encryptedContent"
	t, ok := eci.peek()
	if !ok {
		return fieldErr(field, "missing")
	}
	switch t {
	case tagCtx0:
		v, err := eci.primitive(tagCtx0, field, 0, MaxSize)
		if err != nil {
			return err
		}
		e.EncryptedContent = v
	case tagCtx0Cons:
		c, err := eci.enter(tagCtx0Cons, field, true)
		if err != nil {
			return err
		}
		for !c.atEnd() {
			chunk, err := c.primitive(tagOctetString, field+".chunk", 1, MaxSize)
			if err != nil {
				return err
			}
			e.Chunks = append(e.Chunks, len(chunk))
			e.EncryptedContent = append(e.EncryptedContent, chunk...)
		}
		if e.Chunks == nil {
			return fieldErr(field, "no chunks")
		}
		if err := c.leave(); err != nil {
			return err
		}
	default:
		return fieldErr(field, "tag 0x%02x, want 0x80 or 0xa0", t)
	}
	if n := len(e.EncryptedContent); n == 0 || n%blockSize != 0 {
		return fieldErr(field, "%d bytes, not a positive multiple of %d", n, blockSize)
	}
	return nil
}
