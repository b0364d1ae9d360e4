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

	"github.com/attestd/attestd/internal/cli"
	"github.com/attestd/attestd/vsockrpc"
)

func init() {
	register(cli.Command{Name: "describe", Summary: "show what attestd says it is and holds (unverified: keys, entropy, start-up gates, PCRs)", Run: runDescribe})
	register(cli.Command{Name: "health", Summary: "ask attestd whether it can serve (exit 0 when ok)", Run: runHealth})
}

const describeUsage = `usage: attest describe --addr ADDR [--timeout DURATION] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT) to
describe itself: its version, the NSM module id, its keys (algorithm, binding
and a SHA-256 fingerprint; --json gives them whole), how it seeded the kernel's
entropy, what its start-up gates read and which of them were relaxed (flagged
INSECURE), its nonce bounds and its locked PCRs.

An agent in development mode (on the software NSM, attestd --nsm mock:DIR, or
with start-up gates relaxed: --insecure-dev or --insecure-skip-*-check) gets a
first line "WARNING: development mode: ..." naming why; --json carries it as
"development": {"mode": true, "reasons": [...]}.

This is what the agent says about itself, unverified: anyone between you and
the enclave can answer anything. Decide trust with attest fetch, which verifies
a signed attestation document and the key binding.

Exit status: 0 described, 1 the agent could not be reached or answered an
error, 2 usage error.

flags:
`

const healthUsage = `usage: attest health --addr ADDR [--timeout DURATION] [--json]

Asks attestd at ADDR (vsock://CID:PORT, unix:///PATH or tcp://HOST:PORT)
whether it can serve and attest, and prints its status and the NSM's answers
to its attestations since it started: succeeded, failed, consecutive failures
(since the last success), the times of the last success and failure and the
last error. Status "nsm_failing" means the NSM failed the agent's last
attestation. Like describe, the answer is the agent's own and unverified.

Exit status: 0 the status is "ok", 1 any other status (such as nsm_failing:
the agent cannot attest) or the agent could not be reached, 2 usage error.

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
		return nil, cli.Usagef("unexpected argument %q", pos[0])
	case f.addr == "":
		return nil, cli.Usagef("--addr is required")
	case f.timeout <= 0:
		return nil, cli.Usagef("--timeout must be positive")
	}
	if _, err := vsockrpc.ParseAddr(f.addr); err != nil {
		return nil, cli.Usagef("--addr: %v", err)
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
	if h.Status != vsockrpc.HealthOK {
		why := "it cannot serve"
		if h.Status == vsockrpc.HealthNSMFailing {
			why = "the NSM failed its last attestation, it cannot attest"
		}
		fail = rejectf(checkHealth, "agent reports status %s: %s", strconv.Quote(h.Status), why)
	}
	if !f.json {
		if _, err := io.WriteString(stdout, healthText(h)); err != nil {
			return err
		}
		return fail
	}
	// One JSON object: the status, the NSM counters, and the error when the
	// status is not ok.
	j := struct {
		Status string           `json:"status"`
		Attest jsonAttestHealth `json:"attest"`
		Error  *jsonErrorField  `json:"error,omitempty"`
	}{Status: h.Status, Attest: jsonAttestHealth(h.Attest)}
	if fail != nil {
		j.Error = newJSONErrorField(fail)
		fail = reported{fail}
	}
	if err := writeJSON(stdout, j); err != nil {
		return err
	}
	return fail
}

// jsonAttestHealth is health's attest object: the protocol's field names,
// times in Unix seconds (0 if none).
type jsonAttestHealth struct {
	Succeeded           uint64 `json:"succeeded"`
	Failed              uint64 `json:"failed"`
	ConsecutiveFailures uint64 `json:"consecutive_failures"`
	LastSuccess         int64  `json:"last_success"`
	LastFailure         int64  `json:"last_failure"`
	LastError           string `json:"last_error"`
}

// healthText is the status on its first line (what scripts read), then the
// NSM's answers to the agent's attestations, one fact a line.
func healthText(h *vsockrpc.Health) string {
	var b strings.Builder
	fmt.Fprintln(&b, show(h.Status))
	a := h.Attest
	fmt.Fprintf(&b, "%-13s %d succeeded, %d failed, %d consecutive failures\n", "attestations", a.Succeeded, a.Failed, a.ConsecutiveFailures)
	fmt.Fprintf(&b, "%-13s %s\n", "last success", unixOrNever(a.LastSuccess))
	fmt.Fprintf(&b, "%-13s %s\n", "last failure", unixOrNever(a.LastFailure))
	if a.LastError != "" {
		fmt.Fprintf(&b, "%-13s %s\n", "last error", show(a.LastError))
	}
	return b.String()
}

func unixOrNever(t int64) string {
	if t == 0 {
		return "never"
	}
	return time.Unix(t, 0).UTC().Format(time.RFC3339)
}

// development returns why the agent runs in development mode, by its own
// account: on the software NSM (its entropy source says so; attestd --nsm
// mock:DIR) or with start-up gates relaxed (--insecure-dev, --nsm mock:DIR or
// --insecure-skip-*-check). Empty when neither.
func development(d *vsockrpc.Description) []string {
	reasons := []string{}
	if strings.HasSuffix(d.Entropy.Source, softwareNSMSuffix) {
		reasons = append(reasons, "software NSM (attestd --nsm mock:DIR): documents are signed by the mock PKI, not AWS")
	}
	if len(d.Platform.Relaxed) > 0 {
		names := make([]string, len(d.Platform.Relaxed))
		for i, g := range d.Platform.Relaxed {
			names[i] = show(g)
		}
		reasons = append(reasons, "start-up gates relaxed (--insecure-dev or --insecure-skip-*-check): "+strings.Join(names, ", "))
	}
	return reasons
}

// softwareNSMSuffix ends the entropy source of an agent on the software NSM
// (agent.Config.Mock).
const softwareNSMSuffix = "; software NSM"

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
		// Development is derived from entropy and platform: whether the
		// agent says it runs in development mode, and why.
		Development jsonDevelopment `json:"development"`
	}
	jsonDevelopment struct {
		Mode    bool     `json:"mode"`
		Reasons []string `json:"reasons"` // [] when not in development mode
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
	out.Development.Reasons = development(d)
	out.Development.Mode = len(out.Development.Reasons) > 0
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
	if dev := development(d); len(dev) > 0 {
		tail := "do not trust this agent in production"
		if strings.HasSuffix(d.Entropy.Source, softwareNSMSuffix) {
			tail = "documents from this agent prove nothing"
		}
		fmt.Fprintf(&b, "WARNING: development mode: %s; %s\n", strings.Join(dev, "; "), tail)
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
