package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/attestd/attestd/kmsenvelope"
)

func TestRSAPoolKeys(t *testing.T) {
	p := NewRSAPool(2)
	defer p.Close()
	var spkis [][]byte
	for range 3 { // one more than the pool holds: the third waits for the filler
		k, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if rk, ok := pub.(*rsa.PublicKey); !ok || rk.N.BitLen() != RSABits || rk.E != 65537 {
			t.Fatalf("public key %T, want RSA-%d e=65537", pub, RSABits)
		}
		for _, s := range spkis {
			if bytes.Equal(s, k.PublicKey()) {
				t.Fatal("the pool handed out the same key twice")
			}
		}
		spkis = append(spkis, k.PublicKey())
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "key", k)
		for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %x", k, k, k, k, k), logged.String()} {
			if strings.Contains(s, "D:") || strings.Contains(s, "Primes") || len(s) > 300 || !strings.Contains(s, "RSA-2048 KMS recipient key") {
				t.Fatalf("the key formats as %q", s)
			}
		}
	}
}

// TestRecipientKeySingleUse: the first Open, successful or not, destroys the key.
func TestRecipientKeySingleUse(t *testing.T) {
	p := NewRSAPool(1)
	defer p.Close()
	for _, firstGood := range []bool{true, false} {
		k, err := p.Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		env, err := kmsenvelope.Build(k.PublicKey(), []byte("data key"), kmsenvelope.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		first := env
		if !firstGood {
			first = env[:len(env)-1]
		}
		pt, err := k.Open(first)
		if firstGood && (err != nil || string(pt) != "data key") {
			t.Fatalf("first open: %q, %v", pt, err)
		}
		if !firstGood && err != kmsenvelope.ErrOpen {
			t.Fatalf("first open of a truncated envelope: %v", err)
		}
		if pt, err := k.Open(env); err != kmsenvelope.ErrOpen || pt != nil {
			t.Fatalf("second open: %q, %v; want ErrOpen", pt, err)
		}
	}
	k, err := p.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	env, err := kmsenvelope.Build(k.PublicKey(), []byte("x"), kmsenvelope.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.Destroy()
	if _, err := k.Open(env); err != kmsenvelope.ErrOpen {
		t.Fatalf("open after Destroy: %v", err)
	}
}

func TestRSAPoolWaitAndClose(t *testing.T) {
	release := make(chan struct{})
	p := NewRSAPoolWith(1, func() (*rsa.PrivateKey, error) {
		<-release
		return nil, errors.New("generation failed")
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get on an empty pool with a cancelled context: %v", err)
	}
	close(release)
	if _, err := p.Get(context.Background()); err == nil || err.Error() != "generation failed" {
		t.Fatalf("Get after the generator failed: %v", err)
	}
	p.Close()

	p = NewRSAPool(1)
	p.Close()
	p.Close() // idempotent
	if _, err := p.Get(context.Background()); err != ErrPoolClosed {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestOpenKMS(t *testing.T) {
	s, _ := testSets(t)
	k := mustGet(t, s, RSA)
	env, err := kmsenvelope.Build(k.PublicKey(), []byte("secret"), kmsenvelope.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the long-lived key is not single-use
		if pt, err := k.OpenKMS(env); err != nil || string(pt) != "secret" {
			t.Fatalf("OpenKMS: %q, %v", pt, err)
		}
	}
	if _, err := mustGet(t, s, HPKE).OpenKMS(env); err != kmsenvelope.ErrOpen {
		t.Fatalf("OpenKMS on the hpke key: %v", err)
	}
	if _, err := k.OpenKMS(env[:len(env)-1]); err != kmsenvelope.ErrOpen {
		t.Fatalf("OpenKMS of a truncated envelope: %v", err)
	}
}

// TestRSAPoolRefill: Get leaves the filler parked while keys remain (no thread wake-up on a
// request's path); Refill tops the pool up; an empty pool refills without Refill.
func TestRSAPoolRefill(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024) // the generator's output only; never used to seal
	if err != nil {
		t.Fatal(err)
	}
	var made atomic.Int32
	p := NewRSAPoolWith(3, func() (*rsa.PrivateKey, error) { made.Add(1); return key, nil })
	defer p.Close()
	waitMade := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); made.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("the filler made %d keys, want %d", made.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // and no more than that
		if got := made.Load(); got != want {
			t.Fatalf("the filler made %d keys, want %d", got, want)
		}
	}
	get := func() {
		t.Helper()
		if _, err := p.Get(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	waitMade(3)
	get()
	get()
	waitMade(3) // two taken, none replaced: Get did not wake the filler
	p.Refill()
	p.Refill() // a second request while one is pending adds nothing
	waitMade(5)
	for range 3 {
		get()
	}
	waitMade(5)
	// The pool is empty: Get wakes the filler itself, which makes the key this Get takes and tops
	// the pool up, racing with that Get (it may stop one short); Refill completes it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.Get(ctx); err != nil {
		t.Fatalf("Get on an empty pool: %v", err)
	}
	p.Refill()
	waitMade(9)
}
