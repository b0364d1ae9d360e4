package seal

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/keybind"
)

// openFails checks that env does not open, with exactly ErrOpenFailed, and that parse rejects it
// for the reason given (a substring of its detailed error; "" when parse accepts and the
// cryptography refuses).
func openFails(t *testing.T, name string, r recipient, env []byte, parseErr string) {
	t.Helper()
	pt, aad, err := OpenHPKE(r.priv, r.binding, env)
	if err != ErrOpenFailed || pt != nil || aad != nil {
		t.Errorf("%s: opened (%q, %q) or wrong error %v", name, pt, aad, err)
	}
	_, perr := parse(env)
	switch {
	case parseErr == "" && perr != nil:
		t.Errorf("%s: parse refused (%v); the test meant the cryptography to", name, perr)
	case parseErr != "" && (perr == nil || !strings.Contains(perr.Error(), parseErr)):
		t.Errorf("%s: parse error %v, want %q", name, perr, parseErr)
	}
}

func set16(b []byte, off int, v uint16) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[off:], v)
	return b
}

// TestEnvelopeEveryField flips every byte of an envelope (each field), truncates it at every
// length and lengthens it: nothing opens, and the parser names the field it checks.
func TestEnvelopeEveryField(t *testing.T) {
	for _, r := range []recipient{x25519(t), xwing(t)} {
		aad := []byte("context")
		env := mustSeal(t, r, aad, []byte("the secret"))
		encLen := encSize(r.priv.KEM().ID())
		aadEnd := headerSize + len(aad)
		fieldOf := func(i int) (string, string) {
			switch {
			case i < len(Tag):
				return "tag", "tag"
			case i < aeadOffset:
				return "kdf_id", "kdf_id"
			case i < bindingOffset:
				return "aead_id", "aead_id"
			case i < bindingOffset+len(keybind.HPKETag)+2:
				return "B tag/KEM", "B:"
			case i < aadLenOffset:
				return "B digest", "" // well-formed, another key: only the opener's comparison refuses
			case i < headerSize:
				return "aad_len", "" // checked below with exact values
			case i < aadEnd:
				return "aad", ""
			case i < aadEnd+encLen:
				return "enc", ""
			default:
				return "ct", ""
			}
		}
		for i := range env {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(env)
				b[i] ^= bit
				field, want := fieldOf(i)
				if field == "aad_len" {
					continue
				}
				if field == "B tag/KEM" && i >= bindingOffset+len(keybind.HPKETag) {
					// a KEM id flipped to another supported KEM parses, with the wrong enc size
					if id := binary.BigEndian.Uint16(b[bindingOffset+len(keybind.HPKETag):]); id == keybind.KEMIDX25519 || id == keybind.KEMIDMLKEM768X25519 {
						want = ""
					}
				}
				if field == "kdf_id" || field == "aead_id" {
					v := binary.BigEndian.Uint16(b[aeadOffset:])
					if field == "aead_id" && (v == AEADAES256GCM || v == AEADChaCha20Poly1305) {
						want = "" // another accepted AEAD: the tag refuses it
					}
				}
				openFails(t, field, r, b, want)
			}
		}
		// aad_len: every value but the right one.
		for _, n := range []uint16{0, uint16(len(aad)) - 1, uint16(len(aad)) + 1, MaxAAD, MaxAAD + 1, 0xffff} {
			want := ""
			switch {
			case n > MaxAAD:
				want = "over 1024"
			case int(n) > len(env)-headerSize:
				want = "bytes left"
			case int(n) > len(env)-headerSize-encLen-tagSize:
				want = "bytes for enc"
			}
			openFails(t, "aad_len", r, set16(env, aadLenOffset, n), want)
		}
		// Truncated at every length.
		for n := range len(env) {
			want := ""
			switch {
			case n < headerSize:
				want = "header"
			case n < len(Tag):
				want = "tag"
			case n < aadEnd:
				want = "aad_len"
			case n < aadEnd+encLen+tagSize:
				want = "bytes for enc"
			}
			openFails(t, "truncated", r, env[:n], want)
		}
		// Lengthened: trailing bytes belong to ct and break its tag.
		for _, extra := range [][]byte{{0}, make([]byte, 16), make([]byte, 1000)} {
			openFails(t, "lengthened", r, append(bytes.Clone(env), extra...), "")
		}
		// Lengthened past the largest envelope.
		openFails(t, "over MaxEnvelope", r, append(bytes.Clone(env), make([]byte, MaxEnvelope)...), "over")
	}
}

// TestEnvelopeWrongB: an envelope naming another key, another KEM or no key opens nowhere, even
// when it is otherwise well formed and sealed for real.
func TestEnvelopeWrongB(t *testing.T) {
	r, other, rx := xwing(t), xwing(t), x25519(t)
	// Sealed to other's key: B names other.
	toOther := mustSeal(t, other, nil, []byte("s"))
	openFails(t, "sealed to another key", r, toOther, "")
	// Sealed to r's key but with other's binding in B and info: the KEM decapsulates, the key
	// schedule (info) and the opener's comparison refuse it.
	wrongInfo, err := sealHPKE(r.priv.PublicKey(), other.binding, KDFHKDFSHA256, AEADAES256GCM, nil, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	openFails(t, "another key's B", r, wrongInfo, "")
	// r's B in the header, sealed with other's B in info.
	swapped := bytes.Clone(wrongInfo)
	copy(swapped[bindingOffset:], r.binding)
	openFails(t, "B differs from info", r, swapped, "")
	// A binding naming X25519 to an X-Wing key, and the other way.
	openFails(t, "X25519 envelope to X-Wing key", r, mustSeal(t, rx, nil, []byte("s")), "")
	openFails(t, "X-Wing envelope to X25519 key", rx, mustSeal(t, r, nil, []byte("s")), "")
	// B with an unsupported KEM or the wrong tag.
	for _, kem := range []uint16{0x0010, 0x0041, 0x0000, 0xffff} {
		b := set16(toOther, bindingOffset+len(keybind.HPKETag), kem)
		openFails(t, "unsupported KEM", r, b, "B:")
	}
	// The opener holding B for a different key than its private key refuses too.
	env := mustSeal(t, r, nil, []byte("s"))
	if _, _, err := OpenHPKE(rx.priv, r.binding, env); err != ErrOpenFailed {
		t.Errorf("binding and private key of different KEMs: %v", err)
	}
}

// TestEnvelopeUnsupportedSuites: well-formed envelopes really sealed with every other suite Go
// implements are refused; so are ids nobody implements.
func TestEnvelopeUnsupportedSuites(t *testing.T) {
	r := xwing(t)
	for _, kdf := range []uint16{0x0001, 0x0002, 0x0003, 0x0010, 0x0011} {
		for _, aead := range []uint16{0x0001, 0x0002, 0x0003} {
			env, err := sealHPKE(r.priv.PublicKey(), r.binding, kdf, aead, []byte("a"), []byte("s"))
			if err != nil {
				t.Fatalf("seal kdf %04x aead %04x: %v", kdf, aead, err)
			}
			_, _, oerr := OpenHPKE(r.priv, r.binding, env)
			if kdf == KDFHKDFSHA256 && (aead == AEADAES256GCM || aead == AEADChaCha20Poly1305) {
				if oerr != nil {
					t.Errorf("kdf %04x aead %04x: %v", kdf, aead, oerr)
				}
				continue
			}
			want := "aead_id"
			if kdf != KDFHKDFSHA256 {
				want = "kdf_id"
			}
			openFails(t, "suite", r, env, want)
		}
	}
	env := mustSeal(t, r, nil, []byte("s"))
	for _, c := range []struct {
		off  int
		v    uint16
		want string
	}{
		{kdfOffset, 0x0000, "kdf_id"}, {kdfOffset, 0xffff, "kdf_id"},
		{aeadOffset, 0x0000, "aead_id"}, {aeadOffset, 0xffff, "aead_id"}, // 0xffff: export-only
	} {
		openFails(t, "suite id", r, set16(env, c.off, c.v), c.want)
	}
}

// TestEnvelopeWrongEncSize: an X25519-sized enc to an X-Wing binding (and the reverse) does not
// parse as its KEM's, and the enc read at the right size is garbage.
func TestEnvelopeWrongEncSize(t *testing.T) {
	xw, x := xwing(t), x25519(t)
	// X25519 envelope relabelled with the X-Wing binding: 32-byte enc where 1,120 are due.
	small := mustSeal(t, x, nil, []byte("s"))
	relabelled := bytes.Clone(small)
	copy(relabelled[bindingOffset:], xw.binding)
	openFails(t, "32-byte enc to X-Wing", xw, relabelled, "bytes for enc")
	// Padded out so the length fits: the enc is now the wrong bytes.
	padded := append(bytes.Clone(relabelled), make([]byte, encSizeXWing)...)
	openFails(t, "padded enc to X-Wing", xw, padded, "")
	// X-Wing envelope relabelled with the X25519 binding: the enc is cut at 32 bytes.
	big := mustSeal(t, xw, nil, []byte("s"))
	copy(big[bindingOffset:], x.binding)
	openFails(t, "1120-byte enc to X25519", x, big, "")
	// newRecipient refuses an enc of the wrong size outright.
	for _, r := range []recipient{xw, x} {
		n := encSize(r.priv.KEM().ID())
		for _, size := range []int{0, n - 1, n + 1, encSizeX25519 + encSizeXWing - n} {
			if _, err := newRecipient(r.priv, KDFHKDFSHA256, AEADAES256GCM, info(r.binding), make([]byte, size)); err == nil {
				t.Errorf("KEM 0x%04x: %d-byte enc accepted", r.priv.KEM().ID(), size)
			}
		}
	}
}

// TestEnvelopeAADBounds: aad of 1,024 bytes opens; an envelope claiming 1,025 does not parse.
func TestEnvelopeAADBounds(t *testing.T) {
	r := x25519(t)
	env := mustSeal(t, r, make([]byte, MaxAAD), []byte("s"))
	if _, aad, err := OpenHPKE(r.priv, r.binding, env); err != nil || len(aad) != MaxAAD {
		t.Fatalf("1024-byte aad: %d, %v", len(aad), err)
	}
	// Hand-built: aad_len 1025 and 1025 bytes of aad, so only the bound refuses it.
	over := append(bytes.Clone(env[:aadLenOffset]), 0x04, 0x01)
	over = append(over, make([]byte, MaxAAD+1)...)
	over = append(over, env[headerSize+MaxAAD:]...)
	openFails(t, "1025-byte aad", r, over, "aad_len 1025 is over 1024")
	if _, err := SealHPKE(r.binding, r.public, make([]byte, MaxAAD+1), nil); err == nil {
		t.Error("sealed a 1025-byte aad")
	}
}

// TestEnvelopeLayout pins the header: tag, suite, B, aad_len, then aad, enc, ct.
func TestEnvelopeLayout(t *testing.T) {
	r := newTestKey(t, hpke.DHKEM(ecdh.X25519()))
	env := mustSeal(t, r, []byte("ab"), []byte("xyz"))
	want := append([]byte("attestd-seal-v1\x00\x01\x00\x02"), r.binding...)
	want = append(want, 0x00, 0x02, 'a', 'b')
	if !bytes.HasPrefix(env, want) || len(env) != len(want)+32+3+16 {
		t.Fatalf("envelope %x", env)
	}
	e, err := parse(env)
	if err != nil || string(e.aad) != "ab" || len(e.enc) != 32 || len(e.ct) != 19 || !bytes.Equal(e.binding, r.binding) {
		t.Fatalf("parse: %+v %v", e, err)
	}
}
