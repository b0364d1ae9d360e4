package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/nsm"
	"github.com/attestd/attestd/vsockrpc"
)

// claimingAgent answers describe and health with what a test makes it claim.
type claimingAgent struct {
	vsockrpc.ParentService
	edit   func(*vsockrpc.Description)
	status string
}

func (c *claimingAgent) Describe(ctx context.Context) (*vsockrpc.Description, error) {
	d, err := c.ParentService.Describe(ctx)
	if err == nil && c.edit != nil {
		c.edit(d)
	}
	return d, err
}

func (c *claimingAgent) Health(ctx context.Context) (*vsockrpc.Health, error) {
	if c.status != "" {
		return &vsockrpc.Health{Status: c.status}, nil
	}
	return c.ParentService.Health(ctx)
}

func startClaimingAgent(t *testing.T, c *claimingAgent) *testAgent {
	t.Helper()
	return startFetchAgent(t, func(s vsockrpc.ParentService) vsockrpc.ParentService {
		c.ParentService = s
		return c
	})
}

// agentKey is the test agent's public key name (startFetchAgent's key set).
func agentKey(t *testing.T, name string) []byte {
	t.Helper()
	set, err := mockenclave.Keys(keys.Config{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := set.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

func TestDescribeText(t *testing.T) {
	ta := startFetchAgent(t, nil) // software NSM, hwrng gate relaxed, no platform report
	out := wantExit(t, 0, "", "describe", "--addr", ta.addr)
	hpke, rsa := agentKey(t, keys.HPKE), agentKey(t, keys.RSA)
	hs, rs := sha256.Sum256(hpke), sha256.Sum256(rsa)
	// The first line says it: development mode, and why.
	if w := "WARNING: development mode: software NSM (attestd --nsm mock:DIR): documents are signed by the mock PKI, not AWS; " +
		"start-up gates relaxed (--insecure-dev or --insecure-skip-*-check): hwrng; documents from this agent prove nothing\n"; !strings.HasPrefix(out, w) {
		t.Errorf("output does not start with %q:\n%s", w, out)
	}
	for _, w := range []string{
		"attestd's description of itself, unverified (attest fetch verifies a document)\n",
		"agent        \"\"\n", // the test agent has no version
		"key          hpke: HPKE KEM 0x647a (MLKEM768-X25519), binding digest, 1216 bytes, sha256:" + hex.EncodeToString(hs[:8]) + "\n",
		"key          rsa: RSA-2048 (SPKI DER), binding whole, 294 bytes, sha256:" + hex.EncodeToString(rs[:8]) + "\n",
		"entropy      hwrng unknown (not nsm-hwrng: check skipped); software NSM\n",
		"kernel pool  not fed; kernel pool not touched: software NSM\n",
		"seeded       0 bytes from the NSM, never reseeded\n",
		"kernel       unknown (the agent could not read it)\n",
		"clock source unknown (the agent could not read it)\n",
		"gates        INSECURE: hwrng relaxed by --insecure-skip-*-check",
		"nonce        1..512 bytes, required\n",
		"PCR0         " + hex.EncodeToString(ta.pcrs[0]) + "\n",
		"PCR15        " + hex.EncodeToString(ta.pcrs[15]) + "\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// A fingerprint, not the key.
	if strings.Contains(out, hex.EncodeToString(rsa[:32])) || strings.Contains(out, hex.EncodeToString(hs[:9])) {
		t.Errorf("output shows more than a short fingerprint:\n%s", out)
	}
	if strings.Index(out, "PCR2 ") > strings.Index(out, "PCR10") {
		t.Errorf("PCRs out of order:\n%s", out)
	}
}

// TestDescribeTextClaims: every gate enforced reads so, and what an agent
// claims is shown, never interpreted by the terminal.
func TestDescribeTextClaims(t *testing.T) {
	ta := startClaimingAgent(t, &claimingAgent{edit: func(d *vsockrpc.Description) {
		d.AgentVersion = "v1.0.0"
		d.ModuleID = "i-0\x1b[2J\x1b]0;pwned\a"
		d.Platform = vsockrpc.Platform{KernelRelease: "6.6.38-amzn", ClockSource: "kvm-clock", Relaxed: []string{}}
		d.Nonce.Required = false
		d.Entropy.LastReseed = 1763800000
		d.Entropy.Source = "hwrng nsm-hwrng + NSM GetRandom" // a real NSM
	}})
	out := wantExit(t, 0, "", "describe", "--addr", ta.addr)
	for _, w := range []string{
		"agent        v1.0.0\n",
		`module_id    "i-0\x1b[2J\x1b]0;pwned\a"` + "\n",
		"kernel       6.6.38-amzn\n",
		"clock source kvm-clock\n",
		"gates        all enforced\n",
		"nonce        1..512 bytes, optional: documents without a nonce prove no freshness\n",
		"seeded       0 bytes from the NSM, last reseed 2025-11-22T08:26:40Z\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "INSECURE") || strings.Contains(out, "WARNING") || strings.ContainsAny(out, "\x1b\a") {
		t.Errorf("output warns, or carries control bytes:\n%q", out)
	}

	// A real NSM with gates relaxed (--insecure-dev on the FUSE device, or
	// --insecure-skip-*-check): development mode all the same.
	ta = startClaimingAgent(t, &claimingAgent{edit: func(d *vsockrpc.Description) {
		d.Entropy.Source = "hwrng nsm-hwrng + NSM GetRandom"
		d.Platform.Relaxed = []string{vsockrpc.GateKernel, vsockrpc.GateDebug, "new\tgate"}
	}})
	out = wantExit(t, 0, "", "describe", "--addr", ta.addr)
	for _, w := range []string{
		`WARNING: development mode: start-up gates relaxed (--insecure-dev or --insecure-skip-*-check): kernel, debug, "new\tgate"; do not trust this agent in production` + "\n",
		`gates        INSECURE: kernel, debug, "new\tgate" relaxed`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if !strings.HasPrefix(out, "WARNING: ") {
		t.Errorf("the warning is not the first line:\n%s", out)
	}
}

func TestDescribeJSON(t *testing.T) {
	ta := startFetchAgent(t, nil)
	out := wantExit(t, 0, "", "describe", "--addr", ta.addr, "--json")
	// The shape: exactly these fields, at every level.
	var shape map[string]any
	if err := json.Unmarshal([]byte(out), &shape); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	fieldsOf := func(v any) []string {
		m, _ := v.(map[string]any)
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	for _, c := range []struct {
		v    any
		want string
	}{
		{shape, "agent_version development entropy keys module_id nonce pcrs platform"},
		{shape["development"], "mode reasons"},
		{shape["entropy"], "kernel_pool last_reseed seeded_bytes source"},
		{shape["platform"], "clock_source kernel_release relaxed"},
		{shape["nonce"], "max min required"},
		{shape["keys"].([]any)[0], "algorithm binding name public_key sha256"},
	} {
		if got := strings.Join(fieldsOf(c.v), " "); got != c.want {
			t.Errorf("fields %q, want %q", got, c.want)
		}
	}

	var j struct {
		Keys []struct {
			Name      string  `json:"name"`
			Binding   string  `json:"binding"`
			PublicKey hexJSON `json:"public_key"`
			SHA256    string  `json:"sha256"`
		} `json:"keys"`
		Platform struct {
			KernelRelease *string  `json:"kernel_release"`
			Relaxed       []string `json:"relaxed"`
		} `json:"platform"`
		Nonce struct {
			Min, Max uint64
			Required bool
		} `json:"nonce"`
		PCRs        map[string]string `json:"pcrs"`
		Development struct {
			Mode    bool     `json:"mode"`
			Reasons []string `json:"reasons"`
		} `json:"development"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Keys) != 2 || j.Keys[0].Name != keys.HPKE || j.Keys[1].Name != keys.RSA || j.Keys[1].Binding != keys.BindingWhole {
		t.Fatalf("keys = %+v", j.Keys)
	}
	for _, k := range j.Keys {
		sum := sha256.Sum256(k.PublicKey)
		if !bytes.Equal(k.PublicKey, agentKey(t, k.Name)) || k.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: public_key %d bytes, sha256 %s: not the agent's whole key", k.Name, len(k.PublicKey), k.SHA256)
		}
	}
	if p := j.Platform; p.KernelRelease == nil || *p.KernelRelease != "" || !slices.Equal(p.Relaxed, []string{"hwrng"}) {
		t.Errorf("platform = %+v", p)
	}
	if j.Nonce.Min != 1 || j.Nonce.Max != 512 || !j.Nonce.Required {
		t.Errorf("nonce = %+v", j.Nonce)
	}
	if len(j.PCRs) != len(ta.pcrs) || j.PCRs["0"] != hex.EncodeToString(ta.pcrs[0]) {
		t.Errorf("pcrs = %v", j.PCRs)
	}
	if i0, i2, i10 := strings.Index(out, `"0": "`), strings.Index(out, `"2": "`), strings.Index(out, `"10": "`); !(i0 < i2 && i2 < i10) {
		t.Errorf("pcrs not in index order:\n%s", out)
	}

	if d := j.Development; !d.Mode || len(d.Reasons) != 2 || !strings.HasPrefix(d.Reasons[0], "software NSM") ||
		!strings.HasSuffix(d.Reasons[1], ": hwrng") {
		t.Errorf("development = %+v", d)
	}

	// No gate relaxed: an empty list, not null; and on a real NSM too, no
	// development mode.
	ta = startClaimingAgent(t, &claimingAgent{edit: func(d *vsockrpc.Description) {
		d.Platform.Relaxed = nil
		d.Entropy.Source = "hwrng nsm-hwrng + NSM GetRandom"
	}})
	out = wantExit(t, 0, "", "describe", "--addr", ta.addr, "--json")
	if !strings.Contains(out, `"relaxed": []`) || !strings.Contains(out, `"development": {
    "mode": false,
    "reasons": []
  }`) {
		t.Errorf("relaxed or development reasons not []:\n%s", out)
	}
}

func TestHealth(t *testing.T) {
	ta := startFetchAgent(t, nil)
	if out := wantExit(t, 0, "", "health", "--addr", ta.addr); out != "ok\n"+
		"attestations  0 succeeded, 0 failed, 0 consecutive failures\nlast success  never\nlast failure  never\n" {
		t.Errorf("health = %q", out)
	}
	if out := wantExit(t, 0, "", "health", "--addr", ta.addr, "--json"); out != `{
  "status": "ok",
  "attest": {
    "succeeded": 0,
    "failed": 0,
    "consecutive_failures": 0,
    "last_success": 0,
    "last_failure": 0,
    "last_error": ""
  }
}
` {
		t.Errorf("health --json = %q", out)
	}
	sick := startClaimingAgent(t, &claimingAgent{status: "draining"})
	if out := wantExit(t, 1, `agent reports status "draining": it cannot serve`, "health", "--addr", sick.addr); !strings.HasPrefix(out, "draining\n") {
		t.Errorf("health = %q", out)
	}
	// --json: one object, the status and the error together.
	out := wantExit(t, 1, `status "draining"`, "health", "--addr", sick.addr, "--json")
	j := decodeHealth(t, out)
	if j.Status != "draining" || j.Error == nil || j.Error.Check != "health" || !strings.Contains(j.Error.Message, `"draining"`) {
		t.Errorf("health --json = %q", out)
	}
}

type healthJSON struct {
	Status string           `json:"status"`
	Attest jsonAttestHealth `json:"attest"`
	Error  *jsonErrorField  `json:"error"`
}

func decodeHealth(t *testing.T, out string) healthJSON {
	t.Helper()
	var j healthJSON
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil || dec.More() {
		t.Fatalf("health --json = %q (%v)", out, err)
	}
	return j
}

// TestHealthNSMFailing: with the NSM failing every attestation (a fault
// injected into the software NSM), health says nsm_failing, prints the
// counters and exits 1; after a success it is ok again, exit 0.
func TestHealthNSMFailing(t *testing.T) {
	ta := startFetchAgent(t, nil)
	wantExit(t, 0, "", "fetch", "--addr", ta.addr, "--root", ta.root, "--any-pcrs")
	if err := ta.mock.SetFaults(mocknsm.Faults{"Attestation": {Error: nsm.InternalError}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		wantExit(t, 1, "", "fetch", "--addr", ta.addr, "--root", ta.root, "--any-pcrs")
	}
	out := wantExit(t, 1, `agent reports status "nsm_failing": the NSM failed its last attestation, it cannot attest`, "health", "--addr", ta.addr)
	for _, w := range []string{
		"nsm_failing\n",
		"attestations  1 succeeded, 2 failed, 2 consecutive failures\n",
		"last success  20", // a time, RFC 3339
		"last failure  20",
		"last error    ",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("health lacks %q:\n%s", w, out)
		}
	}
	j := decodeHealth(t, wantExit(t, 1, `"nsm_failing"`, "health", "--addr", ta.addr, "--json"))
	if a := j.Attest; j.Status != vsockrpc.HealthNSMFailing || a.Succeeded != 1 || a.Failed != 2 || a.ConsecutiveFailures != 2 ||
		a.LastSuccess == 0 || a.LastFailure < a.LastSuccess || a.LastError == "" || j.Error == nil || j.Error.Check != "health" {
		t.Errorf("health --json = %+v", j)
	}

	if err := ta.mock.SetFaults(nil); err != nil {
		t.Fatal(err)
	}
	wantExit(t, 0, "", "fetch", "--addr", ta.addr, "--root", ta.root, "--any-pcrs")
	j = decodeHealth(t, wantExit(t, 0, "", "health", "--addr", ta.addr, "--json"))
	if a := j.Attest; j.Status != vsockrpc.HealthOK || a.Succeeded != 2 || a.Failed != 2 || a.ConsecutiveFailures != 0 || j.Error != nil {
		t.Errorf("after the fault cleared: health --json = %+v", j)
	}
}

// TestAgentUnreachable: no agent, or one that never answers within --timeout:
// exit 1 and one line, nothing on stdout.
func TestAgentUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "describe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	silent := "unix://" + filepath.Join(dir, "silent")
	l, err := vsockrpc.Listen(silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	none := "unix://" + filepath.Join(dir, "none")
	for _, cmd := range []string{"describe", "health"} {
		for _, c := range []struct{ addr, substr string }{{none, "no such file"}, {silent, "deadline"}} {
			if out := wantExit(t, 1, c.substr, cmd, "--addr", c.addr, "--timeout", "300ms"); out != "" {
				t.Errorf("%s %s: stdout %q", cmd, c.addr, out)
			}
			// --json: the error object on stdout, naming the agent as what failed.
			out := wantExit(t, 1, c.substr, cmd, "--addr", c.addr, "--timeout", "300ms", "--json")
			if e := jsonErrorOf(t, out); e.Check != "agent" || !strings.Contains(e.Message, c.substr) {
				t.Errorf("%s %s --json: %+v", cmd, c.addr, e)
			}
		}
	}
}

func TestAgentInfoUsage(t *testing.T) {
	for _, cmd := range []string{"describe", "health"} {
		for name, args := range map[string][]string{
			"no addr":      {"--timeout", "1s"},
			"bad addr":     {"--addr", "http://x"},
			"stray arg":    {"--addr", "unix:///x", "extra"},
			"zero timeout": {"--addr", "unix:///x", "--timeout", "0s"},
			"bad timeout":  {"--addr", "unix:///x", "--timeout", "soon"},
			"unknown flag": {"--addr", "unix:///x", "--key", "rsa"},
		} {
			code, out, errOut := runAttest(t, append([]string{cmd}, args...)...)
			if code != 2 || out != "" || !strings.Contains(errOut, "attest "+cmd+": ") {
				t.Errorf("%s, %s: exit %d, stdout %q, stderr %q", cmd, name, code, out, errOut)
			}
		}
	}
	code, out, _ := runAttest(t, "describe", "-h")
	if code != 0 || !strings.Contains(out, "usage: attest describe") || !strings.Contains(out, "unverified") ||
		!strings.Contains(out, "attest fetch") {
		t.Errorf("describe -h: exit %d, %q", code, out)
	}
	code, out, _ = runAttest(t, "health", "--help")
	if code != 0 || !strings.Contains(out, "usage: attest health") {
		t.Errorf("health --help: exit %d, %q", code, out)
	}
	code, out, _ = runAttest(t, "--help")
	if code != 0 || !strings.Contains(out, "  describe ") || !strings.Contains(out, "  health ") {
		t.Errorf("attest --help does not list describe and health: %q", out)
	}
}
