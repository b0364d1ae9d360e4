package vsockrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClientConcurrent: many goroutines share one client; each gets its own response.
func TestClientConcurrent(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	c := dialT(t, addr)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				nonce := fmt.Appendf(nil, "g%d-i%d", g, i)
				res, err := c.Attest(ctx, nonce, "rsa")
				if err != nil {
					t.Error(err)
					return
				}
				if want := "doc|rsa|" + string(nonce) + "|"; string(res.Document) != want {
					t.Errorf("got %q, want %q", res.Document, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestClientCancel: a cancelled call returns at once; its late response is dropped and the
// connection keeps serving the next calls.
func TestClientCancel(t *testing.T) {
	f, started, release := blockingFake()
	c := servePipe(t, &Server{API: LocalAPI(f), Logger: quietLogger()})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Attest(ctx, []byte("slow"), "rsa")
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	close(release) // the server now answers the cancelled call; the client drops it
	res, err := c.Attest(testCtx(t), []byte("next"), "rsa")
	if err != nil || string(res.Document) != "doc:next" {
		t.Fatalf("next call: %v", err)
	}
	// A call with an expired context does not touch the connection.
	if _, err := c.Health(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("call with a cancelled context: %v", err)
	}
}

// TestClientDeadline: a deadline bounds a call the server does not answer in time.
func TestClientDeadline(t *testing.T) {
	f, _, release := blockingFake()
	defer close(release)
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Attest(ctx, []byte("slow"), "rsa"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

// TestClientResponseLimit: a response frame over the client's limit breaks the connection with
// ErrFrameTooLarge instead of being read.
func TestClientResponseLimit(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	d := Dialer{MaxResponseSize: 1024}
	c, err := d.Dial(testCtx(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Random(testCtx(t), 900); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Random(testCtx(t), 2000); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %v, want ErrFrameTooLarge", err)
	}
}

// TestClientRedial: after the server closes an idle connection, the next call redials and
// succeeds: a retry-safe call (health) by being sent again on a new connection, a call that is
// not (extend_pcr) because the client checks an idle connection before sending it.
func TestClientRedial(t *testing.T) {
	for _, c := range []struct {
		name string
		call func(context.Context, *Client) error
	}{
		{"retry-safe", func(ctx context.Context, c *Client) error { _, err := c.Health(ctx); return err }},
		{"not retry-safe", func(ctx context.Context, c *Client) error {
			_, err := c.ExtendPCR(ctx, 16, []byte("x"))
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, addr := startUnix(t, LocalAPI(newFake()), Limits{IdleTimeout: 20 * time.Millisecond})
			cl := dialT(t, addr)
			ctx := testCtx(t)
			if _, err := cl.Health(ctx); err != nil {
				t.Fatal(err)
			}
			first := cl.cc
			for !peerClosed(first.nc) { // the server's idle timeout closes it
				if ctx.Err() != nil {
					t.Fatal("idle connection never closed")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := c.call(ctx, cl); err != nil {
				t.Fatalf("after the idle close: %v", err)
			}
			if cl.cc == first {
				t.Fatal("no redial")
			}
		})
	}
}

// TestClientClose: calls after Close fail with ErrClosed; Close is idempotent.
func TestClientClose(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	c := dialT(t, addr)
	c.Close()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Health(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

// TestClientChecksResults: the client refuses results that break the protocol's promises.
func TestClientChecksResults(t *testing.T) {
	f := newFake()
	f.attestHook = func(_ context.Context, req LocalAttestRequest) (*AttestResult, error) {
		return &AttestResult{Document: []byte("d"), PublicKey: []byte("p"), Key: "hpke"}, nil // wrong key
	}
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	if _, err := dialT(t, addr).Attest(testCtx(t), []byte("n"), "rsa"); err == nil {
		t.Fatal("a result for another key was accepted")
	}
}

// TestDecodeResponse covers the client's strict response decoder.
func TestDecodeResponse(t *testing.T) {
	ok := func(v any) []byte { return cborOf(t, v) }
	good := []map[string]any{
		{"v": 1, "id": 3, "result": map[string]any{}},
		{"v": 1, "id": nil, "error": map[string]any{"code": "busy", "message": "m"}},
		{"v": 1, "id": 3, "error": map[string]any{"code": "nsm_error", "message": "", "nsm_code": "InvalidIndex"}},
	}
	for _, m := range good {
		if _, _, _, _, err := decodeResponse(ok(m)); err != nil {
			t.Errorf("%v: %v", m, err)
		}
	}
	bad := []any{
		map[string]any{"v": 1, "id": 3},
		map[string]any{"v": 1, "id": 3, "result": map[string]any{}, "error": map[string]any{"code": "x", "message": ""}},
		map[string]any{"v": 2, "id": 3, "result": map[string]any{}},
		map[string]any{"id": 3, "result": map[string]any{}},
		map[string]any{"v": 1, "result": map[string]any{}},
		map[string]any{"v": 1, "id": nil, "result": map[string]any{}},
		map[string]any{"v": 1, "id": 3, "result": 5},
		map[string]any{"v": 1, "id": 3, "result": map[string]any{}, "x": 1},
		map[string]any{"v": 1, "id": 3, "error": map[string]any{"message": "no code"}},
		map[string]any{"v": 1, "id": 3, "error": map[string]any{"code": "x", "message": "", "extra": 1}},
		map[string]any{"v": 1, "id": 3, "error": "busy"},
		map[string]any{"v": 1, "id": "3", "result": map[string]any{}},
		[]any{1, 3, map[string]any{}},
	}
	for _, m := range bad {
		if _, _, _, _, err := decodeResponse(ok(m)); err == nil {
			t.Errorf("accepted %v", m)
		}
	}
	body := ok(good[0])
	if _, _, _, _, err := decodeResponse(append(bytes.Clone(body), 0)); err == nil {
		t.Error("accepted trailing bytes")
	}
}

// TestClientOversizedRequest: a request over the server's limit gets frame_too_large through the
// client, even though the server stops reading mid-write; the client then redials and goes on.
func TestClientOversizedRequest(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	c := dialT(t, addr)
	ctx := testCtx(t)
	for _, size := range []int{100 << 10, 4 << 20} { // over the local API's limit, fits the socket buffer; does not
		_, err := c.Attest(ctx, make([]byte, size), "rsa")
		if !errors.Is(err, &Error{Code: CodeFrameTooLarge}) {
			t.Fatalf("%d-byte nonce: %v, want frame_too_large", size, err)
		}
		if _, err := c.Health(ctx); err != nil {
			t.Fatalf("after frame_too_large: %v", err)
		}
	}
}

// TestClientRetriesLostRequest: a retry-safe request lost with a connection that had served
// before (the server closing it as idle just as the request went out) is sent again on a new
// connection; extend_pcr is not.
func TestClientRetriesLostRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Each connection answers its first request and drops the connection on the second, unread.
	var requests atomic.Int32
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				body, err := ReadFrame(nc, DefaultMaxRequestSize)
				if err != nil {
					return
				}
				requests.Add(1)
				r, _, _ := decodeRequest(body)
				frame, _ := encodeFrame(response{V: Version, ID: &r.id, Result: extendResult{Value: []byte{1}}})
				nc.Write(frame.Bytes())
				ReadFrame(nc, DefaultMaxRequestSize) // the second request: dropped
			}()
		}
	}()
	ctx := testCtx(t)
	c := dialT(t, "unix://"+path)
	if _, err := c.ExtendPCR(ctx, 16, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExtendPCR(ctx, 16, []byte("b")); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("lost extend_pcr: %v, want ErrConnectionLost and no retry", err)
	}
	if _, err := c.ExtendPCR(ctx, 16, []byte("c")); err != nil { // new connection, first request
		t.Fatal(err)
	}
	before := requests.Load()
	// describe is retry-safe: lost on the reused connection, answered on a new one. The result
	// is not decoded as a description: only the retry matters here.
	if err := c.call(ctx, MethodDescribe, noParams{}, anyResult{}); err != nil {
		t.Fatalf("retry-safe request: %v", err)
	}
	if got := requests.Load() - before; got != 1 {
		t.Fatalf("%d requests answered, want 1 (the retry)", got)
	}
}

// TestDecodeResults: every result type reads back exactly what the server's encoder writes, and a
// result missing a field, with an unknown one or a field of the wrong type is refused.
func TestDecodeResults(t *testing.T) {
	pcr := bytes.Repeat([]byte{7}, 48)
	for _, v := range []resultDecoder{
		&AttestResult{Document: make([]byte, 4600), PublicKey: []byte("spki"), Key: "rsa"},
		&Description{
			AgentVersion: "v1.2.3", ModuleID: "i-0123456789abcdef0-enc0123456789abcdef",
			Keys: []KeyInfo{
				{Name: "hpke", Algorithm: "MLKEM768-X25519", PublicKey: make([]byte, 1216), Binding: "sha256"},
				{Name: "rsa", Algorithm: "RSA-2048", PublicKey: make([]byte, 294), Binding: "spki"},
			},
			Entropy:  Entropy{Source: "nsm-hwrng", SeededBytes: 2048, KernelPool: "fed", LastReseed: 1700000000},
			PCRs:     map[uint16][]byte{0: pcr, 1: pcr, 16: pcr},
			Nonce:    NonceLimits{Min: 1, Max: 512, Required: true},
			Platform: Platform{KernelRelease: "6.6.38", ClockSource: "kvm-clock", Relaxed: []string{GateKernel, GateHWRNG}},
		},
		&Description{Keys: []KeyInfo{}, PCRs: map[uint16][]byte{}, Platform: Platform{Relaxed: []string{}}},
		&Health{Status: "ok"},
		&randomResult{Random: []byte{1, 2, 3}},
		&extendResult{Value: pcr},
		&emptyResult{},
	} {
		enc := encodeChecked(t, v.(encoder))
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface().(resultDecoder)
		if err := got.decodeResult(enc); err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("%T: decoded %#v, %v; want %#v", v, got, err, v)
		}
	}
	bad := []struct {
		out resultDecoder
		v   any
	}{
		{&AttestResult{}, map[string]any{"document": []byte{1}, "public_key": []byte{2}}},                       // no key
		{&AttestResult{}, map[string]any{"document": []byte{1}, "public_key": []byte{2}, "key": "rsa", "x": 1}}, // unknown
		{&AttestResult{}, map[string]any{"document": "text", "public_key": []byte{2}, "key": "rsa"}},            // wrong type
		{&Health{}, map[string]any{"status": ""}},                                                               // empty status
		{&emptyResult{}, map[string]any{"a": 1}},                                                                // not empty
		{&randomResult{}, map[string]any{"random": make([]byte, MaxRandomSize+1)}},                              // too long
		{&Description{}, map[string]any{"agent_version": "v", "module_id": "m", "keys": []any{}, "entropy": 1}}, // incomplete, wrong type
		{&Description{}, descriptionWith("pcrs", map[any]any{uint64(99): []byte{1}})},                           // PCR index out of range
		{&Description{}, descriptionWith("pcrs", map[any]any{"0": []byte{1}})},                                  // text PCR index
		{&Description{}, descriptionWith("keys", []any{map[string]any{"name": "rsa"}})},                         // key without fields
		{&Description{}, descriptionWith("entropy", map[string]any{"source": "s", "seeded_bytes": -1, "kernel_pool": "k", "last_reseed": 0})},
		{&Description{}, descriptionWith("platform", map[string]any{"kernel_release": "6.6.38", "clock_source": "kvm-clock", "relaxed": []any{"debug", "debug"}})}, // a gate twice
		{&Description{}, descriptionWith("platform", map[string]any{"kernel_release": "6.6.38", "clock_source": "kvm-clock", "relaxed": []any{""}})},               // empty gate name
		{&Description{}, descriptionWith("platform", map[string]any{"kernel_release": "6.6.38", "clock_source": "kvm-clock"})},                                     // no relaxed
	}
	if err := (&Description{}).decodeResult(cborOf(t, descriptionWith("module_id", "m"))); err != nil {
		t.Fatalf("the base of the bad descriptions is refused: %v", err)
	}
	for _, c := range bad {
		if err := c.out.decodeResult(cborOf(t, c.v)); err == nil {
			t.Errorf("%T accepted %v", c.out, c.v)
		}
	}
	// Two entries for PCR 0: written by hand, as no encoder writes duplicate keys.
	dup := hexb(t, "a2 00 41 01 00 41 02")
	if _, err := decodePCRs(dup); err == nil {
		t.Error("accepted a PCR twice")
	}
}

// descriptionWith is a valid encoded-to-be description with one field replaced.
func descriptionWith(name string, v any) map[string]any {
	d := map[string]any{
		"agent_version": "v", "module_id": "m", "keys": []any{}, "pcrs": map[any]any{},
		"entropy":  map[string]any{"source": "s", "seeded_bytes": 0, "kernel_pool": "k", "last_reseed": 0},
		"nonce":    map[string]any{"min": 1, "max": 2, "required": true},
		"platform": map[string]any{"kernel_release": "", "clock_source": "", "relaxed": []any{}},
	}
	d[name] = v
	return d
}
