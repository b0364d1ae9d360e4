package seal

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
)

// The test vectors: testdata/rfc9180.json holds the base-mode DHKEM(X25519) entries of Go 1.26's
// crypto/hpke/testdata/rfc9180.json (RFC 9180 Appendix A, with the 1,000 encryptions and exports
// accumulated into a SHAKE128 digest), testdata/hpke-pq.json the X-Wing (0x647a) entries of its
// hpke-pq.json (draft-ietf-hpke-pq). They run through newRecipient, the HPKE path of OpenHPKE.
type vector struct {
	Mode        uint16 `json:"mode"`
	KEM         uint16 `json:"kem_id"`
	KDF         uint16 `json:"kdf_id"`
	AEAD        uint16 `json:"aead_id"`
	Info        string `json:"info"`
	IkmR        string `json:"ikmR"`
	SkRm        string `json:"skRm"`
	PkRm        string `json:"pkRm"`
	Enc         string `json:"enc"`
	Encryptions []struct {
		Aad, Ct, Pt string
	} `json:"encryptions"`
	Exports []struct {
		Context string `json:"exporter_context"`
		L       int    `json:"L"`
		Value   string `json:"exported_value"`
	} `json:"exports"`
	AccExports string `json:"exports_accumulated"`
}

// rfc9180First is the first encryption (sequence 0) of the two RFC 9180 vectors whose ciphertexts
// Go's file only accumulates: Appendix A.2.1.1 (ChaCha20-Poly1305) and the CFRG test-vectors.json
// entry for AES-256-GCM (mode 0, KEM 0x0020, KDF 0x0001, AEAD 0x0002).
var rfc9180First = map[uint16]struct{ aad, pt, ct string }{
	AEADAES256GCM: {"436f756e742d30", "4265617574792069732074727574682c20747275746820626561757479",
		"e5d84cd531cfb583096e7cfa9641bd3079cf3a91cda813c52deb5f512be9931980a41de125a925cdad859d5b7a"},
	AEADChaCha20Poly1305: {"436f756e742d30", "4265617574792069732074727574682c20747275746820626561757479",
		"1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadVectors(t *testing.T, name string) []vector {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// draw reads a length byte and that many bytes, as Go's accumulated vectors do.
func draw(t *testing.T, r io.Reader) []byte {
	var l [1]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, l[0])
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectors(t *testing.T) {
	opened := map[string]int{}
	for _, file := range []string{"rfc9180.json", "hpke-pq.json"} {
		for _, v := range loadVectors(t, file) {
			name := fmt.Sprintf("%s kem %04x kdf %04x aead %04x", file, v.KEM, v.KDF, v.AEAD)
			t.Run(name, func(t *testing.T) {
				if v.Mode != 0 {
					t.Fatalf("mode %d: only base-mode vectors are kept", v.Mode)
				}
				kem, err := hpke.NewKEM(v.KEM)
				if err != nil {
					t.Fatal(err)
				}
				sk, err := kem.NewPrivateKey(unhex(t, v.SkRm))
				if err != nil {
					t.Fatal(err)
				}
				derived, err := kem.DeriveKeyPair(unhex(t, v.IkmR))
				if err != nil {
					t.Fatal(err)
				}
				if pk := unhex(t, v.PkRm); !bytes.Equal(sk.PublicKey().Bytes(), pk) || !bytes.Equal(derived.PublicKey().Bytes(), pk) {
					t.Fatal("skRm / ikmR do not give pkRm")
				}
				enc, info := unhex(t, v.Enc), unhex(t, v.Info)
				if len(enc) != encSize(v.KEM) {
					t.Fatalf("vector enc is %d bytes, encSize says %d", len(enc), encSize(v.KEM))
				}
				r, err := newRecipient(sk, v.KDF, v.AEAD, info, enc)
				supported := v.KDF == KDFHKDFSHA256 && (v.AEAD == AEADAES256GCM || v.AEAD == AEADChaCha20Poly1305)
				if !supported {
					if err == nil {
						t.Fatal("the opener accepted a suite outside HKDF-SHA256 with AES-256-GCM or ChaCha20-Poly1305")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				// The key schedule, checked through the recipient's exporter.
				if v.AccExports != "" {
					source, sink := sha3.NewSHAKE128(), sha3.NewSHAKE128()
					for l := range 1000 {
						out, err := r.Export(string(draw(t, source)), l)
						if err != nil {
							t.Fatal(err)
						}
						sink.Write(out)
					}
					got := make([]byte, 16)
					sink.Read(got)
					if !bytes.Equal(got, unhex(t, v.AccExports)) {
						t.Fatalf("accumulated exports %x, want %s", got, v.AccExports)
					}
				}
				for _, e := range v.Exports {
					out, err := r.Export(string(unhex(t, e.Context)), e.L)
					if err != nil || !bytes.Equal(out, unhex(t, e.Value)) {
						t.Fatalf("export %s: %x %v", e.Context, out, err)
					}
				}
				// The first encryption, opened by a fresh recipient (an envelope holds one message).
				first, ok := rfc9180First[v.AEAD]
				if len(v.Encryptions) > 0 {
					first, ok = struct{ aad, pt, ct string }{v.Encryptions[0].Aad, v.Encryptions[0].Pt, v.Encryptions[0].Ct}, true
				}
				if !ok {
					t.Fatal("no first encryption for this vector")
				}
				r, err = newRecipient(sk, v.KDF, v.AEAD, info, enc)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := r.Open(unhex(t, first.aad), unhex(t, first.ct))
				if err != nil || !bytes.Equal(pt, unhex(t, first.pt)) {
					t.Fatalf("first encryption: %x %v", pt, err)
				}
				opened[fmt.Sprintf("%04x/%04x/%04x", v.KEM, v.KDF, v.AEAD)]++
				// A wrong enc size never reaches the KEM.
				if _, err := newRecipient(sk, v.KDF, v.AEAD, info, enc[1:]); err == nil {
					t.Fatal("short enc accepted")
				}
				if _, err := newRecipient(sk, v.KDF, v.AEAD, info, append(bytes.Clone(enc), 0)); err == nil {
					t.Fatal("long enc accepted")
				}
			})
		}
	}
	for _, want := range []string{"0020/0001/0002", "0020/0001/0003", "647a/0001/0003"} {
		if opened[want] == 0 {
			t.Errorf("no vector opened for %s (opened: %v)", want, opened)
		}
	}
}
