package vsockrpc

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var fuzzAPIs = []*API{ParentAPI(newFake()), LocalAPI(newFake())}

// FuzzDecodeRequest feeds arbitrary bytes to the server's frame reader, request decoder and the
// params decoders of both APIs. Beyond never panicking, it checks that every error has an
// expected code, that nothing the parent may not set gets through, that accepted values are within
// the protocol bounds, and that an accepted request re-encodes (canonically, no larger, and byte for
// byte as fxamacker encodes it) to one that decodes to the same values and re-encodes to the same
// bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data), DefaultMaxRequestSize)
		if err != nil {
			return
		}
		req, idKnown, e := decodeRequest(body)
		if e != nil {
			if e.Code != CodeBadRequest && (e.Code != CodeUnsupportedVersion || !idKnown) {
				t.Fatalf("envelope error %v (id known %v)", e, idKnown)
			}
			return
		}
		if !idKnown {
			t.Fatal("accepted a request without an id")
		}
		for _, api := range fuzzAPIs {
			m, ok := api.methods[req.method]
			if !ok {
				continue
			}
			p, e := m.decode(req.params)
			if e != nil {
				if !slices.Contains([]string{CodeBadRequest, CodeForbiddenField, CodeNonceTooLarge}, e.Code) {
					t.Fatalf("params error %v", e)
				}
				continue
			}
			checkBounds(t, api, p)

			enc := encodeChecked(t, wireRequest{V: Version, ID: req.id, Method: req.method, Params: p.(encoder)})
			if len(enc) > len(body) {
				t.Fatalf("re-encoding grew: %x -> %x", body, enc)
			}
			req2, _, e := decodeRequest(enc)
			if e != nil || req2.id != req.id || req2.method != req.method {
				t.Fatalf("re-encoded request %x: %v", enc, e)
			}
			p2, e := m.decode(req2.params)
			if e != nil || !reflect.DeepEqual(p, p2) {
				t.Fatalf("re-encoded params: %#v -> %#v, %v", p, p2, e)
			}
			enc2 := encodeChecked(t, wireRequest{V: Version, ID: req2.id, Method: req2.method, Params: p2.(encoder)})
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding not a fixpoint: %x vs %x", enc, enc2)
			}
		}
	})
}

// encodeChecked encodes v by hand and requires fxamacker's core deterministic encoding of the same
// value to be the same bytes.
func encodeChecked(t *testing.T, v encoder) []byte {
	t.Helper()
	enc := v.appendCBOR(nil)
	if want, err := encMode.Marshal(v); err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("%T: encoded %x, fxamacker %x (%v)", v, enc, want, err)
	}
	return enc
}

func checkBounds(t *testing.T, api *API, p any) {
	t.Helper()
	nonEmpty := func(b []byte) bool { return b == nil || len(b) > 0 } // empty decodes to nil
	switch p := p.(type) {
	case attestParams:
		if !api.local && p.UserData != nil {
			t.Fatal("parent attest accepted user_data")
		}
		if len(p.Nonce) > MaxNonceSize || len(p.UserData) > MaxUserDataSize || p.Key == "" ||
			len(p.Key) > MaxKeyNameSize || !nonEmpty(p.Nonce) || !nonEmpty(p.UserData) {
			t.Fatalf("attest params out of bounds: %#v", p)
		}
	case userDataParams:
		if len(p.UserData) > MaxUserDataSize || !nonEmpty(p.UserData) {
			t.Fatalf("user_data out of bounds: %d", len(p.UserData))
		}
	case randomParams:
		if p.N < 1 || p.N > MaxRandomSize {
			t.Fatalf("n out of bounds: %d", p.N)
		}
	case extendParams:
		if p.Index < MinUserPCR || p.Index > MaxUserPCR || len(p.Data) == 0 || len(p.Data) > MaxExtendDataSize {
			t.Fatalf("extend params out of bounds: %d, %d bytes", p.Index, len(p.Data))
		}
	case lockParams:
		if p.Index < MinUserPCR || p.Index > MaxUserPCR {
			t.Fatalf("lock index out of bounds: %d", p.Index)
		}
	case kmsOpenParams:
		if err := p.check(); err != nil {
			t.Fatalf("kms_open params out of bounds: %v", err)
		}
	case tlsKeyParams:
		if CheckTLSKey(p.PublicKey) != nil || len(p.Nonce) > MaxNonceSize || !nonEmpty(p.Nonce) {
			t.Fatalf("attest_tls_key params out of bounds: %#v", p)
		}
	case noParams:
	default:
		t.Fatalf("unexpected params type %T", p)
	}
	if !api.local {
		if _, ok := p.(attestParams); !ok {
			if _, ok := p.(noParams); !ok {
				t.Fatalf("parent API decoded %T", p)
			}
		}
	}
}

// FuzzDecodeResponse feeds arbitrary bytes to the client's frame reader and response decoder,
// then decodes any result as each result type: nothing may panic, an accepted response has
// exactly one of a result map or an error with a code, and a result accepted as some type
// re-encodes to one that decodes to the same value.
func FuzzDecodeResponse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data), DefaultMaxResponseSize)
		if err != nil {
			return
		}
		_, hasID, result, perr, err := decodeResponse(body)
		if err != nil {
			return
		}
		if (result == nil) == (perr == nil) || (perr != nil && perr.Code == "") || (result != nil && !hasID) {
			t.Fatalf("accepted an inconsistent response: id %v result %x error %v", hasID, result, perr)
		}
		if result == nil {
			return
		}
		for _, newOut := range resultTypes {
			out := newOut()
			if out.decodeResult(result) != nil {
				continue
			}
			enc := encodeChecked(t, out.(encoder))
			again := newOut()
			if err := again.decodeResult(enc); err != nil || !reflect.DeepEqual(out, again) {
				t.Fatalf("%T %x re-encoded as %x: %#v -> %#v, %v", out, result, enc, out, again, err)
			}
		}
	})
}

// resultTypes makes a value of each type a Client decodes results into.
var resultTypes = []func() resultDecoder{
	func() resultDecoder { return &AttestResult{} },
	func() resultDecoder { return &Description{} },
	func() resultDecoder { return &Health{} },
	func() resultDecoder { return &randomResult{} },
	func() resultDecoder { return &extendResult{} },
	func() resultDecoder { return &emptyResult{} },
	func() resultDecoder { return &KMSRecipientResult{} },
	func() resultDecoder { return &kmsOpenResult{} },
	func() resultDecoder { return &TLSKeyResult{} },
}

// TestFuzzSeedsServed checks the valid seeds of the request corpus really are served: the
// corpus exercises the accepting paths, not only rejections.
func TestFuzzSeedsServed(t *testing.T) {
	f := newFake()
	api := LocalAPI(f)
	served := 0
	for _, s := range requestSeeds(t) {
		body, err := ReadFrame(bytes.NewReader(s), DefaultMaxRequestSize)
		if err != nil {
			continue
		}
		req, _, e := decodeRequest(body)
		if e != nil {
			continue
		}
		m, ok := api.methods[req.method]
		if !ok {
			continue
		}
		p, e := m.decode(req.params)
		if e != nil {
			continue
		}
		if _, err := m.call(context.Background(), p); err == nil {
			served++
		}
	}
	if served < 7 {
		t.Fatalf("only %d seeds are served requests", served)
	}
}

// requestSeeds reads the FuzzDecodeRequest seed corpus.
func requestSeeds(t *testing.T) [][]byte {
	t.Helper()
	return readCorpus(t, "testdata/fuzz/FuzzDecodeRequest")
}

// readCorpus reads a corpus directory of single []byte entries ("go test fuzz v1").
func readCorpus(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		header, entry, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
		lit, ok2 := strings.CutPrefix(entry, "[]byte(")
		if !ok || !ok2 || header != "go test fuzz v1" || !strings.HasSuffix(lit, ")") {
			t.Fatalf("%s: not a []byte corpus entry", e.Name())
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		out = append(out, []byte(s))
	}
	return out
}
