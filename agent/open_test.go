package agent

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
	"github.com/attestd/attestd/vsockrpc"
)

// TestOpenThroughTheStack is the sealing flow end to end in-process: a relying
// party fetches a document from the parent API, verifies it, checks the
// binding and seals; the application opens through the local API. The parent
// API cannot open.
func TestOpenThroughTheStack(t *testing.T) {
	s := startStack(t, nil)
	ctx := context.Background()
	parent, local := dial(t, s.parent), dial(t, s.local)

	res, err := parent.Attest(ctx, []byte("rp-nonce"), keys.HPKE)
	if err != nil {
		t.Fatal(err)
	}
	doc := s.verify(t, res, []byte("rp-nonce"))
	secret := bytes.Repeat([]byte("s"), seal.MaxPlaintext)
	env, err := seal.SealHPKE(doc.PublicKey, res.PublicKey, []byte("ctx"), secret)
	if err != nil {
		t.Fatal(err)
	}
	r, err := local.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: env})
	if err != nil || !bytes.Equal(r.Plaintext, secret) || string(r.AAD) != "ctx" {
		t.Fatalf("open: %v", err)
	}
	small, err := seal.SealHPKE(doc.PublicKey, res.PublicKey, nil, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parent.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: small}); !errors.Is(err, &vsockrpc.Error{Code: vsockrpc.CodeUnknownMethod}) {
		t.Fatalf("open on the parent API: %v", err)
	}
	// The parent API keeps its 8 KiB request limit.
	if _, err := parent.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: env}); !errors.Is(err, &vsockrpc.Error{Code: vsockrpc.CodeFrameTooLarge}) {
		t.Fatalf("large open on the parent API: %v", err)
	}

	rres, err := parent.Attest(ctx, []byte("rp-nonce"), keys.RSA)
	if err != nil {
		t.Fatal(err)
	}
	rdoc := s.verify(t, rres, []byte("rp-nonce"))
	for _, hash := range []string{seal.OAEPSHA256, seal.OAEPSHA1} {
		ct, err := seal.SealRSA(rdoc.PublicKey, hash, []byte("rsa secret"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := local.Open(ctx, vsockrpc.OpenRequest{Key: keys.RSA, Ciphertext: ct, OAEPHash: hash})
		if err != nil || string(r.Plaintext) != "rsa secret" || r.AAD != nil {
			t.Fatalf("rsa %s: %+v %v", hash, r, err)
		}
		other := seal.OAEPSHA1
		if hash == other {
			other = seal.OAEPSHA256
		}
		if _, err := local.Open(ctx, vsockrpc.OpenRequest{Key: keys.RSA, Ciphertext: ct, OAEPHash: other}); !errors.Is(err, vsockrpc.ErrOpenFailed) {
			t.Fatalf("rsa %s opened as %s: %v", hash, other, err)
		}
	}
	env[len(env)-1] ^= 1
	if _, err := local.Open(ctx, vsockrpc.OpenRequest{Key: keys.HPKE, Ciphertext: env}); !errors.Is(err, vsockrpc.ErrOpenFailed) {
		t.Fatalf("tampered envelope: %v", err)
	}
}

func TestOpenUnknownKey(t *testing.T) {
	s := startStack(t, nil)
	if _, err := s.agent.Open(context.Background(), vsockrpc.OpenRequest{Key: "ed25519", Ciphertext: []byte{1}}); !errors.Is(err, &vsockrpc.Error{Code: vsockrpc.CodeUnknownKey}) {
		t.Fatal(err)
	}
}
