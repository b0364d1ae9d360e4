package mocknsm

import (
	"github.com/attestd/attestd/nsm"
	"github.com/fxamacker/cbor/v2"
)

// The response encodings are serde_cbor's (nitro-specs §4.4): a struct variant is a one-entry map from the
// variant name to a map of its fields in declaration order, a unit variant is its bare name, definite lengths,
// minimal integers. fxamacker's default mode encodes struct fields in declaration order, so plain structs give
// exactly those bytes.

type describePCRBody struct {
	Lock bool   `cbor:"lock"`
	Data []byte `cbor:"data"`
}

type describePCRResp struct {
	V describePCRBody `cbor:"DescribePCR"`
}

type dataBody struct {
	Data []byte `cbor:"data"`
}

type extendPCRResp struct {
	V dataBody `cbor:"ExtendPCR"`
}

type describeNSMBody struct {
	VersionMajor uint16   `cbor:"version_major"`
	VersionMinor uint16   `cbor:"version_minor"`
	VersionPatch uint16   `cbor:"version_patch"`
	ModuleID     string   `cbor:"module_id"`
	MaxPCRs      uint16   `cbor:"max_pcrs"`
	LockedPCRs   []uint16 `cbor:"locked_pcrs"`
	Digest       string   `cbor:"digest"`
}

type describeNSMResp struct {
	V describeNSMBody `cbor:"DescribeNSM"`
}

type randomBody struct {
	Random []byte `cbor:"random"`
}

type getRandomResp struct {
	V randomBody `cbor:"GetRandom"`
}

type errorResp struct {
	Code nsm.ErrorCode `cbor:"Error"`
}

// encode marshals a response value; the types above cannot fail to encode.
func encode(v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Unit responses, encoded once.
var (
	lockPCRResp  = encode(LockPCR)
	lockPCRsResp = encode(LockPCRs)
)

func encodeError(code nsm.ErrorCode) []byte { return encode(errorResp{Code: code}) }
