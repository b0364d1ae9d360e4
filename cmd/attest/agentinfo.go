package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(command{name: "describe", summary: "show what attestd says it is and holds (unverified: keys, entropy, start-up gates, PCRs)", run: runDescribe})
	register(command{name: "health", summary: "ask attestd whether it can serve (exit 0 when ok)", run: runHealth})
}

const describeUsage = `usage: attest describe --addr ADDR [--timeout DURATION] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT) to
describe itself: its version, the NSM module id, its keys (algorithm, binding
and a SHA-256 fingerprint; --json gives them whole), how it seeded the kernel's
entropy, what its start-up gates read and which of them were relaxed (flagged
INSECURE), its nonce bounds and its locked PCRs.

This is what the agent says about itself, unverified: anyone between you and
the enclave can answer anything. Decide trust with attest fetch, which verifies
a signed attestation document and the key binding.

Exit status: 0 described, 1 the agent could not be reached or answered an
error, 2 usage error.

flags:
`

const healthUsage = `usage: attest health --addr ADDR [--timeout DURATION] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT)
whether it can serve, and prints its status. Like describe, the answer is the
agent's own and unverified.

Exit status: 0 the status is "ok", 1 any other status or the agent could not
be reached, 2 usage error.

flags:
`

// agentFlags are the flags of the commands that only query attestd.
type agentFlags struct {
	addr    string
	timeout time.Duration
	json    bool
}

// The flags every command that talks to attestd shares (fetch, describe, health).
const (
	addrUsage           = "attestd's parent API `ADDR`: vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT (required)"
	timeoutUsage        = "give up on the agent after this `DURATION`"
	defaultAgentTimeout = 10 * time.Second
)

// parseAgentFlags parses the flags of the command name, which takes no
// arguments; usage is its help text.
func parseAgentFlags(name, usage string, args []string, stdout io.Writer) (*agentFlags, error) {
	f := &agentFlags{}
	fs := newFlagSet(name)
	fs.StringVar(&f.addr, "addr", "", addrUsage)
	fs.DurationVar(&f.timeout, "timeout", defaultAgentTimeout, timeoutUsage)
	fs.BoolVar(&f.json, "json", false, "print JSON (bytes as hex); on failure a JSON error object")
	pos, err := parseArgs(fs, usage, args, stdout)
	if err != nil {
		return nil, err
	}
	switch {
	case len(pos) > 0:
		return nil, usagef("unexpected argument %q", pos[0])
	case f.addr == "":
		return nil, usagef("--addr is required")
	case f.timeout <= 0:
		return nil, usagef("--timeout must be positive")
	}
	if _, err := vsockrpc.ParseAddr(f.addr); err != nil {
		return nil, usagef("--addr: %v", err)
	}
	return f, nil
}

// call dials the agent and runs do, both within --timeout.
func (f *agentFlags) call(do func(context.Context, *vsockrpc.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	c, err := vsockrpc.Dial(ctx, f.addr)
	if err != nil {
		return checkError{checkAgent, err} // names the address
	}
	defer c.Close()
	if err := do(ctx, c); err != nil {
		return rejectf(checkAgent, "agent: %w", err)
	}
	return nil
}

func runDescribe(args []string, stdout, stderr io.Writer) error {
	f, err := parseAgentFlags("describe", describeUsage, args, stdout)
	if err != nil {
		return err
	}
	var d *vsockrpc.Description
	if err := f.call(func(ctx context.Context, c *vsockrpc.Client) (err error) {
		d, err = c.Describe(ctx)
		return err
	}); err != nil {
		return err
	}
	if f.json {
		return writeJSON(stdout, describeJSON(d))
	}
	_, err = io.WriteString(stdout, describeText(d))
	return err
}

func runHealth(args []string, stdout, stderr io.Writer) error {
	f, err := parseAgentFlags("health", healthUsage, args, stdout)
	if err != nil {
		return err
	}
	var h *vsockrpc.Health
	if err := f.call(func(ctx context.Context, c *vsockrpc.Client) (err error) {
		h, err = c.Health(ctx)
		return err
	}); err != nil {
		return err
	}
	var fail error
	if h.Status != "ok" {
		fail = rejectf(checkHealth, "agent reports status %s: it cannot serve", strconv.Quote(h.Status))
	}
	if !f.json {
		if _, err := fmt.Fprintln(stdout, show(h.Status)); err != nil {
			return err
		}
		return fail
	}
	// One JSON object: the status, and the error when it is not ok.
	j := struct {
		Status string          `json:"status"`
		Error  *jsonErrorField `json:"error,omitempty"`
	}{Status: h.Status}
	if fail != nil {
		j.Error = newJSONErrorField(fail)
		fail = reported{fail}
	}
	if err := writeJSON(stdout, j); err != nil {
		return err
	}
	return fail
}

// Describe's JSON: the protocol's field names, keys whole (hex) and with
// their SHA-256.
type (
	jsonDescription struct {
		AgentVersion string         `json:"agent_version"`
		ModuleID     string         `json:"module_id"`
		Keys         []jsonAgentKey `json:"keys"`
		Entropy      jsonEntropy    `json:"entropy"`
		Platform     jsonPlatform   `json:"platform"`
		Nonce        jsonNonce      `json:"nonce"`
		PCRs         jsonAgentPCRs  `json:"pcrs"`
	}
	jsonAgentKey struct {
		Name      string   `json:"name"`
		Algorithm string   `json:"algorithm"`
		Binding   string   `json:"binding"`
		PublicKey hexBytes `json:"public_key"` // the full key
		SHA256    string   `json:"sha256"`     // of public_key, hex
	}
	jsonEntropy struct {
		Source      string `json:"source"`
		SeededBytes uint64 `json:"seeded_bytes"`
		KernelPool  string `json:"kernel_pool"`
		LastReseed  int64  `json:"last_reseed"` // Unix seconds; 0 if none
	}
	jsonPlatform struct {
		KernelRelease string   `json:"kernel_release"`
		ClockSource   string   `json:"clock_source"`
		Relaxed       []string `json:"relaxed"` // [] when every gate is enforced
	}
	jsonNonce struct {
		Min      uint64 `json:"min"`
		Max      uint64 `json:"max"`
		Required bool   `json:"required"`
	}
)

func describeJSON(d *vsockrpc.Description) jsonDescription {
	out := jsonDescription{
		AgentVersion: d.AgentVersion,
		ModuleID:     d.ModuleID,
		Keys:         []jsonAgentKey{},
		Entropy: jsonEntropy{Source: d.Entropy.Source, SeededBytes: d.Entropy.SeededBytes,
			KernelPool: d.Entropy.KernelPool, LastReseed: d.Entropy.LastReseed},
		Platform: jsonPlatform{KernelRelease: d.Platform.KernelRelease, ClockSource: d.Platform.ClockSource,
			Relaxed: append([]string{}, d.Platform.Relaxed...)},
		Nonce: jsonNonce{Min: d.Nonce.Min, Max: d.Nonce.Max, Required: d.Nonce.Required},
		PCRs:  jsonAgentPCRs(d.PCRs),
	}
	for _, k := range d.Keys {
		sum := sha256.Sum256(k.PublicKey)
		out.Keys = append(out.Keys, jsonAgentKey{Name: k.Name, Algorithm: k.Algorithm, Binding: k.Binding,
			PublicKey: k.PublicKey, SHA256: hex.EncodeToString(sum[:])})
	}
	return out
}

// jsonAgentPCRs marshals as {"0": "hex", ...} in index order, as verify's
// pcrs do, for every index the agent sent.
type jsonAgentPCRs map[uint16][]byte

func (p jsonAgentPCRs) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, idx := range slices.Sorted(maps.Keys(p)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%q:%q", strconv.Itoa(int(idx)), hex.EncodeToString(p[idx]))
	}
	return append(b, '}'), nil
}

// describeText is the description for people, one fact a line.
func describeText(d *vsockrpc.Description) string {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s "+format+"\n", append([]any{label}, args...)...)
	}
	b.WriteString("attestd's description of itself, unverified (attest fetch verifies a document)\n")
	line("agent", "%s", show(d.AgentVersion))
	line("module_id", "%s", show(d.ModuleID))
	for _, k := range d.Keys {
		sum := sha256.Sum256(k.PublicKey)
		line("key", "%s: %s, binding %s, %d bytes, sha256:%x", show(k.Name), show(k.Algorithm), show(k.Binding),
			len(k.PublicKey), sum[:fingerprintSize])
	}
	if len(d.Keys) == 0 {
		line("key", "none")
	}
	line("entropy", "%s", show(d.Entropy.Source))
	line("kernel pool", "%s", show(d.Entropy.KernelPool))
	last := "never reseeded"
	if d.Entropy.LastReseed != 0 {
		last = "last reseed " + time.Unix(d.Entropy.LastReseed, 0).UTC().Format(time.RFC3339)
	}
	line("seeded", "%d bytes from the NSM, %s", d.Entropy.SeededBytes, last)
	line("kernel", "%s", orUnknown(d.Platform.KernelRelease))
	line("clock source", "%s", orUnknown(d.Platform.ClockSource))
	if len(d.Platform.Relaxed) == 0 {
		line("gates", "all enforced")
	} else {
		names := make([]string, len(d.Platform.Relaxed))
		for i, g := range d.Platform.Relaxed {
			names[i] = show(g)
		}
		line("gates", "INSECURE: %s relaxed by --insecure-skip-*-check (development only; do not trust this agent in production)",
			strings.Join(names, ", "))
	}
	need := "required"
	if !d.Nonce.Required {
		need = "optional: documents without a nonce prove no freshness"
	}
	line("nonce", "%d..%d bytes, %s", d.Nonce.Min, d.Nonce.Max, need)
	for _, i := range slices.Sorted(maps.Keys(d.PCRs)) {
		fmt.Fprintf(&b, "PCR%-2d        %x\n", i, d.PCRs[i])
	}
	return b.String()
}

// fingerprintSize is how many bytes of a key's SHA-256 the text shows: enough
// to tell keys apart by eye; --json gives the whole digest and key.
const fingerprintSize = 8

// show returns s as it is when it is printable, quoted otherwise: the agent is
// not trusted, and its text must not drive the terminal.
func show(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown (the agent could not read it)"
	}
	return show(s)
}
