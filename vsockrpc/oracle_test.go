package vsockrpc

import (
	"bytes"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// encMode is fxamacker's encoder in core deterministic mode: the oracle the hand-written encoders
// (encode.go) are checked against, and the way tests write arbitrary CBOR.
var encMode cbor.EncMode

func init() {
	var err error
	encMode, err = cbor.EncOptions{
		Sort:          cbor.SortCoreDeterministic,
		IndefLength:   cbor.IndefLengthForbidden,
		NilContainers: cbor.NilContainerAsEmpty,
		TagsMd:        cbor.TagsForbidden,
	}.EncMode()
	if err != nil {
		panic(err)
	}
}

// anyValue sends any value, as fxamacker encodes it, where the protocol expects params or a result.
type anyValue struct{ v any }

func (a anyValue) appendCBOR(b []byte) []byte {
	enc, err := encMode.Marshal(a.v)
	if err != nil {
		panic(err)
	}
	return append(b, enc...)
}

// TestEncodeMatchesFxamacker: every message, params and result type is written byte for byte as
// fxamacker writes it in core deterministic mode, including empty, nil, absent, large and negative
// values.
func TestEncodeMatchesFxamacker(t *testing.T) {
	id := uint64(1 << 40)
	big := make([]byte, 70000)
	for _, v := range []encoder{
		wireRequest{V: Version, ID: 7, Method: MethodAttest, Params: attestParams{Nonce: []byte{1}, Key: "rsa"}},
		wireRequest{V: Version, ID: 1 << 33, Method: MethodHealth, Params: noParams{}},
		attestParams{Key: "hpke"},
		attestParams{Key: "k", Nonce: []byte{}, UserData: make([]byte, 512)},
		userDataParams{},
		userDataParams{UserData: []byte("x")},
		randomParams{N: 4096},
		extendParams{Index: 31, Data: make([]byte, 1024)},
		extendParams{},
		lockParams{Index: 16},
		noParams{},
		response{V: Version, ID: &id, Result: &AttestResult{Document: big, PublicKey: []byte{2}, Key: "rsa"}},
		response{V: Version, Error: &Error{Code: CodeBusy, Message: "too many"}},
		response{V: Version, ID: &id, Error: &Error{Code: CodeNSMError, Message: "é", NSMCode: "InvalidIndex"}},
		response{V: Version, ID: &id, Result: emptyResult{}},
		&AttestResult{},
		&Health{Status: "ok"},
		&Health{Status: HealthNSMFailing, Attest: AttestHealth{Succeeded: 1 << 40, Failed: 3, ConsecutiveFailures: 2,
			LastSuccess: 1764000000, LastFailure: 1 << 33, LastError: "nsm: InternalError é"}},
		randomResult{Random: []byte{1, 2}},
		randomResult{},
		extendResult{Value: make([]byte, 48)},
		emptyResult{},
		&Description{},
		&Description{
			AgentVersion: "v1", ModuleID: "i-0-enc0",
			Keys:    []KeyInfo{{Name: "hpke", Algorithm: "a", PublicKey: make([]byte, 1216), Binding: "sha256"}, {}},
			Entropy: Entropy{Source: "nsm-hwrng", SeededBytes: 1 << 20, KernelPool: "fed", LastReseed: -5},
			PCRs:    map[uint16][]byte{0: {1}, 23: {2}, 24: {3}, 255: {4}, 256: {5}, 3: nil},
			Nonce:   NonceLimits{Min: 1, Max: 512, Required: true},
			Platform: Platform{KernelRelease: "6.6.38", ClockSource: "kvm-clock",
				Relaxed: []string{GateKernel, GateClockSource, GateDebug, GateHWRNG}},
		},
		&Description{Entropy: Entropy{LastReseed: 1 << 62}},
	} {
		enc := v.appendCBOR([]byte{0xee}) // appends: what is there stays
		want, err := encMode.Marshal(v)
		if err != nil || enc[0] != 0xee || !bytes.Equal(enc[1:], want) {
			t.Errorf("%T %+v:\nencoded   %x\nfxamacker %x (%v)", v, v, enc[1:], want, err)
		}
	}
}
