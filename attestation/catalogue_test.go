package attestation

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"sync"
	"testing"
	"time"
)

// level is one certificate below the root in a chain built by buildChain.
type level struct {
	tmpl *x509.Certificate
	key  *ecdsa.PrivateKey // nil: pub is used (non-ECDSA-P-384 leaf)
	pub  any
}

// defaultLevels mirrors newMockPKI below the root with fresh templates, so
// cases can change one certificate and re-issue the ones under it.
func defaultLevels(t testing.TB) []level {
	inst := caTemplate("i-0123456789abcdef0.us-east-1.aws.nitro-enclaves", 0, mockNow.Add(-12*time.Hour), mockNow.Add(12*time.Hour))
	inst.KeyUsage = x509.KeyUsageCertSign
	return []level{
		{tmpl: caTemplate("0123456789abcdef.us-east-1.aws.nitro-enclaves", 2, mockNow.AddDate(0, 0, -5), mockNow.AddDate(0, 0, 15)), key: key(t, "regional")},
		{tmpl: caTemplate("fedcba9876543210.zonal.us-east-1.aws.nitro-enclaves", 1, mockNow.AddDate(0, 0, -2), mockNow.AddDate(0, 0, 4)), key: key(t, "zonal")},
		{tmpl: inst, key: key(t, "instance")},
		{tmpl: leafTemplate(mockNow.Add(-time.Hour), mockNow.Add(2*time.Hour+3*time.Second)), key: key(t, "leaf")},
	}
}

// buildChain issues levels under root and points s at the result: cabundle =
// [root, levels[0..n-2]], leaf = levels[n-1], signer = the leaf key.
func buildChain(t testing.TB, s *docSpec, root mockCA, levels []level) {
	t.Helper()
	parent := root
	s.cabundle = [][]byte{root.cert.Raw}
	for i, l := range levels {
		pub := l.pub
		if l.key != nil {
			pub = &l.key.PublicKey
		}
		c := issue(t, l.tmpl, pub, &parent, nil)
		if i == len(levels)-1 {
			s.leaf = c
			if l.key != nil {
				s.signer = l.key
			}
			break
		}
		s.cabundle = append(s.cabundle, c.Raw)
		parent = mockCA{c, l.key}
	}
}

// chainWith rebuilds the default chain after edit changed its levels.
func chainWith(edit func(t testing.TB, ls []level) []level) func(t testing.TB, s *docSpec) {
	return func(t testing.TB, s *docSpec) {
		buildChain(t, s, newMockPKI(t).root, edit(t, defaultLevels(t)))
	}
}

var oidUnknownCritical = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 55555, 1}

type badCase struct {
	name string
	edit func(t testing.TB, s *docSpec) // changes the spec before it is built and signed
	opts func(o *Options)
	want error
	sub  string
}

func withSpec(f func(s *docSpec)) func(testing.TB, *docSpec) {
	return func(_ testing.TB, s *docSpec) { f(s) }
}

func withEnvelope(f func(protected, unprotected, payload, sig []byte) []byte) func(testing.TB, *docSpec) {
	return withSpec(func(s *docSpec) { s.envelope = f })
}

func standard(protected, unprotected, payload, sig []byte) []byte {
	return cat(cHead(4, 4), cBytes(protected), unprotected, cBytes(payload), cBytes(sig))
}

func atTime(t time.Time) func(o *Options) { return func(o *Options) { o.Time = t } }

// catalogue is the list of malicious or malformed documents (security.md
// §4.3), each signed by the mock PKI so that it reaches the check it targets.
func catalogue() []badCase {
	p384n := p384Order
	return []badCase{
		// --- envelope / COSE ---
		{name: "top-level map", want: ErrEnvelope, sub: "is a map",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cMap([]kv{{cUint(1), cBytes(pl)}}, false) })},
		{name: "top-level byte string", want: ErrEnvelope, sub: "is a byte string",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cBytes(standard(pr, u, pl, sig)) })},
		{name: "top-level integer", want: ErrEnvelope, sub: "unsigned integer",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cUint(7) })},
		{name: "array of 3", want: ErrEnvelope, sub: "3 elements",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cat(cHead(4, 3), cBytes(pr), u, cBytes(pl)) })},
		{name: "array of 5", want: ErrEnvelope, sub: "5 elements",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(4, 5), cBytes(pr), u, cBytes(pl), cBytes(sig), cNull)
			})},
		{name: "tag 17 (COSE_Mac0)", want: ErrEnvelope, sub: "tag 17",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cat(cHead(6, 17), standard(pr, u, pl, sig)) })},
		{name: "tag 98 (COSE_Sign)", want: ErrEnvelope, sub: "tag 98",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cat(cHead(6, 98), standard(pr, u, pl, sig)) })},
		{name: "nested tag 18(18(...))", want: ErrEnvelope, sub: "nested tag",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(6, 18), cHead(6, 18), standard(pr, u, pl, sig))
			})},
		{name: "trailing byte after the document", want: ErrCBOR, sub: "trailing",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cat(standard(pr, u, pl, sig), []byte{0}) })},
		{name: "second valid COSE_Sign1 appended", want: ErrCBOR, sub: "trailing",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				d := standard(pr, u, pl, sig)
				return cat(d, d)
			})},
		{name: "indefinite-length outer array", want: ErrCBOR, sub: "indefinite",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat([]byte{0x9f}, cBytes(pr), u, cBytes(pl), cBytes(sig), []byte{0xff})
			})},
		// The envelope keeps definite lengths (docs/verifier.md).
		{name: "indefinite-length protected header byte string", want: ErrCBOR, sub: "protected header: indefinite-length byte string",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(4, 4), []byte{0x5f}, cBytes(pr), []byte{0xff}, u, cBytes(pl), cBytes(sig))
			})},
		{name: "indefinite-length protected header map", want: ErrAlgorithm, sub: "not a definite-length map",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{0xbf, 0x01, 0x38, 0x22, 0xff} })},
		{name: "indefinite-length signature byte string", want: ErrCBOR, sub: "signature: indefinite-length byte string",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(4, 4), cBytes(pr), u, cBytes(pl), []byte{0x5f}, cBytes(sig), []byte{0xff})
			})},
		{name: "indefinite-length payload byte string", want: ErrCBOR, sub: "indefinite",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(4, 4), cBytes(pr), u, []byte{0x5f}, cBytes(pl[:10]), cBytes(pl[10:]), []byte{0xff}, cBytes(sig))
			})},
		{name: "non-minimal outer array head", want: ErrCBOR, sub: "non-minimal",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat([]byte{0x98, 0x04}, cBytes(pr), u, cBytes(pl), cBytes(sig))
			})},
		{name: "non-minimal payload length", want: ErrCBOR, sub: "non-minimal",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				n := len(pl)
				return cat(cHead(4, 4), cBytes(pr), u, []byte{0x5a, 0, 0, byte(n >> 8), byte(n)}, pl, cBytes(sig))
			})},
		{name: "protected header not a byte string", want: ErrEnvelope, sub: "protected header is a map",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(cHead(4, 4), pr, u, cBytes(pl), cBytes(sig))
			})},
		{name: "protected header empty", want: ErrAlgorithm, sub: "empty",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{} })},
		{name: "alg ES256 (-7)", want: ErrAlgorithm, sub: "not ES384",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{0xa1, 0x01, 0x26} })},
		{name: "alg ES512 (-36)", want: ErrAlgorithm, sub: "not ES384",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{0xa1, 0x01, 0x38, 0x23} })},
		{name: "alg EdDSA (-8)", want: ErrAlgorithm, sub: "not ES384",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{0xa1, 0x01, 0x27} })},
		{name: "alg as text \"ES384\"", want: ErrAlgorithm, sub: "not ES384",
			edit: withSpec(func(s *docSpec) { s.protected = cMap([]kv{{cUint(1), cText("ES384")}}, false) })},
		{name: "alg with crit parameter", want: ErrAlgorithm, sub: "2 parameters",
			edit: withSpec(func(s *docSpec) {
				s.protected = cMap([]kv{{cUint(1), []byte{0x38, 0x22}}, {cUint(2), cArray(cUint(1))}}, false)
			})},
		{name: "protected header with trailing bytes", want: ErrCBOR, sub: "trailing bytes after the protected header",
			edit: withSpec(func(s *docSpec) { s.protected = []byte{0xa1, 0x01, 0x38, 0x22, 0x00} })},
		{name: "alg only in the unprotected header", want: ErrAlgorithm, sub: "0 parameters",
			edit: withSpec(func(s *docSpec) { s.protected, s.unprotected = []byte{0xa0}, []byte{0xa1, 0x01, 0x38, 0x22} })},
		{name: "unprotected header with kid", want: ErrEnvelope, sub: "unprotected header is not an empty map",
			edit: withSpec(func(s *docSpec) { s.unprotected = cMap([]kv{{cUint(4), cBytes([]byte("k"))}}, false) })},
		{name: "unprotected header indefinite empty map", want: ErrEnvelope, sub: "unprotected",
			edit: withSpec(func(s *docSpec) { s.unprotected = []byte{0xbf, 0xff} })},
		{name: "signature 95 bytes", want: ErrSignature, sub: "95 bytes",
			edit: withSpec(func(s *docSpec) { s.signature = func(b []byte) []byte { return b[:95] } })},
		{name: "signature 97 bytes", want: ErrSignature, sub: "97 bytes",
			edit: withSpec(func(s *docSpec) { s.signature = func(b []byte) []byte { return append(b, 0) } })},
		{name: "DER-encoded signature", want: ErrSignature, sub: "bytes, want 96",
			edit: withSpec(func(s *docSpec) {
				s.signature = func(b []byte) []byte { return derSignature(nil, b[:48], b[48:]) }
			})},
		{name: "r = 0", want: ErrSignature, sub: "outside",
			edit: withSpec(func(s *docSpec) {
				s.signature = func(b []byte) []byte { return append(make([]byte, 48), b[48:]...) }
			})},
		{name: "s = n", want: ErrSignature, sub: "outside",
			edit: withSpec(func(s *docSpec) {
				s.signature = func(b []byte) []byte { return append(b[:48:48], p384n[:]...) }
			})},
		{name: "signature spliced from another document", want: ErrSignature, sub: "does not verify",
			edit: func(t testing.TB, s *docSpec) {
				other := baseSpec(t)
				other.nonce = []byte("another nonce")
				otherDoc := other.build(t)
				s.signature = func([]byte) []byte { return otherDoc[len(otherDoc)-96:] }
			}},
		{name: "signed by a key other than the leaf's", want: ErrSignature, sub: "does not verify",
			edit: func(t testing.TB, s *docSpec) { s.signer = key(t, "intruder") }},
		{name: "signed by the instance CA key", want: ErrSignature, sub: "does not verify",
			edit: func(t testing.TB, s *docSpec) { s.signer = newMockPKI(t).instance.key }},
		{name: "oversized input", want: ErrInput, sub: "at most 16384",
			edit: withEnvelope(func(pr, u, pl, sig []byte) []byte {
				return cat(standard(pr, u, pl, sig), make([]byte, MaxDocumentSize))
			})},
		{name: "payload empty", want: ErrPayload, sub: "empty",
			edit: withSpec(func(s *docSpec) { s.payload = func([]byte) []byte { return nil } })},
		{name: "payload an array", want: ErrPayload, sub: "want a map",
			edit: withSpec(func(s *docSpec) { s.payload = func(b []byte) []byte { return cArray(b) } })},
		{name: "trailing bytes inside the payload", want: ErrCBOR, sub: "trailing bytes after the payload map",
			edit: withSpec(func(s *docSpec) { s.payload = func(b []byte) []byte { return append(b, 0xf6) } })},
		{name: "payload map head non-minimal", want: ErrCBOR, sub: "non-minimal",
			edit: withSpec(func(s *docSpec) { s.payload = func(b []byte) []byte { return append([]byte{0xb8, 0x09}, b[1:]...) } })},
		{name: "payload map claims 10 entries", want: ErrPayload, sub: "10 entries",
			edit: withSpec(func(s *docSpec) { s.fields = addField(cText("extra"), cNull) })},
		{name: "indefinite payload map without break", want: ErrCBOR, sub: "unexpected end",
			edit: withSpec(func(s *docSpec) {
				s.indefinite = true
				s.payload = func(b []byte) []byte { return b[:len(b)-1] }
			})},

		// --- payload syntax ---
		{name: "module_id missing", want: ErrPayload, sub: "module_id is missing",
			edit: withSpec(func(s *docSpec) { s.fields = dropField("module_id") })},
		{name: "cabundle missing", want: ErrPayload, sub: "cabundle is missing",
			edit: withSpec(func(s *docSpec) { s.fields = dropField("cabundle") })},
		{name: "timestamp missing", want: ErrPayload, sub: "timestamp is missing",
			edit: withSpec(func(s *docSpec) { s.fields = dropField("timestamp") })},
		{name: "module_id null", want: ErrPayload, sub: "module_id is a simple value",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("module_id", cNull) })},
		{name: "certificate null", want: ErrPayload, sub: "certificate is a simple value",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("certificate", cNull) })},
		{name: "pcrs null", want: ErrPayload, sub: "pcrs is a simple value",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("pcrs", cNull) })},
		{name: "duplicate nonce", want: ErrCBOR, sub: `duplicate payload key "nonce"`,
			edit: withSpec(func(s *docSpec) {
				s.indefinite = true // 10 entries only fit an indefinite map
				s.fields = addField(cText("nonce"), cBytes([]byte("second")))
			})},
		{name: "duplicate pcrs", want: ErrCBOR, sub: `duplicate payload key "pcrs"`,
			edit: withSpec(func(s *docSpec) {
				s.indefinite = true
				s.fields = addField(cText("pcrs"), cMap([]kv{{cUint(0), cBytes(mockPCR(0))}}, false))
			})},
		{name: "duplicate PCR index", want: ErrCBOR, sub: "duplicate PCR index 3",
			edit: withSpec(func(s *docSpec) { s.pcrs = append(s.pcrs, kv{cUint(3), cBytes(mockPCR(9))}) })},
		{name: "case variant Nonce", want: ErrPayload, sub: `unknown field "Nonce"`,
			edit: withSpec(func(s *docSpec) {
				s.fields = func(es []kv) []kv { es[8].k = cText("Nonce"); return es }
			})},
		{name: "case variant PCRs", want: ErrPayload, sub: `unknown field "PCRs"`,
			edit: withSpec(func(s *docSpec) {
				s.fields = func(es []kv) []kv { es[3].k = cText("PCRs"); return es }
			})},
		{name: "unknown extra key", want: ErrPayload, sub: `unknown field "kid"`,
			edit: withSpec(func(s *docSpec) {
				s.fields = func(es []kv) []kv { return append(dropField("nonce")(es), kv{cText("kid"), cNull}) }
			})},
		{name: "integer payload key", want: ErrPayload, sub: "payload key is a unsigned integer",
			edit: withSpec(func(s *docSpec) { s.fields = func(es []kv) []kv { es[8].k = cUint(9); return es } })},
		{name: "module_id as bytes", want: ErrPayload, sub: "module_id is a byte string",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("module_id", cBytes([]byte("i-0"))) })},
		{name: "module_id empty", want: ErrPayload, sub: "module_id is 0 bytes",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("module_id", cText("")) })},
		{name: "module_id invalid UTF-8", want: ErrCBOR, sub: "UTF-8",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("module_id", cat(cHead(3, 2), []byte{0xc3, 0x28})) })},
		{name: "module_id indefinite text with a byte-string chunk", want: ErrCBOR, sub: "module_id is a byte string, want a text string",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("module_id", cat([]byte{0x7f}, cText("i-0"), cBytes([]byte("123")), []byte{0xff}))
			})},
		{name: "module_id text chunk splitting a UTF-8 sequence", want: ErrCBOR, sub: "UTF-8",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("module_id", cat([]byte{0x7f, 0x62, 'i', 0xc3, 0x61, 0xa9, 0xff}))
			})},
		{name: "certificate with a nested indefinite chunk", want: ErrCBOR, sub: "certificate: indefinite-length byte string",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("certificate", cat([]byte{0x5f, 0x5f}, cBytes(s.leaf.Raw), []byte{0xff, 0xff}))
			})},
		{name: "chunked nonce without a break at the end of the payload", want: ErrCBOR, sub: "has no break",
			edit: withSpec(func(s *docSpec) {
				s.indefinite = true
				s.fields = replaceField("nonce", cat([]byte{0x5f}, cBytes(s.nonce)))
				s.payload = func(b []byte) []byte { return b[:len(b)-1] } // the map's break
			})},
		{name: "digest SHA256", want: ErrDigest, sub: `"SHA256"`,
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("digest", cText("SHA256")) })},
		{name: "digest lower case", want: ErrDigest, sub: `"sha384"`,
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("digest", cText("sha384")) })},
		{name: "timestamp zero", want: ErrPayload, sub: "timestamp 0",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("timestamp", cUint(0)) })},
		{name: "timestamp negative", want: ErrPayload, sub: "timestamp is a negative integer",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("timestamp", cHead(1, uint64(mockNow.UnixMilli()))) })},
		{name: "timestamp float", want: ErrPayload, sub: "timestamp is a simple value or float",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("timestamp", []byte{0xfb, 0x42, 0x79, 0x4c, 0xc6, 0x0d, 0x80, 0x00, 0x00})
			})},
		{name: "timestamp bignum", want: ErrPayload, sub: "timestamp is a tag",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("timestamp", cat(cHead(6, 2), cBytes([]byte{0x01, 0x94, 0x6a, 0x4b, 0x5c, 0x00})))
			})},
		{name: "timestamp beyond year 9999", want: ErrPayload, sub: "out of range",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("timestamp", cUint(1<<63)) })},
		{name: "pcrs as an array", want: ErrPayload, sub: "pcrs is a array",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("pcrs", cArray(cBytes(mockPCR(0)))) })},
		{name: "PCR text key", want: ErrPCRs, sub: "PCR index is a text string",
			edit: withSpec(func(s *docSpec) { s.pcrs[5].k = cText("5") })},
		{name: "PCR negative key", want: ErrPCRs, sub: "PCR index is a negative integer",
			edit: withSpec(func(s *docSpec) { s.pcrs[5].k = cHead(1, 0) })},
		{name: "PCR index non-minimal", want: ErrCBOR, sub: "non-minimal",
			edit: withSpec(func(s *docSpec) { s.pcrs[5].k = []byte{0x18, 0x05} })},
		{name: "PCR index 32", want: ErrPCRs, sub: "index 32",
			edit: withSpec(func(s *docSpec) { s.pcrs = append(s.pcrs, kv{cUint(32), cBytes(mockPCR(1))}) })},
		{name: "PCR value 32 bytes", want: ErrPCRs, sub: "PCR4 is 32 bytes",
			edit: withSpec(func(s *docSpec) { s.pcrs[4].v = cBytes(mockPCR(4)[:32]) })},
		{name: "PCR value 64 bytes", want: ErrPCRs, sub: "PCR4 is 64 bytes",
			edit: withSpec(func(s *docSpec) { s.pcrs[4].v = cBytes(append(mockPCR(4), mockPCR(4)[:16]...)) })},
		{name: "PCR value null", want: ErrPCRs, sub: "PCR value is a simple value",
			edit: withSpec(func(s *docSpec) { s.pcrs[4].v = cNull })},
		{name: "pcrs empty", want: ErrPCRs, sub: "0 entries",
			edit: withSpec(func(s *docSpec) { s.pcrs = nil })},
		{name: "pcrs 33 entries", want: ErrPCRs, sub: "33 entries",
			edit: withSpec(func(s *docSpec) {
				for i := 16; i < 33; i++ {
					s.pcrs = append(s.pcrs, kv{cUint(uint64(i)), cBytes(mockPCR(i))})
				}
			})},
		{name: "PCR1 absent", want: ErrPCRs, sub: "PCR1 is missing",
			edit: withSpec(func(s *docSpec) { s.pcrs = append(s.pcrs[:1], s.pcrs[2:]...) })},
		{name: "indefinite pcrs map empty", want: ErrPCRs, sub: "0 entries",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("pcrs", cMap(nil, true)) })},
		{name: "indefinite pcrs map of 33 entries", want: ErrPCRs, sub: "more than 32 entries",
			edit: withSpec(func(s *docSpec) {
				for i := 16; i < 33; i++ {
					s.pcrs = append(s.pcrs, kv{cUint(uint64(i)), cBytes(mockPCR(i))})
				}
				s.fields = replaceField("pcrs", cMap(s.pcrs, true))
			})},
		{name: "duplicate PCR index in an indefinite map", want: ErrCBOR, sub: "duplicate PCR index 3",
			edit: withSpec(func(s *docSpec) {
				s.pcrs = append(s.pcrs, kv{cUint(3), cBytes(mockPCR(3))})
				s.fields = replaceField("pcrs", cMap(s.pcrs, true))
			})},
		{name: "cabundle empty", want: ErrPayload, sub: "0 entries",
			edit: withSpec(func(s *docSpec) { s.cabundle = nil })},
		{name: "cabundle 9 entries", want: ErrPayload, sub: "9 entries",
			edit: withSpec(func(s *docSpec) {
				for len(s.cabundle) < 9 {
					s.cabundle = append(s.cabundle, s.cabundle[1])
				}
			})},
		{name: "cabundle entry not bytes", want: ErrPayload, sub: "cabundle entry is a text string",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("cabundle", cArray(cBytes(s.cabundle[0]), cText("x")))
			})},
		{name: "cabundle entry empty", want: ErrPayload, sub: "cabundle[1] is 0 bytes",
			edit: withSpec(func(s *docSpec) { s.cabundle[1] = []byte{} })},
		{name: "cabundle entry over 1024 bytes", want: ErrPayload, sub: "cabundle[2] is 1025 bytes",
			edit: withSpec(func(s *docSpec) { s.cabundle[2] = make([]byte, 1025) })},
		{name: "indefinite cabundle empty", want: ErrPayload, sub: "cabundle has 0 entries",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("cabundle", []byte{0x9f, 0xff}) })},
		{name: "indefinite cabundle of 9 entries", want: ErrPayload, sub: "more than 8 entries",
			edit: withSpec(func(s *docSpec) {
				for len(s.cabundle) < 9 {
					s.cabundle = append(s.cabundle, s.cabundle[1])
				}
				s.fields = replaceField("cabundle", cIndefArray(s.cabundle))
			})},
		{name: "indefinite cabundle with a text entry", want: ErrPayload, sub: "cabundle entry is a text string",
			edit: withSpec(func(s *docSpec) {
				s.fields = replaceField("cabundle", cat([]byte{0x9f}, cBytes(s.cabundle[0]), cText("x"), []byte{0xff}))
			})},
		{name: "indefinite cabundle without a break", want: ErrCBOR, sub: "cabundle: unexpected end",
			edit: withSpec(func(s *docSpec) {
				s.fields = func(es []kv) []kv {
					es = dropField("cabundle")(es)
					b := cIndefArray(s.cabundle)
					return append(es, kv{cText("cabundle"), b[:len(b)-1]})
				}
			})},
		{name: "certificate empty", want: ErrPayload, sub: "certificate is 0 bytes",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("certificate", cBytes(nil)) })},
		{name: "certificate over 1024 bytes", want: ErrPayload, sub: "certificate is 1025 bytes",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("certificate", cBytes(make([]byte, 1025))) })},
		{name: "public_key empty", want: ErrPayload, sub: "public_key is 0 bytes",
			edit: withSpec(func(s *docSpec) { s.publicKey = []byte{} })},
		{name: "public_key 1025 bytes", want: ErrPayload, sub: "public_key is 1025 bytes",
			edit: withSpec(func(s *docSpec) { s.publicKey = make([]byte, 1025) })},
		{name: "user_data 1025 bytes", want: ErrPayload, sub: "user_data is 1025 bytes",
			edit: withSpec(func(s *docSpec) { s.userData = make([]byte, 1025) })},
		{name: "nonce 1025 bytes", want: ErrPayload, sub: "nonce is 1025 bytes",
			edit: withSpec(func(s *docSpec) { s.nonce = make([]byte, 1025) })},
		{name: "nonce as text", want: ErrPayload, sub: "nonce is a text string",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("nonce", cText("nonce")) })},

		// --- PKI ---
		{name: "cabundle root swapped for a fake root with the same subject", want: ErrChain, sub: "cabundle[0] is not the pinned root",
			edit: func(t testing.TB, s *docSpec) {
				fk := key(t, "fake-root")
				fake := mockCA{issue(t, caTemplate("aws.nitro-enclaves", -1, mockNow.AddDate(-5, 0, 0), mockNow.AddDate(25, 0, 0)), &fk.PublicKey, nil, fk), fk}
				buildChain(t, s, fake, defaultLevels(t))
			}},
		{name: "cabundle without the root", want: ErrChain, sub: "cabundle[0] is not the pinned root",
			edit: withSpec(func(s *docSpec) { s.cabundle = s.cabundle[1:] })},
		{name: "cabundle reversed", want: ErrChain, sub: "cabundle[0] is not the pinned root",
			edit: withSpec(func(s *docSpec) {
				c := s.cabundle
				s.cabundle = [][]byte{c[3], c[2], c[1], c[0]}
			})},
		{name: "cabundle intermediates shuffled", want: ErrChain, sub: "is not the subject of its parent",
			edit: withSpec(func(s *docSpec) {
				c := s.cabundle
				s.cabundle = [][]byte{c[0], c[2], c[1], c[3]}
			})},
		{name: "cabundle missing an intermediate", want: ErrChain, sub: "is not the subject of its parent",
			edit: withSpec(func(s *docSpec) { s.cabundle = append(s.cabundle[:2:2], s.cabundle[3]) })},
		{name: "cabundle with an extra unrelated CA at the end", want: ErrChain, sub: "leaf certificate issuer",
			edit: func(t testing.TB, s *docSpec) {
				k := key(t, "unrelated")
				other := issue(t, caTemplate("unrelated.aws.nitro-enclaves", 0, mockNow.AddDate(0, 0, -1), mockNow.AddDate(0, 0, 1)), &k.PublicKey, &newMockPKI(t).instance, nil)
				s.cabundle = append(s.cabundle, other.Raw)
			}},
		{name: "intermediate with CA:FALSE", want: ErrCertificate, sub: "cabundle[3] is not a CA",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[2].tmpl.IsCA, ls[2].tmpl.MaxPathLen, ls[2].tmpl.MaxPathLenZero = false, -1, false
				return ls
			})},
		{name: "intermediate without BasicConstraints", want: ErrCertificate, sub: "cabundle[2] is not a CA",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.BasicConstraintsValid, ls[1].tmpl.IsCA = false, false
				return ls
			})},
		{name: "intermediate with empty BasicConstraints (30 00)", want: ErrCertificate, sub: "cabundle[1] is not a CA",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[0].tmpl.BasicConstraintsValid, ls[0].tmpl.IsCA = false, false
				ls[0].tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 0x00}}}
				return ls
			})},
		{name: "intermediate without keyCertSign", want: ErrCertificate, sub: "cabundle[2] key usage lacks keyCertSign",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
				return ls
			})},
		{name: "path length exceeded on the regional CA", want: ErrChain, sub: "path length of 1",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[0].tmpl.MaxPathLen = 1
				return ls
			})},
		{name: "path length exceeded by an inserted CA", want: ErrChain, sub: "path length of 2, the chain has 3",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				extra := level{tmpl: caTemplate("inserted.aws.nitro-enclaves", -1, mockNow.AddDate(0, 0, -1), mockNow.AddDate(0, 0, 1)), key: key(t, "inserted")}
				return append(ls[:3:3], extra, ls[3])
			})},
		{name: "leaf is a CA", want: ErrCertificate, sub: "leaf certificate is a CA",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.IsCA = true
				return ls
			})},
		{name: "leaf without digitalSignature", want: ErrCertificate, sub: "lacks digitalSignature",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.KeyUsage = x509.KeyUsageKeyEncipherment
				return ls
			})},
		{name: "leaf without key usage", want: ErrCertificate, sub: "lacks digitalSignature",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.KeyUsage = 0
				return ls
			})},
		{name: "leaf key P-256", want: ErrCertificate, sub: "leaf certificate key is not ECDSA P-384",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].key = keyOn(t, "leaf", elliptic.P256())
				return ls
			})},
		{name: "leaf key P-521", want: ErrCertificate, sub: "leaf certificate key is not ECDSA P-384",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].key = keyOn(t, "leaf", elliptic.P521())
				return ls
			})},
		{name: "leaf key Ed25519", want: ErrCertificate, sub: "leaf certificate key is not ECDSA P-384",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				pub, _, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				ls[3].key, ls[3].pub = nil, pub
				return ls
			})},
		{name: "leaf signed with ecdsa-with-SHA256", want: ErrCertificate, sub: "ECDSA-SHA256",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
				return ls
			})},
		{name: "intermediate key P-256", want: ErrCertificate, sub: "cabundle[2] key is not ECDSA P-384",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].key = keyOn(t, "zonal", elliptic.P256())
				return ls
			})},
		{name: "unknown critical extension on the leaf", want: ErrCertificate, sub: "unhandled critical extension",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.ExtraExtensions = []pkix.Extension{{Id: oidUnknownCritical, Critical: true, Value: []byte{0x05, 0x00}}}
				return ls
			})},
		{name: "unknown critical extension on an intermediate", want: ErrCertificate, sub: "cabundle[1] has an unhandled critical extension",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[0].tmpl.ExtraExtensions = []pkix.Extension{{Id: oidUnknownCritical, Critical: true, Value: []byte{0x05, 0x00}}}
				return ls
			})},
		{name: "name constraints on an intermediate", want: ErrCertificate, sub: "name constraints",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.PermittedDNSDomains = []string{"aws"}
				return ls
			})},
		// RFC 5280 §6.1 rules that crypto/x509 parses and marks handled, so
		// they never show up as unhandled critical extensions.
		{name: "critical requireExplicitPolicy on an intermediate without policies", want: ErrCertificate, sub: "cabundle[2] carries policy constraints",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.ExtraExtensions = []pkix.Extension{policyConstraintsExt(0, -1, true)}
				return ls
			})},
		{name: "inhibitPolicyMapping on the leaf", want: ErrCertificate, sub: "leaf certificate carries policy constraints",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.ExtraExtensions = []pkix.Extension{policyConstraintsExt(-1, 0, false)}
				return ls
			})},
		{name: "policy mapping to anyPolicy on an intermediate", want: ErrCertificate, sub: "cabundle[1] carries policy mappings",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[0].tmpl.Policies = []x509.OID{oidPolicyA}
				ls[0].tmpl.ExtraExtensions = []pkix.Extension{policyMappingsExt(t, asn1PolicyA, asn1AnyPolicy, false)}
				return ls
			})},
		{name: "inhibitAnyPolicy on an intermediate", want: ErrCertificate, sub: "cabundle[3] carries inhibitAnyPolicy",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[2].tmpl.ExtraExtensions = []pkix.Extension{inhibitAnyPolicyExt(0, true)}
				return ls
			})},
		{name: "extended key usage clientAuth on the leaf", want: ErrCertificate, sub: "leaf certificate carries an extended key usage",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
				return ls
			})},
		{name: "extended key usage on an intermediate", want: ErrCertificate, sub: "cabundle[1] carries an extended key usage",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[0].tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				return ls
			})},
		{name: "directoryName constraints only (not in Go's fields)", want: ErrCertificate, sub: "cabundle[2] carries name constraints",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.ExtraExtensions = []pkix.Extension{directoryNameConstraints(t)}
				return ls
			})},
		{name: "leaf basic constraints with a pathLenConstraint", want: ErrCertificate, sub: "leaf certificate basic constraints carry a pathLenConstraint",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: []byte{0x30, 3, 0x02, 1, 0}}}
				return ls
			})},
		{name: "leaf from a sibling instance CA (other subject)", want: ErrChain, sub: "is not the subject of its parent",
			edit: func(t testing.TB, s *docSpec) {
				p := newMockPKI(t)
				sk := key(t, "sibling")
				tmpl := caTemplate("i-0fffffffffffffff0.us-east-1.aws.nitro-enclaves", 0, mockNow.Add(-12*time.Hour), mockNow.Add(12*time.Hour))
				sib := mockCA{issue(t, tmpl, &sk.PublicKey, &p.zonal, nil), sk}
				s.leaf = issue(t, leafTemplate(mockNow.Add(-time.Hour), mockNow.Add(2*time.Hour)), &p.leaf.key.PublicKey, &sib, nil)
			}},
		{name: "leaf from an impostor CA with the instance CA's name", want: ErrChain, sub: "is not signed by its parent",
			edit: func(t testing.TB, s *docSpec) {
				p := newMockPKI(t)
				ik := key(t, "impostor")
				imp := mockCA{&x509.Certificate{}, ik}
				*imp.cert = *p.instance.cert // same subject, different key
				imp.cert.PublicKey = &ik.PublicKey
				s.leaf = issue(t, leafTemplate(mockNow.Add(-time.Hour), mockNow.Add(2*time.Hour)), &p.leaf.key.PublicKey, &imp, nil)
			}},
		{name: "tampered leaf certificate", want: ErrChain, sub: "not signed by its parent",
			edit: func(t testing.TB, s *docSpec) {
				tampered := bytes.Clone(s.leaf.Raw)
				i := bytes.Index(tampered, []byte("i-0123456789abcdef0-enc"))
				tampered[i] = 'j'
				c, err := x509.ParseCertificate(tampered)
				if err != nil {
					t.Fatal(err)
				}
				s.leaf = c
			}},
		{name: "leaf certificate garbage", want: ErrCertificate, sub: "does not parse",
			edit: withSpec(func(s *docSpec) { s.fields = replaceField("certificate", cBytes([]byte{0x30, 0x03, 0x02, 0x01, 0x01})) })},
		{name: "leaf expired at verification time", want: ErrValidity, sub: "expired",
			opts: atTime(mockNow.Add(2*time.Hour + 4*time.Second))},
		{name: "leaf not yet valid", want: ErrValidity, sub: "not valid before",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[3].tmpl.NotBefore = mockNow.Add(10 * time.Minute)
				return ls
			})},
		{name: "zonal CA expired", want: ErrValidity, sub: "zonal",
			edit: chainWith(func(t testing.TB, ls []level) []level {
				ls[1].tmpl.NotAfter = mockNow.Add(-time.Minute)
				return ls
			})},
		{name: "root expired", want: ErrValidity, sub: "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US\" expired",
			edit: func(t testing.TB, s *docSpec) { buildChain(t, s, expiredRoot(t), defaultLevels(t)) },
			opts: func(o *Options) { o.Root = expiredRoot(nil).cert }},
		{name: "timestamp before the leaf validity", want: ErrTimestamp, sub: "outside the leaf certificate validity",
			edit: withSpec(func(s *docSpec) { s.timestamp = mockNow.Add(-time.Hour - time.Second) })},
		{name: "timestamp after the leaf validity", want: ErrTimestamp, sub: "outside the leaf certificate validity",
			edit: withSpec(func(s *docSpec) { s.timestamp = mockNow.Add(2*time.Hour + 30*time.Second) }),
			opts: atTime(mockNow.Add(2 * time.Hour))},
		{name: "real AWS document against the mock root (other partition)", want: ErrChain, sub: "cabundle[0] is not the pinned root",
			edit: withEnvelope(func(_, _, _, _ []byte) []byte {
				b, err := os.ReadFile("../testdata/nitro/real/bedrock-20250923-prod.cbor")
				if err != nil {
					panic(err)
				}
				return b
			})},

		// --- freshness and policy ---
		{name: "too old", want: ErrFreshness, sub: "old",
			opts: atTime(mockNow.Add(DefaultMaxAge + time.Second))},
		{name: "too old for a custom max age", want: ErrFreshness, sub: "old",
			opts: func(o *Options) { o.MaxAge = 500 * time.Millisecond }},
		{name: "timestamp in the future", want: ErrFreshness, sub: "ahead",
			edit: withSpec(func(s *docSpec) { s.timestamp = mockNow.Add(DefaultFutureSkew + 2*time.Second) })},
		{name: "debug mode", want: ErrDebug, sub: "debug-mode",
			edit: withSpec(func(s *docSpec) { zeroPCRs(s, 0, 1, 2) }),
			opts: func(o *Options) { o.PCRs, o.AnyPCRs = nil, true }},
		{name: "debug mode even with a policy pinning zeros", want: ErrDebug, sub: "debug-mode",
			edit: withSpec(func(s *docSpec) { zeroPCRs(s, 0, 1, 2) }),
			opts: func(o *Options) {
				z := make([]byte, pcrSize)
				o.PCRs = map[int][][]byte{0: {z}, 1: {z}, 2: {z}}
			}},
		{name: "PCR0 differs", want: ErrPCRPolicy, sub: "PCR0",
			opts: func(o *Options) { o.PCRs[0] = [][]byte{mockPCR(20)} }},
		{name: "PCR2 matches none of two values", want: ErrPCRPolicy, sub: "PCR2",
			opts: func(o *Options) { o.PCRs[2] = [][]byte{mockPCR(20), mockPCR(21)} }},
		{name: "pinned PCR16 absent", want: ErrPCRPolicy, sub: "PCR16 is required",
			opts: func(o *Options) { o.PCRs[16] = [][]byte{mockPCR(16)} }},
		{name: "only PCR3 zero is not debug but still pinned", want: ErrPCRPolicy, sub: "PCR3",
			edit: withSpec(func(s *docSpec) { zeroPCRs(s, 3) }),
			opts: func(o *Options) { o.PCRs[3] = [][]byte{mockPCR(3)} }},
		{name: "nonce differs", want: ErrNonce, sub: "differs",
			opts: func(o *Options) { o.Nonce = []byte("0123456789abcdef0124") }},
		{name: "nonce of another length", want: ErrNonce, sub: "differs",
			opts: func(o *Options) { o.Nonce = []byte("0123456789abcdef") }},
		{name: "nonce absent", want: ErrNonce, sub: "no nonce",
			edit: withSpec(func(s *docSpec) { s.nonce = nil }),
			opts: func(o *Options) { o.Nonce = []byte("0123456789abcdef0123") }},
		{name: "nonce empty but one expected", want: ErrNonce, sub: "differs",
			edit: withSpec(func(s *docSpec) { s.nonce = []byte{} }),
			opts: func(o *Options) { o.Nonce = []byte("0123456789abcdef0123") }},
		{name: "public_key differs", want: ErrPublicKey, sub: "differs",
			opts: func(o *Options) { o.PublicKey = bytes.Repeat([]byte{0x05}, 65) }},
		{name: "public_key absent", want: ErrPublicKey, sub: "no public_key",
			edit: withSpec(func(s *docSpec) { s.publicKey = nil }),
			opts: func(o *Options) { o.PublicKey = bytes.Repeat([]byte{0x04}, 65) }},
		{name: "user_data differs", want: ErrUserData, sub: "differs",
			opts: func(o *Options) { o.UserData = []byte("user datA") }},
		{name: "user_data absent", want: ErrUserData, sub: "no user_data",
			edit: withSpec(func(s *docSpec) { s.userData = nil }),
			opts: func(o *Options) { o.UserData = []byte("user data") }},
	}
}

// cChunked encodes data as an indefinite-length string of major type 2 or 3,
// in chunks of up to 7 bytes after an empty one (text must be ASCII, so no
// chunk splits a UTF-8 sequence).
func cChunked(major byte, data []byte) []byte {
	out := []byte{major<<5 | 31, major << 5}
	for len(data) > 0 {
		n := min(7, len(data))
		out = append(append(out, cHead(major, uint64(n))...), data[:n]...)
		data = data[n:]
	}
	return append(out, 0xff)
}

// cIndefArray is an indefinite-length array of byte strings.
func cIndefArray(items [][]byte) []byte {
	out := []byte{0x9f}
	for _, it := range items {
		out = append(out, cBytes(it)...)
	}
	return append(out, 0xff)
}

// directoryNameConstraints is a non-critical nameConstraints extension
// permitting one directoryName subtree: a form crypto/x509 skips (it fills
// none of its Permitted* fields), which the verifier still refuses.
func directoryNameConstraints(t testing.TB) pkix.Extension {
	name, err := asn1.Marshal(awsName("constrained").ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(tag byte, b []byte) []byte { return append([]byte{tag, byte(len(b))}, b...) }
	return pkix.Extension{Id: oidExtNameCons, Value: wrap(0x30, wrap(0xa0, wrap(0x30, wrap(0xa4, name))))}
}

var (
	expiredRootOnce sync.Once
	expiredRootCA   mockCA
)

// expiredRoot is a root that expired a minute before mockNow (the first call
// must pass a non-nil t).
func expiredRoot(t testing.TB) mockCA {
	expiredRootOnce.Do(func() {
		k := key(t, "expired-root")
		tmpl := caTemplate("aws.nitro-enclaves", -1, mockNow.AddDate(-5, 0, 0), mockNow.Add(-time.Minute))
		expiredRootCA = mockCA{issue(t, tmpl, &k.PublicKey, nil, k), k}
	})
	return expiredRootCA
}

func zeroPCRs(s *docSpec, idx ...int) {
	for _, i := range idx {
		s.pcrs[i].v = cBytes(make([]byte, pcrSize))
	}
}

type builtCase struct {
	badCase
	doc []byte
}

var (
	catalogueOnce  sync.Once
	catalogueBuilt []builtCase
)

// catalogueDocs builds (and signs) every catalogue document once per test
// binary: TestCatalogue and TestDifferential share them.
func catalogueDocs(t testing.TB) []builtCase {
	catalogueOnce.Do(func() {
		for _, c := range catalogue() {
			s := baseSpec(t)
			if c.edit != nil {
				c.edit(t, s)
			}
			catalogueBuilt = append(catalogueBuilt, builtCase{c, s.build(t)})
		}
	})
	return catalogueBuilt
}

// TestCatalogue verifies every malicious document twice, cold and through a
// chain cache warmed with the genuine mock chain, and asserts the rejection
// names the intended check and no other.
func TestCatalogue(t *testing.T) {
	cases := catalogueDocs(t)
	if len(cases) < 40 {
		t.Fatalf("catalogue has %d cases, want at least 40", len(cases))
	}
	base := baseSpec(t).build(t)
	baseCfg, err := (&Options{Root: newMockPKI(t).root.cert, Time: mockNow.Add(time.Second), AnyPCRs: true}).compile()
	if err != nil {
		t.Fatal(err)
	}
	cache := newChainCache(ChainCacheSize)
	if _, err := baseCfg.verify(base, cache, nil); err != nil {
		t.Fatalf("genuine mock document rejected: %v", err)
	}
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := mockOptions(t)
			if c.opts != nil {
				c.opts(&opts)
			}
			d, err := Verify(c.doc, opts)
			wantRejected(t, d, err, c.want, c.sub)
			cfg, err := opts.compile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.root != baseCfg.root {
				return // the shared cache holds chains verified under the mock root only
			}
			d, err = cfg.verify(c.doc, cache, cfg.nonce)
			wantRejected(t, d, err, c.want, c.sub)
		})
	}
}

// TestMockAccepted covers the legitimate variations a strict verifier must
// still accept.
func TestMockAccepted(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(t testing.TB, s *docSpec)
		opts  func(o *Options)
		check func(t *testing.T, d *Document)
	}{
		{name: "baseline", check: func(t *testing.T, d *Document) {
			if d.ModuleID != "i-0123456789abcdef0-enc0123456789abcdef" || !d.Timestamp.Equal(mockNow) || d.Debug {
				t.Errorf("document %+v", d)
			}
			if len(d.PCRs) != 16 || !bytes.Equal(d.PCRs[7], mockPCR(7)) {
				t.Errorf("PCRs %x", d.PCRs)
			}
			if string(d.Nonce) != "0123456789abcdef0123" || string(d.UserData) != "user data" || len(d.PublicKey) != 65 {
				t.Errorf("aux fields %q %q %x", d.Nonce, d.UserData, d.PublicKey)
			}
			if len(d.Chain) != 5 || d.Chain[0].Subject != newMockPKI(t).leaf.cert.Subject.String() || d.Chain[4].SHA256 != sha256Of(newMockPKI(t).root.cert.Raw) {
				t.Errorf("chain %+v", d.Chain)
			}
			if !d.VerifiedAt.Equal(mockNow.Add(time.Second)) {
				t.Errorf("VerifiedAt %v", d.VerifiedAt)
			}
		}},
		{name: "tagged 18", edit: withEnvelope(func(pr, u, pl, sig []byte) []byte { return cat(cHead(6, 18), standard(pr, u, pl, sig)) })},
		{name: "indefinite-length payload map", edit: withSpec(func(s *docSpec) { s.indefinite = true })},
		{name: "indefinite pcrs map", edit: withSpec(func(s *docSpec) { s.fields = replaceField("pcrs", cMap(s.pcrs, true)) }),
			check: func(t *testing.T, d *Document) {
				if len(d.PCRs) != 16 || !bytes.Equal(d.PCRs[15], mockPCR(15)) {
					t.Errorf("PCRs %x", d.PCRs)
				}
			}},
		{name: "indefinite cabundle", edit: withSpec(func(s *docSpec) { s.fields = replaceField("cabundle", cIndefArray(s.cabundle)) }),
			check: func(t *testing.T, d *Document) {
				if len(d.Chain) != 5 {
					t.Errorf("chain of %d", len(d.Chain))
				}
			}},
		{name: "chunked strings everywhere (keys, text, certificates, PCRs, optionals)", edit: withSpec(func(s *docSpec) {
			s.indefinite = true
			s.fields = func(es []kv) []kv {
				es = replaceField("module_id", cChunked(3, []byte("i-0123456789abcdef0-enc0123456789abcdef")))(es)
				es = replaceField("digest", cat([]byte{0x7f}, cText("SHA"), cText(""), cText("384"), []byte{0xff}))(es)
				es = replaceField("certificate", cChunked(2, s.leaf.Raw))(es)
				bundle := make([][]byte, len(s.cabundle))
				for i, c := range s.cabundle {
					bundle[i] = cChunked(2, c)
				}
				es = replaceField("cabundle", cat([]byte{0x9f}, cat(bundle...), []byte{0xff}))(es)
				pcrs := make([]kv, len(s.pcrs))
				for i := range s.pcrs {
					pcrs[i] = kv{s.pcrs[i].k, cChunked(2, mockPCR(i))}
				}
				es = replaceField("pcrs", cMap(pcrs, true))(es)
				es = replaceField("public_key", cChunked(2, s.publicKey))(es)
				es = replaceField("user_data", cChunked(2, s.userData))(es)
				es = replaceField("nonce", []byte{0x5f, 0x40, 0xff})(es) // one empty chunk
				for i := range es {
					es[i].k = cChunked(3, es[i].k[1:]) // the keys are under 24 bytes: one-byte heads
				}
				return es
			}
		}), opts: func(o *Options) {
			o.UserData, o.PublicKey, o.Nonce = []byte("user data"), bytes.Repeat([]byte{0x04}, 65), []byte{}
		},
			check: func(t *testing.T, d *Document) {
				if d.ModuleID != "i-0123456789abcdef0-enc0123456789abcdef" || len(d.Chain) != 5 || !bytes.Equal(d.PCRs[7], mockPCR(7)) {
					t.Errorf("document %+v", d)
				}
				if d.Nonce == nil || len(d.Nonce) != 0 {
					t.Errorf("nonce %#v, want present and empty", d.Nonce)
				}
			}},
		{name: "fields in CDDL order (timestamp before digest)", edit: withSpec(func(s *docSpec) {
			s.fields = func(es []kv) []kv {
				es[1], es[2] = es[2], es[1]
				return es
			}
		})},
		{name: "optionals null", edit: withSpec(func(s *docSpec) { s.publicKey, s.userData, s.nonce = nil, nil, nil }),
			check: func(t *testing.T, d *Document) {
				if d.PublicKey != nil || d.UserData != nil || d.Nonce != nil {
					t.Errorf("absent fields not nil: %x %x %x", d.PublicKey, d.UserData, d.Nonce)
				}
			}},
		{name: "user_data and nonce empty", edit: withSpec(func(s *docSpec) { s.userData, s.nonce = []byte{}, []byte{} }),
			opts: func(o *Options) { o.Nonce, o.UserData = []byte{}, []byte{} },
			check: func(t *testing.T, d *Document) {
				if d.UserData == nil || len(d.UserData) != 0 || d.Nonce == nil || len(d.Nonce) != 0 {
					t.Errorf("empty fields: %#v %#v", d.UserData, d.Nonce)
				}
			}},
		{name: "aux fields at 1024 bytes", edit: withSpec(func(s *docSpec) {
			s.publicKey, s.userData, s.nonce = make([]byte, 1024), make([]byte, 1024), make([]byte, 1024)
		})},
		{name: "second allowed PCR0 value", opts: func(o *Options) { o.PCRs[0] = [][]byte{mockPCR(20), mockPCR(0)} }},
		{name: "pinned PCR16 present", edit: withSpec(func(s *docSpec) { s.pcrs = append(s.pcrs, kv{cUint(16), cBytes(mockPCR(16))}) }),
			opts: func(o *Options) { o.PCRs[16] = [][]byte{mockPCR(16)} }},
		{name: "all 32 PCRs", edit: withSpec(func(s *docSpec) {
			for i := 16; i < 32; i++ {
				s.pcrs = append(s.pcrs, kv{cUint(uint64(i)), cBytes(mockPCR(i))})
			}
		})},
		{name: "debug allowed", edit: withSpec(func(s *docSpec) { zeroPCRs(s, 0, 1, 2) }),
			opts:  func(o *Options) { o.PCRs, o.AnyPCRs, o.AllowDebug = nil, true, true },
			check: func(t *testing.T, d *Document) { checkDebug(t, d, true) }},
		{name: "PCR0 zero alone is not debug", edit: withSpec(func(s *docSpec) { zeroPCRs(s, 0) }),
			opts:  func(o *Options) { o.PCRs, o.AnyPCRs = nil, true },
			check: func(t *testing.T, d *Document) { checkDebug(t, d, false) }},
		{name: "old document with NoMaxAge", opts: func(o *Options) { o.Time, o.MaxAge = mockNow.Add(2*time.Hour), NoMaxAge }},
		{name: "at document time", opts: func(o *Options) { o.Time, o.AtDocumentTime = time.Time{}, true },
			check: func(t *testing.T, d *Document) {
				if !d.VerifiedAt.Equal(mockNow) {
					t.Errorf("VerifiedAt %v", d.VerifiedAt)
				}
			}},
		{name: "timestamp within future skew", edit: withSpec(func(s *docSpec) { s.timestamp = mockNow.Add(DefaultFutureSkew) })},
		{name: "expected nonce, public_key and user_data", opts: func(o *Options) {
			o.Nonce, o.PublicKey, o.UserData = []byte("0123456789abcdef0123"), bytes.Repeat([]byte{0x04}, 65), []byte("user data")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := baseSpec(t)
			if c.edit != nil {
				c.edit(t, s)
			}
			doc := s.build(t)
			opts := mockOptions(t)
			if c.opts != nil {
				c.opts(&opts)
			}
			d, err := Verify(doc, opts)
			if err != nil || d == nil {
				t.Fatalf("rejected: %v", err)
			}
			var p parsed
			if err := parse(doc, &p); err != nil {
				t.Fatal(err)
			}
			checkAgainstGeneric(t, doc, &p) // fxamacker reads the same document
			if c.check != nil {
				c.check(t, d)
			}
		})
	}
}

func checkDebug(t *testing.T, d *Document, want bool) {
	t.Helper()
	if d.Debug != want {
		t.Errorf("Debug = %v, want %v", d.Debug, want)
	}
}

// TestRewrappedDocumentIsTheSame: the outer tag is not signed, so a tagged
// copy verifies to the same content; callers must not key replay caches on
// the raw bytes (security.md §1.4.11).
func TestRewrappedDocumentIsTheSame(t *testing.T) {
	plain := baseSpec(t).build(t)
	tagged := cat(cHead(6, 18), plain)
	opts := mockOptions(t)
	a, err := Verify(plain, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Verify(tagged, opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.ModuleID != b.ModuleID || !bytes.Equal(a.Nonce, b.Nonce) || !a.Timestamp.Equal(b.Timestamp) {
		t.Fatalf("re-wrapped document differs: %v vs %v", a, b)
	}
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
