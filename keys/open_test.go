package keys

import (
	"bytes"
	"testing"

	"github.com/attestd/attestd/seal"
)

// TestOpen seals to each key's public half the way a relying party does and
// opens with the Key; the wrong key, hash or binding is seal.ErrOpenFailed.
func TestOpen(t *testing.T) {
	xw, x := testSets(t)
	for _, s := range []*Set{xw, x} {
		h, r := mustGet(t, s, HPKE), mustGet(t, s, RSA)
		env, err := seal.SealHPKE(h.DocumentPublicKey(), h.PublicKey(), []byte("aad"), []byte("hpke secret"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, aad, err := h.OpenHPKE(env); err != nil || string(pt) != "hpke secret" || string(aad) != "aad" {
			t.Errorf("%s: open = %q %q %v", h, pt, aad, err)
		}
		if _, _, err := r.OpenHPKE(env); err != seal.ErrOpenFailed {
			t.Errorf("the RSA key opened an envelope: %v", err)
		}
		for _, hash := range []string{seal.OAEPSHA256, seal.OAEPSHA1} {
			ct, err := seal.SealRSA(r.DocumentPublicKey(), hash, []byte("rsa secret"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := r.OpenRSA(hash, ct); err != nil || string(pt) != "rsa secret" {
				t.Errorf("%s: open = %q %v", hash, pt, err)
			}
			if _, err := h.OpenRSA(hash, ct); err != seal.ErrOpenFailed {
				t.Errorf("the HPKE key opened RSA: %v", err)
			}
		}
	}
	// An envelope to one set's key does not open with the other's (B differs).
	env, err := seal.SealHPKE(mustGet(t, xw, HPKE).DocumentPublicKey(), mustGet(t, xw, HPKE).PublicKey(), nil, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	other := mustGenerate(t)
	if pt, _, err := mustGet(t, other, HPKE).OpenHPKE(env); err != seal.ErrOpenFailed || !bytes.Equal(pt, nil) {
		t.Errorf("another key opened: %q %v", pt, err)
	}
}
