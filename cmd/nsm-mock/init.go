package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/mocknsm"
)

// pcrFlag collects repeated --pcr N=HEX values.
type pcrFlag map[uint16][]byte

func (p pcrFlag) String() string { return "" }

func (p pcrFlag) Set(s string) error {
	idx, val, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want N=HEX, got %q", s)
	}
	n, err := strconv.ParseUint(idx, 10, 16)
	if err != nil || !slices.Contains(mocknsm.BootPCRs[:], uint16(n)) {
		return fmt.Errorf("PCR index %q: only %v have configurable boot values", idx, mocknsm.BootPCRs)
	}
	if _, dup := p[uint16(n)]; dup {
		return fmt.Errorf("PCR%d given twice", n)
	}
	v, err := hex.DecodeString(val)
	if err != nil || len(v) != mocknsm.PCRSize {
		return fmt.Errorf("PCR%d: want %d bytes of hex (%d digits)", n, mocknsm.PCRSize, 2*mocknsm.PCRSize)
	}
	p[uint16(n)] = v
	return nil
}

func runInit(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	dir := fs.String("dir", "", "state `directory` to create (required; must not hold mock state yet)")
	pcrs := pcrFlag{}
	fs.Var(pcrs, "pcr", "boot value of a PCR as `N=HEX` (48 bytes); repeatable; N is one of 0, 1, 2, 3, 4, 8")
	moduleID := fs.String("module-id", "", "module `id`, i-<17 hex>-enc<16 hex> (default: random)")
	region := fs.String("region", "", "AWS `region` named in the mock certificates (default us-east-1)")
	debug := fs.Bool("debug", false, "mimic a debug-mode enclave (PCR0/1/2/8 all zeros)")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	force := fs.Bool("force", false, "replace the mock state D already holds (a new PKI: documents made before no longer verify against D/root.pem)")
	if err := parseFlags(fs, "init --dir D [--force] [--pcr N=HEX ...] [--module-id ID] [--region R] [--debug] [--json]",
		"Creates the mock PKI (root -> regional -> zonal -> instance CA, P-384) and the enclave\n"+
			"state in D. D/root.pem is the mock root: nothing trusts it unless told to\n"+
			"(attest verify --root D/root.pem).", args, stdout); err != nil {
		return err
	}
	if *dir == "" {
		return cli.Usagef("--dir is required")
	}
	cfg := mocknsm.Config{ModuleID: *moduleID, Region: *region, Debug: *debug, PCRs: pcrs}
	if err := cfg.Validate(); err != nil { // before --force removes anything
		return err
	}
	if mocknsm.Initialised(*dir) {
		if !*force {
			return fmt.Errorf("%s already holds mock state: use it as it is, or start over with nsm-mock init --force --dir %s", *dir, *dir)
		}
		if err := mocknsm.Reset(*dir); err != nil {
			return err
		}
	}
	if err := mocknsm.Init(*dir, cfg); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	root := filepath.Join(abs, "root.pem")
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(struct {
			Dir     string `json:"dir"`
			RootPEM string `json:"root_pem"`
		}{abs, root})
	}
	fmt.Fprintf(stdout, "mock NSM state created in %s\nmock root certificate: %s\n", abs, root)
	return nil
}
