package nsm

import (
	"context"
	"slices"

	"github.com/hf/nsm/request"
	"github.com/hf/nsm/response"
)

// Request names, used as Op in errors.
const (
	opDescribeNSM = "DescribeNSM"
	opDescribePCR = "DescribePCR"
	opExtendPCR   = "ExtendPCR"
	opLockPCR     = "LockPCR"
	opLockPCRs    = "LockPCRs"
	opAttestation = "Attestation"
	opGetRandom   = "GetRandom"
)

// Description is the NSM's DescribeNSM answer.
type Description struct {
	VersionMajor, VersionMinor, VersionPatch uint16
	ModuleID                                 string   // e.g. "i-0123456789abcdef0-enc0123456789abcdef"
	MaxPCRs                                  uint16   // 32 on Nitro
	LockedPCRs                               []uint16 // ascending
	Digest                                   string   // "SHA384" on Nitro
}

// digestLen is the length of a PCR for each digest the NSM may name.
var digestLen = map[string]int32{
	string(response.DigestSHA256): 32,
	string(response.DigestSHA384): 48,
	string(response.DigestSHA512): 64,
}

// DescribeNSM returns the NSM's version, module id, PCR count, locked PCRs and digest. The digest it reports
// sets the PCR length the session expects from then on (48 bytes, SHA-384, before the first call).
func (s *Session) DescribeNSM(ctx context.Context) (Description, error) {
	r, err := s.send(ctx, opDescribeNSM, &request.DescribeNSM{})
	if err != nil {
		return Description{}, err
	}
	d := r.DescribeNSM
	n, ok := digestLen[string(d.Digest)]
	switch {
	case d.ModuleID == "":
		return Description{}, invalid(opDescribeNSM, "empty module_id")
	case d.MaxPCRs == 0:
		return Description{}, invalid(opDescribeNSM, "max_pcrs is 0")
	case !ok:
		return Description{}, invalid(opDescribeNSM, "unknown digest %q", string(d.Digest))
	}
	for i, p := range d.LockedPCRs {
		if p >= d.MaxPCRs || (i > 0 && p <= d.LockedPCRs[i-1]) {
			return Description{}, invalid(opDescribeNSM, "locked_pcrs %v not ascending below max_pcrs %d",
				d.LockedPCRs, d.MaxPCRs)
		}
	}
	s.pcrLen.Store(n)
	return Description{
		VersionMajor: d.VersionMajor,
		VersionMinor: d.VersionMinor,
		VersionPatch: d.VersionPatch,
		ModuleID:     d.ModuleID,
		MaxPCRs:      d.MaxPCRs,
		LockedPCRs:   slices.Clone(d.LockedPCRs),
		Digest:       string(d.Digest),
	}, nil
}

// PCR is the state of one platform configuration register.
type PCR struct {
	Locked bool
	Value  []byte // the digest's length (48 bytes for SHA-384)
}

// DescribePCR returns the value and lock state of PCR index. An index the NSM does not have is InvalidIndex.
func (s *Session) DescribePCR(ctx context.Context, index uint16) (PCR, error) {
	r, err := s.send(ctx, opDescribePCR, &request.DescribePCR{Index: index})
	if err != nil {
		return PCR{}, err
	}
	if err := s.checkPCR(opDescribePCR, r.DescribePCR.Data); err != nil {
		return PCR{}, err
	}
	return PCR{Locked: r.DescribePCR.Lock, Value: r.DescribePCR.Data}, nil
}

// ExtendPCR extends PCR index with data (new = H(old || data)) and returns the new value. Extending a locked PCR
// is ReadOnlyIndex. nil data is sent as an empty byte string: the NSM cannot decode CBOR null here.
func (s *Session) ExtendPCR(ctx context.Context, index uint16, data []byte) ([]byte, error) {
	if data == nil {
		data = []byte{}
	}
	r, err := s.send(ctx, opExtendPCR, &request.ExtendPCR{Index: index, Data: data})
	if err != nil {
		return nil, err
	}
	if err := s.checkPCR(opExtendPCR, r.ExtendPCR.Data); err != nil {
		return nil, err
	}
	return r.ExtendPCR.Data, nil
}

func (s *Session) checkPCR(op string, v []byte) error {
	if want := int(s.pcrLen.Load()); len(v) != want {
		return invalid(op, "PCR value of %d bytes, want %d", len(v), want)
	}
	return nil
}

// LockPCR makes PCR index read-only until the enclave terminates. Locking a PCR that is already locked (0..15 are
// locked at boot) is ReadOnlyIndex.
func (s *Session) LockPCR(ctx context.Context, index uint16) error {
	_, err := s.send(ctx, opLockPCR, &request.LockPCR{Index: index})
	return err
}

// LockPCRs locks PCRs [0, end). An end beyond the NSM's PCR count is InvalidIndex.
func (s *Session) LockPCRs(ctx context.Context, end uint16) error {
	_, err := s.send(ctx, opLockPCRs, &request.LockPCRs{Range: end})
	return err
}

// AttestationRequest holds the optional fields of an attestation document. A nil field is absent (CBOR null in
// the document); a non-nil empty one is present and empty. The NSM enforces no per-field limit, only the
// 4096-byte request (ErrRequestTooLarge): about 1024 bytes each is the documented budget.
type AttestationRequest struct {
	UserData  []byte
	Nonce     []byte
	PublicKey []byte
}

// Attestation asks the NSM for a signed attestation document (an untagged COSE_Sign1) that carries the locked
// PCRs and the request's fields. The document is returned as is; verifying it is the verifier's job.
func (s *Session) Attestation(ctx context.Context, req AttestationRequest) ([]byte, error) {
	r, err := s.send(ctx, opAttestation, &request.Attestation{
		UserData:  req.UserData,
		Nonce:     req.Nonce,
		PublicKey: req.PublicKey,
	})
	if err != nil {
		return nil, err
	}
	if len(r.Attestation.Document) == 0 {
		return nil, invalid(opAttestation, "empty document")
	}
	return r.Attestation.Document, nil
}

// GetRandom returns the bytes of one GetRandom answer (of unspecified length: 256 in QEMU's model and the
// mock). It is never empty when err is nil.
func (s *Session) GetRandom(ctx context.Context) ([]byte, error) {
	r, err := s.send(ctx, opGetRandom, &request.GetRandom{})
	if err != nil {
		return nil, err
	}
	if len(r.GetRandom.Random) == 0 {
		return nil, invalid(opGetRandom, "no random bytes")
	}
	return r.GetRandom.Random, nil
}

// Read fills p with random bytes from the NSM, issuing GetRandom as often as needed (io.Reader). It returns
// len(p) and nil, or the number of bytes filled before the error. No context bounds it: use GetRandom where the
// wait must be bounded.
func (s *Session) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, err := s.GetRandom(context.Background())
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b)
	}
	return n, nil
}
