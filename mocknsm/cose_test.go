package mocknsm

import (
	"bytes"
	"crypto/sha512"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// The structures as fxamacker encodes them: what the hand-written encodings must equal byte for byte.
type (
	coseSign1 struct {
		_           struct{} `cbor:",toarray"`
		Protected   []byte
		Unprotected cbor.RawMessage
		Payload     []byte
		Signature   []byte
	}
	sigStructure struct {
		_           struct{} `cbor:",toarray"`
		Context     string
		Protected   []byte
		ExternalAAD []byte
		Payload     []byte
	}
	documentBody struct {
		Document []byte `cbor:"document"`
	}
	attestationResp struct {
		V documentBody `cbor:"Attestation"`
	}
)

// TestHandWrittenCOSE: the attestation response and the Sig_structure digest, written by hand, are those of the
// generic encoder, for payloads on both sides of every CBOR length boundary.
func TestHandWrittenCOSE(t *testing.T) {
	sig := bytes.Repeat([]byte{0x5a}, 96)
	for _, n := range []int{0, 1, 23, 24, 25, 255, 256, 4600, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		doc, err := cbor.Marshal(coseSign1{Protected: protectedES384, Unprotected: cbor.RawMessage{0xa0}, Payload: payload, Signature: sig})
		if err != nil {
			t.Fatal(err)
		}
		want, err := cbor.Marshal(attestationResp{documentBody{Document: doc}})
		if err != nil {
			t.Fatal(err)
		}
		if got := attestationResponse(payload, sig); !bytes.Equal(got, want) || cap(got) != len(got) {
			t.Fatalf("%d-byte payload: response differs (len %d, cap %d, want len %d)", n, len(got), cap(got), len(want))
		}
		ss, err := cbor.Marshal(sigStructure{Context: "Signature1", Protected: protectedES384, ExternalAAD: []byte{}, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		if sigStructureDigest(payload) != sha512.Sum384(ss) {
			t.Fatalf("%d-byte payload: Sig_structure digest differs", n)
		}
	}
}
