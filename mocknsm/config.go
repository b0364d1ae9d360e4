package mocknsm

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// PCRSize is the length of a PCR: the NSM's digest is SHA-384.
const PCRSize = 48

// NumPCRs is the NSM's PCR count (DescribeNSM max_pcrs).
const NumPCRs = 32

// BootPCRs are the indexes whose boot value Config can set: the enclave image (0), kernel (1), application (2),
// parent's IAM role (3), parent instance id (4) and EIF signing certificate (8). All others boot as zeros.
var BootPCRs = [...]uint16{0, 1, 2, 3, 4, 8}

// Config describes the mock enclave. The zero Config is a production-looking enclave with a random module id.
type Config struct {
	// ModuleID is "i-<17 hex>-enc<16 hex>" (the parent instance id and the enclave id). Empty: a random one.
	ModuleID string
	// Region appears in the certificate names, e.g. "us-east-1" (the default).
	Region string
	// PCRs sets boot values (48 bytes each) of the indexes in BootPCRs. Unset ones get defaults: PCR0/1/2
	// fixed non-zero values (the same for every mock), PCR3 zero (no IAM role), PCR4 SHA-384(0^48 || instance
	// id) as on real hardware, PCR8 zero (unsigned image).
	PCRs map[uint16][]byte
	// Debug mimics a debug-mode enclave: PCR0/1/2/8 are all zeros (PCRs must not set them).
	Debug bool
}

var moduleIDPattern = regexp.MustCompile(`^i-[0-9a-f]{17}-enc[0-9a-f]{16}$`)
var regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)

// splitModuleID returns the instance id ("i-…") and the enclave id (16 hex) of a valid module id.
func splitModuleID(id string) (instance, enclave string) {
	i := strings.Index(id, "-enc")
	return id[:i], id[i+len("-enc"):]
}

// extendFromZero returns SHA-384(0^48 || data), a PCR extended once from its boot value.
func extendFromZero(data []byte) [PCRSize]byte {
	h := sha512.New384()
	h.Write(make([]byte, PCRSize))
	h.Write(data)
	var v [PCRSize]byte
	h.Sum(v[:0])
	return v
}

// state is the resolved configuration, persisted as config.json.
type state struct {
	ModuleID string
	Region   string
	Debug    bool
	PCRs     map[uint16][PCRSize]byte // every index of BootPCRs
}

// Validate reports what Init would refuse in cfg, without writing anything.
func (cfg Config) Validate() error {
	_, err := cfg.resolve()
	return err
}

// resolve validates cfg and fills in the defaults.
func (cfg Config) resolve() (*state, error) {
	st := &state{ModuleID: cfg.ModuleID, Region: cfg.Region, Debug: cfg.Debug, PCRs: map[uint16][PCRSize]byte{}}
	if st.ModuleID == "" {
		st.ModuleID = "i-0" + randomHex(8) + "-enc" + randomHex(8)
	}
	if st.Region == "" {
		st.Region = "us-east-1"
	}
	if !moduleIDPattern.MatchString(st.ModuleID) {
		return nil, fmt.Errorf("mocknsm: module id %q is not i-<17 hex>-enc<16 hex>", st.ModuleID)
	}
	instanceID, _ := splitModuleID(st.ModuleID)
	for _, i := range BootPCRs {
		switch {
		case i <= 2 && !st.Debug:
			st.PCRs[i] = extendFromZero([]byte("attestd mock PCR" + strconv.Itoa(int(i))))
		case i == 4:
			st.PCRs[i] = extendFromZero([]byte(instanceID))
		default:
			st.PCRs[i] = [PCRSize]byte{}
		}
	}
	for i, v := range cfg.PCRs {
		if !isBootPCR(i) {
			return nil, fmt.Errorf("mocknsm: PCR%d has no configurable boot value (only %v)", i, BootPCRs)
		}
		if len(v) != PCRSize {
			return nil, fmt.Errorf("mocknsm: PCR%d is %d bytes, want %d", i, len(v), PCRSize)
		}
		st.PCRs[i] = [PCRSize]byte(v)
	}
	if err := st.validate(); err != nil {
		return nil, err
	}
	return st, nil
}

// validate checks a resolved state.
func (st *state) validate() error {
	if !moduleIDPattern.MatchString(st.ModuleID) {
		return fmt.Errorf("mocknsm: module id %q is not i-<17 hex>-enc<16 hex>", st.ModuleID)
	}
	if !regionPattern.MatchString(st.Region) {
		return fmt.Errorf("mocknsm: region %q is not like us-east-1", st.Region)
	}
	if len(st.PCRs) != len(BootPCRs) {
		return fmt.Errorf("mocknsm: want boot values for exactly PCRs %v", BootPCRs)
	}
	for _, i := range BootPCRs {
		v, ok := st.PCRs[i]
		if !ok {
			return fmt.Errorf("mocknsm: no boot value for PCR%d", i)
		}
		if st.Debug && i != 3 && i != 4 && v != ([PCRSize]byte{}) {
			return fmt.Errorf("mocknsm: PCR%d must be all zeros in debug mode", i)
		}
	}
	return nil
}

func isBootPCR(i uint16) bool {
	for _, b := range BootPCRs {
		if i == b {
			return true
		}
	}
	return false
}

// stateJSON is the on-disk form of state, with PCRs in hex.
type stateJSON struct {
	ModuleID string            `json:"module_id"`
	Region   string            `json:"region"`
	Debug    bool              `json:"debug"`
	PCRs     map[uint16]string `json:"pcrs"`
}

const configName = "config.json"

func (st *state) marshal() []byte {
	j := stateJSON{ModuleID: st.ModuleID, Region: st.Region, Debug: st.Debug, PCRs: map[uint16]string{}}
	for i, v := range st.PCRs {
		j.PCRs[i] = hex.EncodeToString(v[:])
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		panic(err) // plain strings and bools: cannot fail
	}
	return append(b, '\n')
}

// loadState reads dir/config.json and validates it as Init would.
func loadState(dir string) (*state, error) {
	path := filepath.Join(dir, configName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j stateJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("mocknsm: %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("mocknsm: %s: trailing data", path)
	}
	st := &state{ModuleID: j.ModuleID, Region: j.Region, Debug: j.Debug, PCRs: map[uint16][PCRSize]byte{}}
	for i, h := range j.PCRs {
		v, err := hex.DecodeString(h)
		if err != nil || len(v) != PCRSize {
			return nil, fmt.Errorf("mocknsm: %s: PCR%d is not %d bytes of hex", path, i, PCRSize)
		}
		st.PCRs[i] = [PCRSize]byte(v)
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return st, nil
}
