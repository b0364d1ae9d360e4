package kmsenvelope

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// spkiOf is the SubjectPublicKeyInfo DER of key: for the two keyed real envelopes, SHA-256 of it is their
// rid, so these are the bytes KMS hashed.
func spkiOf(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return spki
}

// TestBuildReproducesRealEnvelopes: given the recipient's SPKI, the plaintext and the content key, IV and OAEP
// seed recovered from a real KMS envelope with its private key, Build returns that envelope byte for byte.
func TestBuildReproducesRealEnvelopes(t *testing.T) {
	for name, key := range map[string]*rsa.PrivateKey{"edgebit": edgebitKey(t), "enclaver": enclaverKey(t)} {
		t.Run(name, func(t *testing.T) {
			random, err := hex.DecodeString(strings.TrimSpace(string(readTestdata(t, "build/"+name+".rand.hex"))))
			if err != nil || len(random) != 32+16+32 {
				t.Fatalf("%s.rand.hex: %d bytes, %v", name, len(random), err)
			}
			want := readTestdata(t, name+".ber")
			got, err := Build(spkiOf(t, key), readTestdata(t, name+".plain.bin"), BuildOptions{Rand: bytes.NewReader(random)})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Build differs from the real envelope at byte %d\n got %x\nwant %x", firstDiff(got, want), got, want)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// Offsets of the random fields in KMS's template for an RSA-2048 recipient (shared/reference/kms.md §1.1).
const (
	tmplRID        = 33  // 32 bytes
	tmplEncKey     = 131 // 256 bytes
	tmplIV         = 415 // 16 bytes
	tmplContentTag = 431 // a0 80 chunks... 00 00, or 80 len ciphertext
)

// maskRandom zeroes the random fields of an RSA-2048 envelope in KMS's template (rid, encryptedKey, IV, the
// encrypted content) and returns the masked copy and the content chunk lengths, so that two envelopes with
// the same template and content length compare equal.
func maskRandom(t *testing.T, env []byte) ([]byte, []int) {
	t.Helper()
	m := bytes.Clone(env)
	if len(m) < tmplContentTag+2 {
		t.Fatalf("envelope of %d bytes is shorter than the template", len(m))
	}
	clear(m[tmplRID : tmplRID+32])
	clear(m[tmplEncKey : tmplEncKey+256])
	clear(m[tmplIV : tmplIV+16])
	i := tmplContentTag
	// one primitive (80) or a constructed indefinite [0] (a0 80) of OCTET STRING chunks (04)
	readChunk := func() int {
		hdr := m[i]
		i++
		n := int(m[i])
		i++
		if n&0x80 != 0 {
			k := n & 0x7f
			n = 0
			for range k {
				n = n<<8 | int(m[i])
				i++
			}
		}
		if hdr != 0x80 && hdr != 0x04 {
			t.Fatalf("unexpected tag %#x at %d", hdr, i-2)
		}
		clear(m[i : i+n])
		i += n
		return n
	}
	var chunks []int
	if m[i] == 0x80 {
		chunks = append(chunks, readChunk())
	} else {
		if m[i] != 0xa0 || m[i+1] != 0x80 {
			t.Fatalf("content is %x, neither 80 nor a0 80", m[i:i+2])
		}
		i += 2
		for m[i] == 0x04 {
			chunks = append(chunks, readChunk())
		}
	}
	return m, chunks
}

// TestBuildTemplateMatchesEveryRealEnvelope: for each of the six real envelopes (four without a key), an
// envelope built for the same content length, in the same form, is identical once the random fields are
// masked: the same bytes outside rid, encryptedKey, IV and ciphertext, the same chunking, the same EOCs.
func TestBuildTemplateMatchesEveryRealEnvelope(t *testing.T) {
	spki := spkiOf(t, edgebitKey(t)) // any RSA-2048 recipient
	for _, tc := range []struct {
		file      string
		primitive bool
		chunks    []int // from INDEX.md / RustCrypto's test
	}{
		{"edgebit.ber", false, []int{48}},
		{"enclaver.ber", false, []int{16}},
		{"rustcrypto-1.ber", false, []int{16}},
		{"rustcrypto-4-chunk1000.ber", false, []int{1000, 1000, 1000, 1000, 112}},
		{"sdkc-1-chunked.ber", false, []int{48}},
		{"sdkc-2-primitive.ber", true, []int{16}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			real := readTestdata(t, tc.file)
			realMasked, realChunks := maskRandom(t, real)
			if fmt.Sprint(realChunks) != fmt.Sprint(tc.chunks) {
				t.Fatalf("real chunks %v, INDEX.md says %v", realChunks, tc.chunks)
			}
			total := 0
			for _, n := range realChunks {
				total += n
			}
			// total-16 bytes of plaintext pad (with a full block) to total bytes of ciphertext.
			built, err := Build(spki, make([]byte, total-16), BuildOptions{Primitive: tc.primitive})
			if err != nil {
				t.Fatal(err)
			}
			builtMasked, builtChunks := maskRandom(t, built)
			if fmt.Sprint(builtChunks) != fmt.Sprint(tc.chunks) {
				t.Fatalf("built chunks %v, want %v", builtChunks, tc.chunks)
			}
			if !bytes.Equal(builtMasked, realMasked) {
				t.Fatalf("template differs at byte %d\nbuilt %x\n real %x", firstDiff(builtMasked, realMasked), builtMasked, realMasked)
			}
		})
	}
}

// TestBuildOpensWithOpenSSL: OpenSSL, an independent CMS implementation, opens what Build makes for a fresh
// key, in both forms and at the plaintext sizes around the block and chunk boundaries. (OpenSSL ignores the
// rid without a certificate; the rid is covered by the byte-for-byte tests above.)
func TestBuildOpensWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl not found: scripts/ensure-tools.sh installs it")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, primitive := range []bool{false, true} {
		for _, n := range []int{0, 1, 15, 16, 17, 32, 999, 1000, 1001, MaxBuildPlaintext} {
			t.Run(fmt.Sprintf("primitive=%v/%d", primitive, n), func(t *testing.T) {
				plaintext := make([]byte, n)
				if _, err := rand.Read(plaintext); err != nil {
					t.Fatal(err)
				}
				env, err := Build(spki, plaintext, BuildOptions{Primitive: primitive})
				if err != nil {
					t.Fatal(err)
				}
				envFile := filepath.Join(dir, "env.ber")
				if err := os.WriteFile(envFile, env, 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(openssl, "cms", "-decrypt", "-inform", "DER", "-in", envFile,
					"-inkey", keyFile, "-binary").Output()
				if err != nil {
					t.Fatalf("openssl cms -decrypt: %v", err)
				}
				if !bytes.Equal(out, plaintext) {
					t.Fatalf("openssl opened %d bytes %x, want %x", len(out), out, plaintext)
				}
			})
		}
	}
}

// TestBuildOpens: the package's own strict opener takes what Build makes, in both forms, at the sizes
// around the block and chunk boundaries (and the parser finds the rid of the key).
func TestBuildOpens(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki := spkiOf(t, key)
	for _, primitive := range []bool{false, true} {
		for _, n := range []int{0, 1, 15, 16, 17, 32, 999, 1000, 1001, MaxBuildPlaintext} {
			plaintext := make([]byte, n)
			if _, err := rand.Read(plaintext); err != nil {
				t.Fatal(err)
			}
			env, err := Build(spki, plaintext, BuildOptions{Primitive: primitive})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Open(key, env)
			if err != nil || !bytes.Equal(got, plaintext) {
				t.Fatalf("primitive=%v, %d bytes: Open = %x, %v", primitive, n, got, err)
			}
		}
	}
}

// TestBuildFreshRandomness: without a Rand, two envelopes of the same plaintext share no random field.
func TestBuildFreshRandomness(t *testing.T) {
	spki := spkiOf(t, edgebitKey(t))
	a, err := Build(spki, []byte("same"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(spki, []byte("same"), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a[tmplRID:tmplRID+32], b[tmplRID:tmplRID+32]) {
		t.Error("the rid depends only on the SPKI, yet differs")
	}
	for _, f := range []struct {
		name     string
		off, len int
	}{{"encryptedKey", tmplEncKey, 256}, {"IV", tmplIV, 16}, {"ciphertext", tmplContentTag + 4, 16}} {
		if bytes.Equal(a[f.off:f.off+f.len], b[f.off:f.off+f.len]) {
			t.Errorf("%s repeats across two builds", f.name)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	rsaSPKI := spkiOf(t, edgebitKey(t))
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSPKI, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		spki      []byte
		plaintext []byte
		rand      []byte
		want      string
	}{
		{"EC key", ecSPKI, nil, nil, "not RSA"},
		{"not an SPKI", []byte{0x30, 0x00}, nil, nil, "recipient public key"},
		{"SPKI with trailing bytes", append(bytes.Clone(rsaSPKI), 0), nil, nil, "recipient public key"},
		{"plaintext over KMS's maximum", rsaSPKI, make([]byte, MaxBuildPlaintext+1), nil, "more than 4096"},
		{"randomness runs out", rsaSPKI, nil, make([]byte, 32+16+31), "randomness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := BuildOptions{}
			if tc.rand != nil {
				opts.Rand = bytes.NewReader(tc.rand)
			}
			env, err := Build(tc.spki, tc.plaintext, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build = %d bytes, %v; want an error containing %q", len(env), err, tc.want)
			}
		})
	}
}
