package vsockrpc

import (
	"bytes"
	"strings"
	"testing"
)

// TestOneRuleForEncodingErrors: the same encoding error gets the same answer wherever it is, in the
// envelope or inside params: bad_request with a null id, and the connection closes. A content error
// (well-formed, but not the schema) inside params is answered with the request's id, and the
// connection stays open. Before, a non-shortest head or a tag in params closed the connection while
// a float in the same place did not.
func TestOneRuleForEncodingErrors(t *testing.T) {
	_, addr := startUnix(t, LocalAPI(newFake()), Limits{})
	// The envelope {"v": 1, "id": 7, "method": "attest", "params": {"key": "rsa", "nonce": N}} with
	// the bytes of v and of N given, in the order fxamacker writes.
	body := func(v, nonce string) []byte {
		return hexb(t, "a4 6176"+v+"626964 07 66 6d6574686f64 66 617474657374 66 706172616d73 a2 636b6579 63 727361 656e6f6e6365"+nonce)
	}
	const okV, okNonce = "01", "41 01"
	if !bytes.Equal(body(okV, okNonce), cborOf(t, req(7, "attest", map[string]any{"key": "rsa", "nonce": []byte{1}}))) {
		t.Fatal("the template is not the canonical request")
	}
	encoding := []struct{ name, item string }{
		{"non-shortest uint", "1801"},
		{"non-shortest length", "5801 01"},
		{"indefinite length", "5f 4101 ff"},
		{"tag", "c1 4101"},
		{"half float", "f93c00"},
		{"double", "fb3ff0000000000000"},
		{"undefined", "f7"},
		{"simple value 255", "f8ff"},
	}
	for _, e := range encoding {
		for _, where := range []string{"envelope", "params"} {
			b := body(e.item, okNonce)
			if where == "params" {
				b = body(okV, e.item)
			}
			t.Run(e.name+" in "+where, func(t *testing.T) {
				nc := rawDial(t, addr)
				nc.Write(frameOf(b))
				id, _, perr := readResponse(t, nc)
				if perr == nil || perr.Code != CodeBadRequest || id != nil || !strings.Contains(perr.Message, "malformed request") {
					t.Fatalf("got id %v, %v; want bad_request, null id", id, perr)
				}
				expectClosed(t, nc)
			})
		}
	}
	content := []struct{ name, nonce string }{
		{"text", "6101"},
		{"uint", "01"},
		{"null", "f6"},
		{"true", "f5"},
		{"array", "81 4101"},
		{"map", "a0"},
	}
	for _, c := range content {
		t.Run("content "+c.name+" in params", func(t *testing.T) {
			nc := rawDial(t, addr)
			nc.Write(frameOf(body(okV, c.nonce)))
			id, _, perr := readResponse(t, nc)
			if perr == nil || perr.Code != CodeBadRequest || id == nil || *id != 7 || !strings.Contains(perr.Message, "nonce") {
				t.Fatalf("got id %v, %v; want bad_request for id 7 naming nonce", id, perr)
			}
			nc.Write(frameOf(body(okV, okNonce)))
			if id, _, perr := readResponse(t, nc); perr != nil || id == nil || *id != 7 {
				t.Fatalf("after a content error: id %v, %v", id, perr)
			}
		})
	}
}
