package mocknsm

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/attestd/attestd/nsm"
)

// randomSize is the length of a GetRandom answer (QEMU's NSM model; the real length is unspecified).
const randomSize = 256

// bootLocked is the lock mask at boot: PCRs 0..15.
const bootLocked = 0xffff

// NSM is a software Nitro Secure Module with a mock AWS-shaped PKI. It is safe for concurrent use.
type NSM struct {
	st     *state
	signer *signer
	now    func() time.Time
	faults atomic.Pointer[Faults]

	mu     sync.Mutex
	pcrs   [NumPCRs][PCRSize]byte
	locked uint32 // bit i: PCR i is locked
}

// Init creates the mock NSM state in dir (created 0700 if missing; it must not hold one already): the mock PKI
// (root -> regional -> zonal -> instance CA, P-384, AWS-like names and lifetimes; root CN mock.nitro-enclaves),
// dir/root.pem, the CA certificates and keys (keys 0600) and config.json (module id, region, boot PCRs).
func Init(dir string, cfg Config) error {
	st, err := cfg.resolve()
	if err != nil {
		return err
	}
	if Initialised(dir) {
		return fmt.Errorf("mocknsm: %s is already initialised", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	chain, err := newChain(st.ModuleID, st.Region, time.Now())
	if err != nil {
		return err
	}
	if err := saveChain(dir, chain); err != nil {
		return fmt.Errorf("mocknsm: init %s: %w", dir, err)
	}
	// config.json last: its presence marks a complete state.
	if err := writeNew(filepath.Join(dir, configName), 0o600, st.marshal()); err != nil {
		for level := range numLevels {
			os.Remove(keyFile(dir, level))
			os.Remove(certFile(dir, level))
		}
		return err
	}
	return nil
}

// Open loads the state Init wrote in dir, and dir/faults.json if present. The NSM boots: PCRs hold their boot
// values, 0..15 are locked, 16..31 are zero and unlocked. Certificates that expired or are about to are re-issued
// in memory from their parent's key (the files are not rewritten).
func Open(dir string) (*NSM, error) {
	st, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	chain, err := loadChain(dir)
	if err != nil {
		return nil, err
	}
	faults, err := loadFaults(dir)
	if err != nil {
		return nil, err
	}
	n := newNSM(st, chain, time.Now)
	n.faults.Store(&faults)
	return n, nil
}

func newNSM(st *state, chain [numLevels]*authority, now func() time.Time) *NSM {
	n := &NSM{
		st:     st,
		signer: &signer{cas: chain, moduleID: st.ModuleID, region: st.Region},
		now:    now,
		locked: bootLocked,
	}
	for i, v := range st.PCRs {
		n.pcrs[i] = v
	}
	n.faults.Store(new(Faults))
	return n
}

// RootPEM returns the mock root certificate in PEM, the trust anchor for verifying the mock's documents.
func (n *NSM) RootPEM() []byte {
	n.signer.mu.Lock()
	defer n.signer.mu.Unlock()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: n.signer.cas[levelRoot].cert.Raw})
}

// SetFaults replaces the injected faults (nil: none) after validating them.
func (n *NSM) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	c := make(Faults, len(f))
	for k, v := range f {
		c[k] = v
	}
	n.faults.Store(&c)
	return nil
}

// Process handles one encoded request as the NSM behind the ioctl would, and returns the encoded response. A
// non-zero errno means the ioctl fails and there is no response: EMSGSIZE for a request over 4096 bytes (the
// driver's check), or an injected fault. Responses are the exact serde_cbor forms (nitro-specs §4.4). See
// decodeRequest for how malformed requests are answered.
func (n *NSM) Process(req []byte) ([]byte, syscall.Errno) {
	if len(req) > nsm.MaxRequestSize {
		return nil, syscall.EMSGSIZE
	}
	r, code := decodeRequest(req)
	if code != "" {
		return encodeError(code), 0
	}
	f := (*n.faults.Load())[r.op]
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	switch {
	case f.Errno != 0:
		return nil, f.Errno
	case f.Error != "":
		return encodeError(f.Error), 0
	}
	resp := n.handle(r)
	if f.Malformed != "" {
		resp = n.corrupt(f.Malformed, r.op, resp)
	}
	return resp, 0
}

func (n *NSM) handle(r decoded) []byte {
	switch r.op {
	case DescribeNSM:
		return n.describeNSM()
	case GetRandom:
		return n.getRandom()
	case Attestation:
		return n.attest(r)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if r.op == LockPCRs {
		if r.index > NumPCRs {
			return encodeError(nsm.InvalidIndex)
		}
		n.locked |= uint32(uint64(1)<<r.index - 1)
		return lockPCRsResp
	}
	if r.index >= NumPCRs {
		return encodeError(nsm.InvalidIndex)
	}
	locked := n.locked&(1<<r.index) != 0
	switch r.op {
	case DescribePCR:
		return encode(describePCRResp{describePCRBody{Lock: locked, Data: n.pcrs[r.index][:]}})
	case ExtendPCR:
		if locked {
			return encodeError(nsm.ReadOnlyIndex)
		}
		h := sha512.New384()
		h.Write(n.pcrs[r.index][:])
		h.Write(r.data)
		h.Sum(n.pcrs[r.index][:0])
		return encode(extendPCRResp{dataBody{Data: n.pcrs[r.index][:]}})
	default: // LockPCR
		if locked {
			return encodeError(nsm.ReadOnlyIndex)
		}
		n.locked |= 1 << r.index
		return lockPCRResp
	}
}

func (n *NSM) describeNSM() []byte {
	n.mu.Lock()
	locked := n.lockedIndexes()
	n.mu.Unlock()
	return encode(describeNSMResp{describeNSMBody{
		VersionMajor: 1,
		ModuleID:     n.st.ModuleID,
		MaxPCRs:      NumPCRs,
		LockedPCRs:   locked,
		Digest:       "SHA384",
	}})
}

// lockedIndexes lists the locked PCRs in ascending order; n.mu must be held.
func (n *NSM) lockedIndexes() []uint16 {
	var l []uint16
	for i := range uint16(NumPCRs) {
		if n.locked&(1<<i) != 0 {
			l = append(l, i)
		}
	}
	return l
}

func (n *NSM) getRandom() []byte {
	b := make([]byte, randomSize)
	rand.Read(b)
	return encode(getRandomResp{randomBody{Random: b}})
}

// Initialised reports whether dir holds mock state (Init completed there).
func Initialised(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, configName))
	return err == nil
}

// Reset removes the mock state Init wrote in dir (config.json first, so a half-removed state is
// never mistaken for a complete one, then the certificates and keys), and faults.json. Other
// files in dir, and dir itself, stay. A dir without mock state is not an error.
func Reset(dir string) error {
	paths := []string{filepath.Join(dir, configName), filepath.Join(dir, faultsName)}
	for level := range numLevels {
		paths = append(paths, keyFile(dir, level), certFile(dir, level))
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mocknsm: reset %s: %w", dir, err)
		}
	}
	return nil
}
