package kmsenvelope

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// realEnvelopes are the six envelopes AWS KMS returned (testdata/INDEX.md) and the fields INDEX.md
// and the sources' own tests give for them.
var realEnvelopes = []struct {
	file   string
	size   int
	chunks []int  // nil: primitive [0]
	ridPfx string // leading bytes of the rid, where a source gives them
	ivHex  string
	ctPfx  string // leading bytes of the encrypted content
	ctSfx  string // trailing bytes
	ctLen  int
}{
	{"edgebit.ber", 493, []int{48}, "9631a0c6", "432bffaba264af82ce07c9bebeb52531", "7e9d16d1", "b6590fc5", 48},
	{"enclaver.ber", 461, []int{16}, "", "2c2ff1116ae6f8573fd58fd44f980624", "263a97b73a5ef0ad5db0274af9fc290c", "", 16},
	{"sdkc-1-chunked.ber", 493, []int{48}, "", "688c6d5f7f31b0fecedf09f2e7c99ac9", "70e5caaf", "ff19292e", 48},
	{"sdkc-2-primitive.ber", 457, nil, "", "e66c1172aee0f2f7be34e3afc6b0e4fe", "1f943eb0105c1b0644df4f7130448a28", "", 16},
	{"rustcrypto-1.ber", 461, []int{16}, "", "37343df1470df625eeb6f4bfd2f1acc3", "cc74adf65d973c8b72cd51e1b927f0f0", "", 16},
	{"rustcrypto-4-chunk1000.ber", 4573, []int{1000, 1000, 1000, 1000, 112}, "", "f92dcb53d4617d10fc5a8bff96d7d6ff", "cfee6403", "3ab173", 4112},
}

func TestParseRealEnvelopes(t *testing.T) {
	for _, r := range realEnvelopes {
		t.Run(r.file, func(t *testing.T) {
			b := readTestdata(t, r.file)
			if len(b) != r.size {
				t.Fatalf("size %d, want %d", len(b), r.size)
			}
			e, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.KeyID) != KeyIDSize || !strings.HasPrefix(hex.EncodeToString(e.KeyID), r.ridPfx) {
				t.Errorf("rid %x, want %d bytes starting %s", e.KeyID, KeyIDSize, r.ridPfx)
			}
			if len(e.EncryptedKey) != 256 {
				t.Errorf("encryptedKey %d bytes, want 256 (RSA-2048)", len(e.EncryptedKey))
			}
			if got := hex.EncodeToString(e.IV); got != r.ivHex {
				t.Errorf("iv %s, want %s", got, r.ivHex)
			}
			ct := hex.EncodeToString(e.EncryptedContent)
			if len(e.EncryptedContent) != r.ctLen || !strings.HasPrefix(ct, r.ctPfx) || !strings.HasSuffix(ct, r.ctSfx) {
				t.Errorf("encryptedContent %d bytes %.16s…, want %d bytes %s…%s", len(e.EncryptedContent), ct, r.ctLen, r.ctPfx, r.ctSfx)
			}
			if !equalInts(e.Chunks, r.chunks) {
				t.Errorf("chunks %v, want %v", e.Chunks, r.chunks)
			}
			if !e.HashParamsNull {
				t.Error("KMS writes NULL hash parameters; HashParamsNull is false")
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenRealEnvelopes(t *testing.T) {
	for _, c := range []struct {
		file, plain string
		key         *rsa.PrivateKey
	}{
		{"edgebit.ber", "edgebit.plain.bin", edgebitKey(t)},
		{"enclaver.ber", "enclaver.plain.bin", enclaverKey(t)},
	} {
		t.Run(c.file, func(t *testing.T) {
			b := readTestdata(t, c.file)
			e, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			id, err := KeyID(&c.key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(id, e.KeyID) {
				t.Fatalf("rid %x, SHA-256(SPKI) %x", e.KeyID, id)
			}
			got, err := Open(c.key, b)
			if err != nil {
				t.Fatal(err)
			}
			if want := readTestdata(t, c.plain); !bytes.Equal(got, want) {
				t.Fatalf("plaintext %x, want %x", got, want)
			}
		})
	}
	// Each key opens only its own envelope: the rid names the key.
	if _, err := Open(enclaverKey(t), readTestdata(t, "edgebit.ber")); !errors.Is(err, ErrOpen) {
		t.Fatalf("edgebit.ber with the enclaver key: %v, want ErrOpen", err)
	}
}

// TestAssemblerReproducesReal checks the tests' own assembler against a real envelope, so that the
// negative corpus it builds differs from KMS's template only where a test says.
func TestAssemblerReproducesReal(t *testing.T) {
	for _, name := range []string{"edgebit.ber", "sdkc-2-primitive.ber", "rustcrypto-4-chunk1000.ber"} {
		real := readTestdata(t, name)
		e, err := Parse(real)
		if err != nil {
			t.Fatal(err)
		}
		content := chunked(e.EncryptedContent, 1000)
		if e.Chunks == nil {
			content = tlv(tagCtx0, e.EncryptedContent)
		}
		f := fx{
			envVersion: tlv(tagInteger, []byte{2}),
			recipients: [][]byte{ktriParts{tlv(tagInteger, []byte{2}), tlv(tagCtx0, e.KeyID),
				oaepAlg(sha256Alg, sha256Alg), tlv(tagOctetString, e.EncryptedKey)}.bytes()},
			eci: eciOf(aesAlg(oidAES256CBC, e.IV), content, false),
		}
		if got := f.bytes(); !bytes.Equal(got, real) {
			t.Fatalf("%s: assembled %x\nreal %x", name, got, real)
		}
	}
}
