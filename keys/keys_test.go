package keys

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

var (
	setOnce             sync.Once
	setXWing, setX25519 *Set
	setErr              error
)

// testSets generates one Set per KEM for the whole package (RSA generation
// is the slow part).
func testSets(t *testing.T) (xwing, x25519 *Set) {
	t.Helper()
	setOnce.Do(func() {
		if setXWing, setErr = Generate(Config{}); setErr != nil {
			return
		}
		setX25519, setErr = Generate(Config{HPKEKEM: KEMX25519})
	})
	if setErr != nil {
		t.Fatal(setErr)
	}
	return setXWing, setX25519
}

func mustGet(t *testing.T, s *Set, name string) *Key {
	t.Helper()
	k, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGenerateDefault(t *testing.T) {
	s, _ := testSets(t)
	var names []string
	for _, k := range s.Keys() {
		names = append(names, k.Name())
	}
	if strings.Join(names, ",") != "hpke,rsa" {
		t.Fatalf("names = %v", names)
	}

	h := mustGet(t, s, HPKE)
	if len(h.PublicKey()) != 1216 || h.Binding() != BindingDigest || !strings.Contains(h.Algorithm(), "0x647a") {
		t.Errorf("hpke: %d-byte key, binding %s, %s", len(h.PublicKey()), h.Binding(), h.Algorithm())
	}
	pk, err := hpke.MLKEM768X25519().NewPublicKey(h.PublicKey())
	if err != nil {
		t.Fatalf("hpke public key does not parse as X-Wing: %v", err)
	}
	if !bytes.Equal(pk.Bytes(), h.PublicKey()) {
		t.Error("hpke public key does not round-trip")
	}
	doc := h.DocumentPublicKey()
	if HPKEBindingSize != 65 || len(doc) != 65 || !bytes.HasPrefix(doc, []byte("attestd-hpke-v1\x64\x7a")) {
		t.Errorf("hpke document public_key = %x", doc)
	}
	if err := CheckBinding(HPKE, doc, h.PublicKey()); err != nil {
		t.Error(err)
	}

	r := mustGet(t, s, RSA)
	if r.Binding() != BindingWhole || !bytes.Equal(r.DocumentPublicKey(), r.PublicKey()) {
		t.Error("rsa key not bound whole")
	}
	pub, err := x509.ParsePKIXPublicKey(r.DocumentPublicKey())
	if err != nil {
		t.Fatal(err)
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok || rk.N.BitLen() != 2048 || rk.E != 65537 {
		t.Fatalf("rsa public key = %T", pub)
	}
	if n := len(r.DocumentPublicKey()); n != 294 {
		t.Errorf("RSA-2048 SPKI DER is %d bytes, want 294", n)
	}
	if err := CheckBinding(RSA, r.DocumentPublicKey(), r.PublicKey()); err != nil {
		t.Error(err)
	}
	// Accessors return copies: callers cannot corrupt the key.
	r.PublicKey()[0] ^= 1
	h.DocumentPublicKey()[0] ^= 1
	if err := CheckBinding(RSA, r.DocumentPublicKey(), r.PublicKey()); err != nil {
		t.Error(err)
	}
	if err := CheckBinding(HPKE, h.DocumentPublicKey(), h.PublicKey()); err != nil {
		t.Error(err)
	}
}

func TestGenerateX25519(t *testing.T) {
	_, s := testSets(t)
	h := mustGet(t, s, HPKE)
	if len(h.PublicKey()) != 32 || !strings.Contains(h.Algorithm(), "0x0020") {
		t.Errorf("hpke: %d bytes, %s", len(h.PublicKey()), h.Algorithm())
	}
	if !bytes.HasPrefix(h.DocumentPublicKey(), []byte("attestd-hpke-v1\x00\x20")) {
		t.Errorf("document public_key = %x", h.DocumentPublicKey())
	}
	if err := CheckBinding(HPKE, h.DocumentPublicKey(), h.PublicKey()); err != nil {
		t.Error(err)
	}
}

func TestGenerateRejectsUnknownKEM(t *testing.T) {
	if _, err := Generate(Config{HPKEKEM: "p256"}); err == nil {
		t.Fatal("accepted")
	}
}

func TestGetUnknown(t *testing.T) {
	s, _ := testSets(t)
	if _, err := s.Get("ed25519"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
}

// TestHPKEBindingVector pins the binding encoding to bytes computed
// independently (Python: b"attestd-hpke-v1" + b"\x00\x20" + sha384(bytes(range(32)))).
func TestHPKEBindingVector(t *testing.T) {
	pub := make([]byte, 32)
	for i := range pub {
		pub[i] = byte(i)
	}
	want, _ := hex.DecodeString("617474657374642d68706b652d76310020e7112491faeefd57786da73f367b25a6f5769f5c98fa7b704d8d37747724a647371989e8b0fe8d3cb23f9eedd528456b")
	if got := hpkeBinding(KEMIDX25519, pub); !bytes.Equal(got, want) {
		t.Fatalf("binding = %x\nwant      %x", got, want)
	}
	if err := CheckBinding(HPKE, want, pub); err != nil {
		t.Fatal(err)
	}
}

func TestCheckBindingRejects(t *testing.T) {
	xw, x := testSets(t)
	h, hx := mustGet(t, xw, HPKE), mustGet(t, x, HPKE)
	r, rx := mustGet(t, xw, RSA), mustGet(t, x, RSA)
	doc := h.DocumentPublicKey()

	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	withKEM := func(id uint16) []byte {
		b := bytes.Clone(doc)
		b[len(HPKEBindingTag)], b[len(HPKEBindingTag)+1] = byte(id>>8), byte(id)
		return b
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecSPKI, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallSPKI, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)

	cases := []struct {
		name     string
		key      string
		doc, pub []byte
	}{
		{"another HPKE key", HPKE, doc, mustGet(t, mustGenerate(t), HPKE).PublicKey()},
		{"digest bit flipped", HPKE, flip(doc, len(doc)-1), h.PublicKey()},
		{"tag changed", HPKE, flip(doc, 0), h.PublicKey()},
		{"version changed", HPKE, bytes.Replace(doc, []byte("-v1"), []byte("-v2"), 1), h.PublicKey()},
		{"truncated", HPKE, doc[:len(doc)-1], h.PublicKey()},
		{"extended", HPKE, append(bytes.Clone(doc), 0), h.PublicKey()},
		{"empty", HPKE, nil, h.PublicKey()},
		{"KEM id swapped to X25519", HPKE, withKEM(KEMIDX25519), h.PublicKey()},
		{"unsupported KEM P-256", HPKE, withKEM(0x0010), h.PublicKey()},
		{"X25519 binding, X-Wing key", HPKE, hx.DocumentPublicKey(), h.PublicKey()},
		{"full key truncated", HPKE, doc, h.PublicKey()[:1215]},
		{"RSA SPKI as HPKE binding", HPKE, r.DocumentPublicKey(), r.PublicKey()},
		{"HPKE binding as RSA", RSA, doc, doc},
		{"other RSA key returned", RSA, r.DocumentPublicKey(), rx.PublicKey()},
		{"RSA key missing", RSA, r.DocumentPublicKey(), nil},
		{"RSA-1024", RSA, smallSPKI, smallSPKI},
		{"ECDSA SPKI", RSA, ecSPKI, ecSPKI},
		{"RSA SPKI with trailing byte", RSA, append(r.PublicKey(), 0), append(r.PublicKey(), 0)},
		{"unknown key name", "ed25519", doc, h.PublicKey()},
	}
	for _, c := range cases {
		err := CheckBinding(c.key, c.doc, c.pub)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if c.key == "ed25519" {
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("%s: err = %v", c.name, err)
			}
		} else if !errors.Is(err, ErrBindingMismatch) {
			t.Errorf("%s: err = %v, want ErrBindingMismatch", c.name, err)
		}
	}
}

func mustGenerate(t *testing.T) *Set {
	t.Helper()
	s, err := Generate(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// secretForms returns the encodings in which private key bytes could leak.
func secretForms(t *testing.T, s *Set) []string {
	t.Helper()
	var raw [][]byte
	for _, k := range s.keys {
		switch {
		case k.hpkeKey != nil:
			b, err := k.hpkeKey.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b)
		case k.rsaKey != nil:
			raw = append(raw, k.rsaKey.D.Bytes(), k.rsaKey.Primes[0].Bytes(), k.rsaKey.Primes[1].Bytes())
			der, err := x509.MarshalPKCS8PrivateKey(k.rsaKey)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, der[len(der)-64:])
		}
	}
	var forms []string
	for _, b := range raw {
		b = b[:16] // any 16-byte prefix of a secret is a leak
		forms = append(forms, string(b), hex.EncodeToString(b), strings.ToUpper(hex.EncodeToString(b)),
			base64.StdEncoding.EncodeToString(b)[:20], base64.RawURLEncoding.EncodeToString(b)[:20],
			fmt.Sprint(b[:8])[1:20]) // fmt's "[12 34 …]" byte-slice form
	}
	for _, k := range s.keys {
		if k.rsaKey != nil {
			forms = append(forms, k.rsaKey.D.String()[:30], k.rsaKey.Primes[0].String()[:30])
		}
	}
	return forms
}

// TestPrivateKeysNeverFormatted formats and logs the keys every way a careless
// caller might and checks that no private byte comes out.
func TestPrivateKeysNeverFormatted(t *testing.T) {
	for _, s := range []*Set{mustGenerate(t), must(Generate(Config{HPKEKEM: KEMX25519}))} {
		var out bytes.Buffer
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			fmt.Fprintf(&out, verb+"\n", s)
			fmt.Fprintf(&out, verb+"\n", *s)
			for _, k := range s.keys {
				fmt.Fprintf(&out, verb+"\n", k)
				fmt.Fprintf(&out, verb+"\n", *k)
			}
		}
		for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
			log := slog.New(h)
			log.Info("set", "set", s, "deref", *s)
			for _, k := range s.keys {
				log.Info("key", "key", k, "deref", *k, slog.Any("any", k))
			}
		}
		for _, v := range []any{s, *s, s.keys[0], *s.keys[1]} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
		}
		text := out.String()
		if !strings.Contains(text, "hpke key (") || !strings.Contains(text, `"algorithm":"RSA-2048 (SPKI DER)"`) {
			t.Fatalf("the output does not describe the keys at all:\n%s", text)
		}
		for _, f := range secretForms(t, s) {
			if strings.Contains(text, f) {
				t.Fatalf("private key material %q in formatted output:\n%s", f, text)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestSecretFormsFindLeaks makes sure the leak check can fail: a deliberate
// dump of the private key is caught.
func TestSecretFormsFindLeaks(t *testing.T) {
	s, _ := testSets(t)
	forms := secretForms(t, s)
	hb, _ := s.keys[0].hpkeKey.Bytes()
	leaks := []string{
		fmt.Sprintf("%+v", s.keys[1].rsaKey),
		hex.EncodeToString(hb),
		base64.StdEncoding.EncodeToString(hb),
		fmt.Sprint(hb),
	}
	for _, leak := range leaks {
		found := false
		for _, f := range forms {
			found = found || strings.Contains(leak, f)
		}
		if !found {
			t.Errorf("leak not detected: %.60s…", leak)
		}
	}
}

func TestKEMIDsMatchStandardLibrary(t *testing.T) {
	if id := hpke.MLKEM768X25519().ID(); id != KEMIDMLKEM768X25519 {
		t.Errorf("X-Wing id = %#x", id)
	}
	if id := hpke.DHKEM(ecdh.X25519()).ID(); id != KEMIDX25519 {
		t.Errorf("X25519 id = %#x", id)
	}
}
