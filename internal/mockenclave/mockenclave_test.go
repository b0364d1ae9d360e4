package mockenclave

import (
	"context"
	"testing"

	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// health is the smallest ParentService: Serve must put it on a socket.
type health struct{ vsockrpc.ParentService }

func (health) Health(context.Context) (*vsockrpc.Health, error) {
	return &vsockrpc.Health{Status: "served"}, nil
}

// TestEnclave: a document from the session verifies against Root with the
// PCRs PCR reads, and a server started by Serve answers on its address.
func TestEnclave(t *testing.T) {
	e := New(t, mocknsm.Config{})
	doc, err := e.Session.Attestation(context.Background(), nsm.AttestationRequest{Nonce: []byte("n")})
	if err != nil {
		t.Fatal(err)
	}
	pcr0 := e.PCR(t, 0)
	if _, err := attestation.Verify(doc, attestation.Options{Root: e.Root, Nonce: []byte("n"),
		PCRs: map[int][][]byte{0: {pcr0}}}); err != nil {
		t.Fatal(err)
	}

	addr := Serve(t, &vsockrpc.Server{API: vsockrpc.ParentAPI(health{})}, "p")
	c, err := vsockrpc.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h, err := c.Health(context.Background()); err != nil || h.Status != "served" {
		t.Fatalf("health: %+v, %v", h, err)
	}
}

// TestKeys: the default key set is generated once; another configuration is
// generated as asked.
func TestKeys(t *testing.T) {
	a, err := Keys(keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Keys(keys.Config{})
	if err != nil || a != b {
		t.Fatalf("the default set was generated twice (%v)", err)
	}
	x, err := Keys(keys.Config{HPKEKEM: keys.KEMX25519})
	if err != nil || x == a {
		t.Fatalf("a configured set is the default one (%v)", err)
	}
	ka, _ := a.Get(keys.HPKE)
	kx, _ := x.Get(keys.HPKE)
	if ka.Algorithm() == kx.Algorithm() {
		t.Errorf("both HPKE keys are %s", ka.Algorithm())
	}
}
