package attestedtls

import (
	"bytes"
	"testing"
)

// FuzzDecodeCMW: the extension reader never panics, and what it accepts is
// exactly what EncodeCMW writes for the document (one encoding per document).
func FuzzDecodeCMW(f *testing.F) {
	f.Fuzz(func(t *testing.T, ext []byte) {
		doc, err := DecodeCMW(ext)
		if err != nil {
			return
		}
		enc, err := EncodeCMW(doc)
		if err != nil || !bytes.Equal(enc, ext) {
			t.Fatalf("accepted %x, which re-encodes to %x (%v)", ext, enc, err)
		}
	})
}

// FuzzParseQuery: the endpoint's query reader never panics and accepts only
// nonces of 16..64 bytes and the one binding, and a binding only with a nonce.
func FuzzParseQuery(f *testing.F) {
	f.Fuzz(func(t *testing.T, q string) {
		nonce, binding, err := parseQuery(q)
		if err != nil {
			return
		}
		if nonce != nil && (len(nonce) < MinNonceSize || len(nonce) > MaxNonceSize) {
			t.Fatalf("%q: nonce of %d bytes", q, len(nonce))
		}
		if binding != "" && (binding != BindingTLSExporter || nonce == nil) {
			t.Fatalf("%q: binding %q with nonce %x", q, binding, nonce)
		}
	})
}

// TestCMWRoundTrip: EncodeCMW writes what DecodeCMW reads, in the documented
// layout (an OCTET STRING holding the CBOR array [media type, document]).
func TestCMWRoundTrip(t *testing.T) {
	doc := bytes.Repeat([]byte{0xd2}, 300)
	ext, err := EncodeCMW(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x04, 0x82, 0x01, 0x68, 0x82, 0x78, byte(len(MediaType))}, MediaType...)
	want = append(append(want, 0x59, 0x01, 0x2c), doc...)
	if !bytes.Equal(ext, want) {
		t.Fatalf("encoded %x\nwant    %x", ext, want)
	}
	if got, err := DecodeCMW(ext); err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("decoded %x, %v", got, err)
	}
}
