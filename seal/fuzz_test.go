package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"testing"

	"github.com/attestd/attestd/internal/keybind"
)

// exampleKey is the fixed key of docs/sealing.md's worked example and of the fuzz targets:
// DHKEM(X25519) DeriveKeyPair(ikm = 00 01 02 … 1f).
func exampleKey(t testing.TB) recipient {
	t.Helper()
	ikm := make([]byte, 32)
	for i := range ikm {
		ikm[i] = byte(i)
	}
	k, err := hpke.DHKEM(ecdh.X25519()).DeriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.PublicKey().Bytes()
	return recipient{k, pub, keybind.HPKE(keybind.KEMIDX25519, pub)}
}

// FuzzParse: parse never panics, what it accepts has the shape it checked and re-assembles to
// the input, and OpenHPKE answers only ErrOpenFailed or the plaintext.
func FuzzParse(f *testing.F) {
	r := exampleKey(f)
	for _, aad := range [][]byte{nil, []byte("aad")} {
		f.Add(mustSeal(f, r, aad, []byte("seed")))
	}
	f.Add([]byte(Tag))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parse(b)
		if err == nil {
			if e.kdf != KDFHKDFSHA256 || (e.aead != AEADAES256GCM && e.aead != AEADChaCha20Poly1305) ||
				len(e.aad) > MaxAAD || len(e.ct) < tagSize || len(e.ct) > MaxPlaintext+tagSize ||
				len(e.enc) != encSize(kemIDOf(e.binding)) {
				t.Fatalf("parse accepted %+v", e)
			}
			var re []byte
			re = append(re, b[:headerSize]...)
			re = append(append(append(re, e.aad...), e.enc...), e.ct...)
			if !bytes.Equal(re, b) {
				t.Fatal("fields do not re-assemble to the input")
			}
		}
		pt, aad, oerr := OpenHPKE(r.priv, r.binding, b)
		if oerr != nil && (oerr != ErrOpenFailed || pt != nil || aad != nil) {
			t.Fatalf("open: %v", oerr)
		}
		if oerr == nil && err != nil {
			t.Fatal("opened what parse refuses")
		}
	})
}

// FuzzOpen seals a fuzzed plaintext and aad, opens it, and opens it again with one fuzzed byte
// changed: the round trip holds and any change is ErrOpenFailed.
func FuzzOpen(f *testing.F) {
	r := exampleKey(f)
	f.Add([]byte("context"), []byte("attested secret"), uint32(0), byte(1))
	f.Add([]byte{}, []byte{}, uint32(90), byte(0x80))
	f.Fuzz(func(t *testing.T, aad, pt []byte, pos uint32, x byte) {
		env, err := SealHPKE(r.binding, r.public, aad, pt)
		if len(aad) > MaxAAD || len(pt) > MaxPlaintext {
			if err == nil {
				t.Fatal("sealed over the bounds")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		got, gotAAD, err := OpenHPKE(r.priv, r.binding, env)
		if err != nil || !bytes.Equal(got, pt) || !bytes.Equal(gotAAD, aad) {
			t.Fatalf("round trip: %v", err)
		}
		if x == 0 {
			return
		}
		env[int(pos)%len(env)] ^= x
		if got, gotAAD, err := OpenHPKE(r.priv, r.binding, env); err != ErrOpenFailed || got != nil || gotAAD != nil {
			t.Fatalf("changed byte %d: %q %q %v", int(pos)%len(env), got, gotAAD, err)
		}
	})
}
