package vsockrpc

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/seal"
)

func sealHPKE(t testing.TB, aad, pt []byte) []byte {
	t.Helper()
	k, err := testKeys(t).Get(keys.HPKE)
	if err != nil {
		t.Fatal(err)
	}
	env, err := seal.SealHPKE(k.DocumentPublicKey(), k.PublicKey(), aad, pt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func sealRSA(t testing.TB, hash string, pt []byte) []byte {
	t.Helper()
	k, err := testKeys(t).Get(keys.RSA)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := seal.SealRSA(k.DocumentPublicKey(), hash, pt)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// TestOpenRoundTrip opens over a unix socket served with the local API's default limits: the
// largest envelope (64 KiB plaintext, 1 KiB aad, X-Wing) and RSA with either hash.
func TestOpenRoundTrip(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := testCtx(t)

	big, aad := bytes.Repeat([]byte{0x5a}, seal.MaxPlaintext), bytes.Repeat([]byte{'a'}, seal.MaxAAD)
	for _, in := range []struct{ aad, pt []byte }{{aad, big}, {nil, []byte("small")}, {[]byte("x"), nil}} {
		r, err := c.Open(ctx, OpenRequest{Key: keys.HPKE, Ciphertext: sealHPKE(t, in.aad, in.pt)})
		if err != nil {
			t.Fatalf("%d-byte plaintext: %v", len(in.pt), err)
		}
		if !bytes.Equal(r.Plaintext, in.pt) || !bytes.Equal(r.AAD, in.aad) {
			t.Errorf("opened %d bytes, aad %d bytes; sealed %d, %d", len(r.Plaintext), len(r.AAD), len(in.pt), len(in.aad))
		}
	}
	for _, c2 := range []struct{ seal, ask string }{{seal.OAEPSHA256, ""}, {seal.OAEPSHA256, seal.OAEPSHA256}, {seal.OAEPSHA1, seal.OAEPSHA1}} {
		r, err := c.Open(ctx, OpenRequest{Key: keys.RSA, Ciphertext: sealRSA(t, c2.seal, []byte("rsa secret")), OAEPHash: c2.ask})
		if err != nil || string(r.Plaintext) != "rsa secret" || r.AAD != nil {
			t.Errorf("rsa %s asked %q: %+v, %v", c2.seal, c2.ask, r, err)
		}
	}
}

// TestOpenFailsAsOne: every failure to open comes back as the same code and the same message.
func TestOpenFailsAsOne(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := testCtx(t)
	env := sealHPKE(t, []byte("aad"), []byte("secret"))
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	rsa256 := sealRSA(t, seal.OAEPSHA256, []byte("s"))
	rsa1 := sealRSA(t, seal.OAEPSHA1, []byte("s"))
	otherSet, err := keys.Generate(keys.Config{HPKEKEM: keys.KEMX25519})
	if err != nil {
		t.Fatal(err)
	}
	ok, _ := otherSet.Get(keys.HPKE)
	toOther, err := seal.SealHPKE(ok.DocumentPublicKey(), ok.PublicKey(), nil, []byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name string
		req  OpenRequest
	}{
		{"tag flipped", OpenRequest{Key: keys.HPKE, Ciphertext: flip(env, 0)}},
		{"binding flipped", OpenRequest{Key: keys.HPKE, Ciphertext: flip(env, 40)}},
		{"aead tag flipped", OpenRequest{Key: keys.HPKE, Ciphertext: flip(env, len(env)-1)}},
		{"truncated", OpenRequest{Key: keys.HPKE, Ciphertext: env[:len(env)-1]}},
		{"one byte", OpenRequest{Key: keys.HPKE, Ciphertext: []byte{1}}},
		{"sealed to another enclave", OpenRequest{Key: keys.HPKE, Ciphertext: toOther}},
		{"RSA ciphertext to the hpke key", OpenRequest{Key: keys.HPKE, Ciphertext: rsa256}},
		{"envelope to the rsa key", OpenRequest{Key: keys.RSA, Ciphertext: env}},
		{"sha256 ciphertext opened as sha1", OpenRequest{Key: keys.RSA, Ciphertext: rsa256, OAEPHash: seal.OAEPSHA1}},
		{"sha1 ciphertext opened as sha256 (default)", OpenRequest{Key: keys.RSA, Ciphertext: rsa1}},
		{"RSA bit flipped", OpenRequest{Key: keys.RSA, Ciphertext: flip(rsa256, 3)}},
		{"RSA truncated", OpenRequest{Key: keys.RSA, Ciphertext: rsa256[1:]}},
	} {
		_, err := c.Open(ctx, r.req)
		var e *Error
		if !errors.As(err, &e) || *e != *ErrOpenFailed || e.Message != OpenFailedMessage {
			t.Errorf("%s: %v, want exactly %v", r.name, err, ErrOpenFailed)
		}
	}
	// A service that says more than it should is cut to the one message.
	h := openHook{newFake(), func(OpenRequest) (*OpenResult, error) {
		return nil, Errorf(CodeOpenFailed, "bad padding at byte 7")
	}}
	_, addr = startUnix(t, LocalAPI(h), Limits{})
	_, err = dialT(t, addr).Open(ctx, OpenRequest{Key: keys.RSA, Ciphertext: rsa256})
	if e := new(Error); !errors.As(err, &e) || *e != *ErrOpenFailed {
		t.Errorf("service's own open_failed message: %v", err)
	}
}

// TestOpenParams: the request's shape is checked before the service is called (bad_request);
// its ciphertext is not, whatever its size, so that every verdict on it is open_failed.
func TestOpenParams(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	c := dialT(t, addr)
	ct := []byte{1, 2, 3}
	for _, p := range []struct {
		params   map[string]any
		contains string
	}{
		{map[string]any{"key": "ed25519", "ciphertext": ct}, `want "hpke" or "rsa"`},
		{map[string]any{"key": "", "ciphertext": ct}, "key"},
		{map[string]any{"key": "HPKE", "ciphertext": ct}, `want "hpke" or "rsa"`},
		{map[string]any{"key": 1, "ciphertext": ct}, "key"},
		{map[string]any{"ciphertext": ct}, `missing param "key"`},
		{map[string]any{"key": "hpke"}, `missing param "ciphertext"`},
		{map[string]any{"key": "hpke", "ciphertext": []byte{}}, "ciphertext: empty"},
		{map[string]any{"key": "hpke", "ciphertext": "text"}, "ciphertext"},
		{map[string]any{"key": "hpke", "ciphertext": ct, "oaep_hash": "sha256"}, "only for the rsa key"},
		{map[string]any{"key": "rsa", "ciphertext": ct, "oaep_hash": "md5"}, `want "sha256" or "sha1"`},
		{map[string]any{"key": "rsa", "ciphertext": ct, "oaep_hash": "SHA1"}, `want "sha256" or "sha1"`},
		{map[string]any{"key": "rsa", "ciphertext": ct, "oaep_hash": ""}, "oaep_hash"},
		{map[string]any{"key": "rsa", "ciphertext": ct, "aad": []byte("x")}, `unknown param "aad"`},
		{map[string]any{"key": "rsa", "ciphertext": ct, "oaep_hash": "pkcs1v15"}, `want "sha256" or "sha1"`},
	} {
		err := callRaw(c, MethodOpen, p.params)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || !strings.Contains(e.Message, p.contains) {
			t.Errorf("%v: %v, want bad_request containing %q", p.params, err, p.contains)
		}
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestOpenNotOnParentAPI: the parent API has no open, whatever the request; the service is never
// called. A parent that could open would read every secret sealed to the enclave.
func TestOpenNotOnParentAPI(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, ParentAPI(f), Limits{})
	c := dialT(t, addr)
	ctx := testCtx(t)
	env := sealHPKE(t, nil, []byte("secret"))
	if _, err := c.Open(ctx, OpenRequest{Key: keys.HPKE, Ciphertext: env}); !errors.Is(err, &Error{Code: CodeUnknownMethod}) {
		t.Fatalf("open on the parent API: %v", err)
	}
	if _, err := c.Open(ctx, OpenRequest{Key: keys.RSA, Ciphertext: sealRSA(t, seal.OAEPSHA256, []byte("s"))}); !errors.Is(err, &Error{Code: CodeUnknownMethod}) {
		t.Fatalf("open on the parent API: %v", err)
	}
	if _, ok := ParentAPI(f).methods[MethodOpen]; ok {
		t.Fatal("ParentAPI registers open")
	}
	if len(f.calls) != 0 {
		t.Fatalf("service called: %v", f.calls)
	}
}

// TestOpenFrameLimits: the local API's default limits admit the largest open request and result
// and refuse one byte more; the parent API keeps its own, smaller limits.
func TestOpenFrameLimits(t *testing.T) {
	req := func(ct []byte) []byte {
		return cborOf(t, req(1, MethodOpen, map[string]any{"key": "hpke", "ciphertext": ct}))
	}
	largest := sealHPKE(t, make([]byte, seal.MaxAAD), make([]byte, seal.MaxPlaintext))
	if len(largest) != seal.MaxEnvelope {
		t.Fatalf("largest envelope %d bytes", len(largest))
	}
	body := req(largest)
	res := (&response{V: Version, ID: ptr(1 << 63), Result: &OpenResult{Plaintext: make([]byte, seal.MaxPlaintext), AAD: make([]byte, seal.MaxAAD)}}).appendCBOR(nil)
	t.Logf("largest open request %d bytes (limit %d), response %d bytes (limit %d)",
		len(body), DefaultLocalMaxRequestSize, len(res), DefaultLocalMaxResponseSize)
	if len(body) > DefaultLocalMaxRequestSize || len(res) > DefaultLocalMaxResponseSize {
		t.Fatal("the local limits do not admit the largest open")
	}
	if len(body) <= DefaultMaxRequestSize || len(res) <= DefaultMaxResponseSize {
		t.Fatal("the largest open fits the parent's limits: this test would prove nothing")
	}

	local, err := Limits{}.resolve(true)
	if err != nil || local.MaxRequestSize != DefaultLocalMaxRequestSize || local.MaxResponseSize != DefaultLocalMaxResponseSize {
		t.Fatalf("local defaults %+v %v", local, err)
	}

	// Local API: the largest envelope opens (over a raw connection, so the bytes are as above);
	// a frame one byte over the limit is refused unread.
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	nc := rawDial(t, addr)
	nc.Write(frameOf(body))
	rb, err := ReadFrame(nc, DefaultLocalMaxResponseSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, result, perr, err := decodeResponse(rb); err != nil || perr != nil || len(result) < seal.MaxPlaintext+seal.MaxAAD {
		t.Fatalf("largest open: %v %v, %d-byte result", err, perr, len(result))
	}
	over := append(bytes.Clone(largest), make([]byte, DefaultLocalMaxRequestSize+1-len(body))...)
	if n := len(req(over)); n != DefaultLocalMaxRequestSize+1 {
		t.Fatalf("built %d bytes", n)
	}
	nc.Write(frameOf(req(over)))
	if _, _, perr := readResponse(t, nc); perr == nil || perr.Code != CodeFrameTooLarge {
		t.Fatalf("%d-byte request on the local API: %v, want frame_too_large", DefaultLocalMaxRequestSize+1, perr)
	}
	expectClosed(t, nc)

	// Parent API: the same request is over its limit; a small one is unknown_method.
	_, paddr := startUnix(t, ParentAPI(newFake()), Limits{})
	pc := rawDial(t, paddr)
	pc.Write(frameOf(req([]byte{1})))
	if _, _, perr := readResponse(t, pc); perr == nil || perr.Code != CodeUnknownMethod {
		t.Fatalf("small open on the parent API: %v", perr)
	}
	pc.Write(frameOf(body))
	if _, _, perr := readResponse(t, pc); perr == nil || perr.Code != CodeFrameTooLarge {
		t.Fatalf("largest open on the parent API: %v, want frame_too_large", perr)
	}
	expectClosed(t, pc)
	parent, err := Limits{}.resolve(false)
	if err != nil || parent.MaxRequestSize != DefaultMaxRequestSize || parent.MaxResponseSize != DefaultMaxResponseSize {
		t.Fatalf("parent defaults %+v %v", parent, err)
	}
}

// TestOpenResultChecks: a result the service should never give is an internal error, and a client
// refuses a result outside the protocol's bounds.
func TestOpenResultChecks(t *testing.T) {
	ctx := testCtx(t)
	for _, r := range []*OpenResult{nil, {Plaintext: make([]byte, seal.MaxPlaintext+1)}, {AAD: make([]byte, seal.MaxAAD+1)}} {
		h := openHook{newFake(), func(OpenRequest) (*OpenResult, error) { return r, nil }}
		_, addr := startUnix(t, LocalAPI(h), Limits{})
		if _, err := dialT(t, addr).Open(ctx, OpenRequest{Key: keys.HPKE, Ciphertext: []byte{1}}); !errors.Is(err, &Error{Code: CodeInternal}) {
			t.Errorf("result %v: %v, want internal", r != nil, err)
		}
	}
	for _, res := range []map[string]any{
		{},
		{"plaintext": make([]byte, seal.MaxPlaintext+1)},
		{"plaintext": []byte{1}, "aad": make([]byte, seal.MaxAAD+1)},
		{"plaintext": []byte{1}, "aad": []byte{}},
		{"plaintext": []byte{1}, "extra": 1},
		{"plaintext": "text"},
	} {
		var r OpenResult
		if err := r.decodeResult(cborOf(t, res)); err == nil {
			t.Errorf("result %v accepted", res)
		}
	}
	var r OpenResult
	if err := r.decodeResult(cborOf(t, map[string]any{"plaintext": []byte{}})); err != nil || r.Plaintext != nil {
		t.Errorf("empty plaintext: %v", err)
	}
}

// TestOpenEncodeMatchesFxamacker: open's params and result are written as fxamacker writes them.
func TestOpenEncodeMatchesFxamacker(t *testing.T) {
	for _, v := range []encoder{
		openParams{Key: "hpke", Ciphertext: make([]byte, seal.MaxEnvelope)},
		openParams{Key: "rsa", Ciphertext: []byte{1}, OAEPHash: "sha1"},
		openParams{},
		&OpenResult{},
		&OpenResult{Plaintext: []byte("p"), AAD: []byte("a")},
		&OpenResult{Plaintext: make([]byte, seal.MaxPlaintext), AAD: make([]byte, seal.MaxAAD)},
	} {
		enc := v.appendCBOR([]byte{0xee})
		var want []byte
		var err error
		switch v := v.(type) {
		case openParams:
			m := map[string]any{"key": v.Key, "ciphertext": v.Ciphertext}
			if v.OAEPHash != "" {
				m["oaep_hash"] = v.OAEPHash
			}
			want, err = encMode.Marshal(m)
		case *OpenResult:
			m := map[string]any{"plaintext": v.Plaintext}
			if len(v.AAD) > 0 {
				m["aad"] = v.AAD
			}
			want, err = encMode.Marshal(m)
		}
		if err != nil || enc[0] != 0xee || !bytes.Equal(enc[1:], want) {
			t.Errorf("%T:\nencoded   %x\nfxamacker %x (%v)", v, enc[1:min(len(enc), 80)], want[:min(len(want), 80)], err)
		}
	}
}

// TestProtocolDocOpenExamples decodes the example frames of docs/protocol.md section 5.8: the
// request is accepted by the local API and re-encodes to the same bytes, the responses decode,
// and the error is ErrOpenFailed exactly.
func TestProtocolDocOpenExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(doc), "### 5.8 `open`")
	sec, _, _ = strings.Cut(sec, "\n### 5.9 ")
	hexLine := regexp.MustCompile(`^([0-9a-f]{2,}(?: [0-9a-f]{2,})*)(?:\s{2,}.*)?$`)
	blocks := strings.Split(sec, "```")
	var frames [][]byte
	for i := 1; i < len(blocks); i += 2 {
		var h strings.Builder
		for _, line := range strings.Split(blocks[i], "\n") {
			if m := hexLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				h.WriteString(strings.ReplaceAll(m[1], " ", ""))
			}
		}
		if h.Len() > 0 {
			frames = append(frames, hexb(t, h.String()))
		}
	}
	if len(frames) != 3 {
		t.Fatalf("found %d example frames, want 3", len(frames))
	}
	body := func(frame []byte) []byte {
		b, err := ReadFrame(bytes.NewReader(frame), DefaultLocalMaxResponseSize)
		if err != nil || len(b) != len(frame)-4 {
			t.Fatalf("example frame: %v", err)
		}
		return b
	}
	reqBody := body(frames[0])
	r, _, e := decodeRequest(reqBody)
	if e != nil || r.method != MethodOpen {
		t.Fatalf("request: %v", e)
	}
	p, e := LocalAPI(newFake()).methods[MethodOpen].decode(r.params)
	if e != nil {
		t.Fatal(e)
	}
	if enc := (wireRequest{V: Version, ID: r.id, Method: r.method, Params: p.(encoder)}).appendCBOR(nil); !bytes.Equal(enc, reqBody) {
		t.Fatalf("request re-encodes to %x", enc)
	}
	if op := p.(openParams); op.Key != "hpke" || len(op.Ciphertext) != 164 {
		t.Fatalf("request params %+v", op)
	}
	_, _, result, perr, err := decodeResponse(body(frames[1]))
	var res OpenResult
	if err != nil || perr != nil || res.decodeResult(result) != nil || string(res.Plaintext) != "attested secret" || string(res.AAD) != "example context" {
		t.Fatalf("result: %v %v %+v", err, perr, res)
	}
	_, _, _, perr, err = decodeResponse(body(frames[2]))
	if err != nil || perr == nil || *perr != *ErrOpenFailed {
		t.Fatalf("error example: %v %v", err, perr)
	}
}

// TestLargeRequestBodies sends large open requests (bodies that do not fit a connection's read
// buffer and so come from the server's pool) of shrinking sizes and different contents, on several
// connections at once: each must open to its own plaintext, whatever buffer served the one before.
func TestLargeRequestBodies(t *testing.T) {
	f := newFake()
	_, addr := startUnix(t, LocalAPI(f), Limits{})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for conn := range 4 {
		c := dialT(t, addr)
		envs := make([][]byte, 0, 4)
		pts := make([][]byte, 0, 4)
		for i, n := range []int{seal.MaxPlaintext, 40 << 10, 2 << 10, 300} {
			pt := bytes.Repeat([]byte{byte(16*conn + i)}, n)
			pts, envs = append(pts, pt), append(envs, sealHPKE(t, nil, pt))
		}
		wg.Go(func() {
			for round := range 3 {
				for i, env := range envs {
					r, err := c.Open(ctx, OpenRequest{Key: keys.HPKE, Ciphertext: env})
					if err != nil || !bytes.Equal(r.Plaintext, pts[i]) {
						t.Errorf("connection %d round %d request %d: %v", conn, round, i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
