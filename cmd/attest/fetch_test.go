package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/attestd/attestd/agent"
	"github.com/attestd/attestd/attestation"
	"github.com/attestd/attestd/internal/mockenclave"
	"github.com/attestd/attestd/keys"
	"github.com/attestd/attestd/mocknsm"
	"github.com/attestd/attestd/relyingparty"
	"github.com/attestd/attestd/vsockrpc"
)

// testAgent is attestd in-process on the software NSM.
type testAgent struct {
	agent *agent.Agent
	addr  string // parent API
	root  string // mock root.pem
	pcrs  map[uint16][]byte
	mock  *mocknsm.NSM // its software NSM, for fault injection
}

// startFetchAgent serves the agent's parent API on a unix socket; wrap, if
// set, may corrupt what the agent returns.
func startFetchAgent(t testing.TB, wrap func(vsockrpc.ParentService) vsockrpc.ParentService) *testAgent {
	t.Helper()
	enc := mockenclave.New(t, mocknsm.Config{})
	a, err := agent.New(context.Background(), agent.Config{
		NSM: enc.Session, Entropy: mockenclave.Entropy(t), GenerateKeys: mockenclave.Keys,
		Mock: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	var svc vsockrpc.ParentService = a
	if wrap != nil {
		svc = wrap(a)
	}
	addr := mockenclave.Serve(t, &vsockrpc.Server{API: vsockrpc.ParentAPI(svc)}, "p")
	d, err := a.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &testAgent{agent: a, addr: addr, root: filepath.Join(enc.Dir, "root.pem"), pcrs: d.PCRs, mock: enc.Mock}
}

func fetch(t *testing.T, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"fetch"}, args...), &out, &errb)
	if code != want {
		t.Fatalf("attest fetch %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	if want != 0 && strings.Count(errb.String(), "\n") < 1 {
		t.Fatalf("no error message: %q", errb.String())
	}
	return out.String(), errb.String()
}

func TestFetchVerifiesBothKeys(t *testing.T) {
	ta := startFetchAgent(t, nil)
	pcrArgs := []string{}
	for _, i := range []uint16{0, 1, 2, 8} {
		pcrArgs = append(pcrArgs, "--pcr", strconv.Itoa(int(i))+"="+hex.EncodeToString(ta.pcrs[i]))
	}
	for _, c := range []struct{ key, want string }{
		{"hpke", "key          hpke: HPKE KEM 0x647a (MLKEM768-X25519), 1216 bytes; binding checked"},
		{"rsa", "key          rsa: RSA-2048 (SPKI DER), 294 bytes; binding checked (the document carries it whole)"},
	} {
		out, _ := fetch(t, 0, append([]string{"--addr", ta.addr, "--root", ta.root, "--key", c.key}, pcrArgs...)...)
		for _, w := range []string{"valid attestation document", c.want, "nonce        32 bytes ",
			"PCR0         " + hex.EncodeToString(ta.pcrs[0])} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", c.key, w, out)
			}
		}
	}
}

func TestFetchNonceJSONAndOut(t *testing.T) {
	ta := startFetchAgent(t, nil)
	outFile, keyFile := filepath.Join(t.TempDir(), "doc.cbor"), filepath.Join(t.TempDir(), "key.der")
	out, _ := fetch(t, 0, "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--nonce", "00c0ffee", "--json", "--out", outFile, "--out-key", keyFile, "--key", "rsa")
	var j struct {
		Document struct {
			Nonce     hexJSON `json:"nonce"`
			PublicKey hexJSON `json:"public_key"`
		} `json:"document"`
		Key struct {
			Name      string  `json:"name"`
			Binding   string  `json:"binding"`
			PublicKey hexJSON `json:"public_key"`
		} `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if hex.EncodeToString(j.Document.Nonce) != "00c0ffee" || j.Key.Name != "rsa" || j.Key.Binding != "whole" ||
		!bytes.Equal(j.Key.PublicKey, j.Document.PublicKey) {
		t.Errorf("json = %s", out)
	}
	// --out holds the raw document: it verifies with the same nonce.
	raw, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := os.ReadFile(ta.root)
	root, _ := attestation.ParseRootPEM(rootPEM)
	if _, err := attestation.Verify(raw, attestation.Options{Root: root, AnyPCRs: true, Nonce: []byte{0, 0xc0, 0xff, 0xee}}); err != nil {
		t.Fatal(err)
	}
	// --out-key holds the full key the JSON reports and the document binds.
	if full, err := os.ReadFile(keyFile); err != nil || !bytes.Equal(full, j.Key.PublicKey) {
		t.Errorf("--out-key: %v, %d bytes", err, len(full))
	}
	// The HPKE key's file holds the full key, not the document's 65-byte binding.
	fetch(t, 0, "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--out", outFile, "--out-key", keyFile, "--key", "hpke")
	raw, _ = os.ReadFile(outFile)
	full, _ := os.ReadFile(keyFile)
	if _, err := relyingparty.Check(keys.HPKE, raw, full, attestation.Options{Root: root, AnyPCRs: true}); err != nil || len(full) != 1216 {
		t.Errorf("hpke --out/--out-key do not check together (%d-byte key): %v", len(full), err)
	}
	// Random nonces differ between runs.
	out1, _ := fetch(t, 0, "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--nonce", "random")
	out2, _ := fetch(t, 0, "--addr", ta.addr, "--root", ta.root, "--any-pcrs")
	if nonceLine(out1) == nonceLine(out2) || !strings.Contains(nonceLine(out1), "32 bytes") {
		t.Errorf("random nonces: %q, %q", nonceLine(out1), nonceLine(out2))
	}
}

func nonceLine(out string) string {
	for l := range strings.Lines(out) {
		if strings.HasPrefix(l, "nonce ") {
			return l
		}
	}
	return ""
}

func TestFetchRejects(t *testing.T) {
	ta := startFetchAgent(t, nil)
	zero := strings.Repeat("00", 48)
	for _, c := range []struct {
		name, substr string
		args         []string
	}{
		{"wrong PCR0", "PCR", []string{"--root", ta.root, "--pcr", "0=" + zero}},
		{"AWS root", "chain", []string{"--any-pcrs"}},
	} {
		_, errOut := fetch(t, 1, append([]string{"--addr", ta.addr}, c.args...)...)
		if !strings.Contains(errOut, c.substr) {
			t.Errorf("%s: stderr %q lacks %q", c.name, errOut, c.substr)
		}
	}
	// Nobody listening.
	fetch(t, 1, "--addr", "unix://"+filepath.Join(t.TempDir(), "none"), "--root", ta.root, "--any-pcrs", "--timeout", "2s")
}

func TestFetchUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"no addr":       {"--any-pcrs"},
		"bad addr":      {"--addr", "http://x", "--any-pcrs"},
		"no PCR policy": {"--addr", "unix:///x"},
		"bad nonce":     {"--addr", "unix:///x", "--any-pcrs", "--nonce", "xyz"},
		"long nonce":    {"--addr", "unix:///x", "--any-pcrs", "--nonce", strings.Repeat("ab", 513)},
		"bad key":       {"--addr", "unix:///x", "--any-pcrs", "--key", "ed25519"},
		"stray arg":     {"--addr", "unix:///x", "--any-pcrs", "extra"},
		"zero timeout":  {"--addr", "unix:///x", "--any-pcrs", "--timeout", "0s"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"fetch"}, args...), &out, &errb); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"fetch", "-h"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "usage: attest fetch") || errb.Len() != 0 {
		t.Errorf("-h: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}

// lyingAgent returns another key beside the document, or replays an old
// document: fetch must reject both.
type lyingAgent struct {
	vsockrpc.ParentService
	swapKey bool
	mu      sync.Mutex
	replay  *vsockrpc.AttestResult
}

func (l *lyingAgent) Attest(ctx context.Context, req vsockrpc.AttestRequest) (*vsockrpc.AttestResult, error) {
	if l.swapKey {
		res, err := l.ParentService.Attest(ctx, req)
		if err != nil {
			return nil, err
		}
		other := req.Key
		if other == keys.HPKE {
			other = keys.RSA
		} else {
			other = keys.HPKE
		}
		d, _ := l.Describe(ctx)
		for _, k := range d.Keys {
			if k.Name == other {
				res.PublicKey = k.PublicKey
			}
		}
		return res, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.replay == nil {
		res, err := l.ParentService.Attest(ctx, vsockrpc.AttestRequest{Nonce: []byte("the first nonce"), Key: req.Key})
		if err != nil {
			return nil, err
		}
		l.replay = res
	}
	return l.replay, nil
}

func TestFetchRejectsLyingAgent(t *testing.T) {
	swap := startFetchAgent(t, func(s vsockrpc.ParentService) vsockrpc.ParentService {
		return &lyingAgent{ParentService: s, swapKey: true}
	})
	for _, key := range []string{"hpke", "rsa"} {
		_, errOut := fetch(t, 1, "--addr", swap.addr, "--root", swap.root, "--any-pcrs", "--key", key)
		if !strings.Contains(errOut, "does not bind the key") {
			t.Errorf("%s with a swapped key: %q", key, errOut)
		}
	}
	replay := startFetchAgent(t, func(s vsockrpc.ParentService) vsockrpc.ParentService { return &lyingAgent{ParentService: s} })
	_, errOut := fetch(t, 1, "--addr", replay.addr, "--root", replay.root, "--any-pcrs")
	if !strings.Contains(errOut, "nonce") {
		t.Errorf("replayed document: %q", errOut)
	}
}

func TestFetchTimeout(t *testing.T) {
	// A listener that never answers: fetch gives up after --timeout.
	dir, err := os.MkdirTemp("", "fetch")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := vsockrpc.Listen("unix://" + filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, errOut := fetch(t, 1, "--addr", "unix://"+filepath.Join(dir, "s"), "--any-pcrs", "--timeout", "300ms")
	if !strings.Contains(errOut, "deadline") || time.Since(start) > time.Minute {
		t.Errorf("stderr %q", errOut)
	}
}

// TestVerifyPublicKey (item 12): attest verify --public-key checks that the
// document binds the full key fetch returned, for both keys, whether the key
// file is hex (as --json prints it), raw or PEM, the key named or inferred.
func TestVerifyPublicKey(t *testing.T) {
	ta := startFetchAgent(t, nil)
	dir := t.TempDir()
	docs, fullKeys := map[string]string{}, map[string][]byte{}
	for _, name := range []string{keys.HPKE, keys.RSA} {
		doc := filepath.Join(dir, name+".cbor")
		out, _ := fetch(t, 0, "--addr", ta.addr, "--root", ta.root, "--any-pcrs", "--key", name, "--json", "--out", doc)
		var j struct {
			Key struct {
				PublicKey hexJSON `json:"public_key"`
			} `json:"key"`
		}
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatal(err)
		}
		docs[name], fullKeys[name] = doc, j.Key.PublicKey
	}
	write := func(name string, b []byte) string { return writeTestFile(t, dir, name, b) }
	verify := []string{"verify", "--root", ta.root, "--any-pcrs"}
	for _, name := range []string{keys.HPKE, keys.RSA} {
		other := keys.RSA
		if name == keys.RSA {
			other = keys.HPKE
		}
		full := fullKeys[name]
		for form, file := range map[string]string{
			"hex":  write(name+".hex", []byte(hex.EncodeToString(full)+"\n")),
			"raw":  write(name+".raw", full),
			"b64":  write(name+".b64", []byte(base64.StdEncoding.EncodeToString(full))),
			"PEM":  write(name+".pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: full})),
			"0x":   write(name+".0x", []byte("0x"+hex.EncodeToString(full))),
			"none": "",
		} {
			if file == "" {
				continue
			}
			wantExit(t, 0, "", append(verify, "--public-key", file, docs[name])...)
			wantExit(t, 0, "", append(verify, "--public-key", file, "--key", name, docs[name])...)
			if form == "hex" {
				// The other agent key is not what this document binds.
				wantExit(t, 1, "key-binding", append(verify, "--public-key", write(other+".hex", []byte(hex.EncodeToString(fullKeys[other]))), docs[name])...)
				wantExit(t, 1, "does not bind", append(verify, "--public-key", file, "--key", other, docs[name])...)
			}
		}
	}
	// A key with one bit flipped.
	bad := append([]byte{}, fullKeys[keys.HPKE]...)
	bad[len(bad)-1] ^= 1
	wantExit(t, 1, "does not bind", append(verify, "--public-key", write("bad.hex", []byte(hex.EncodeToString(bad))), docs[keys.HPKE])...)
	wantExit(t, 1, "not valid hex or base64", append(verify, "--public-key", write("junk", []byte("not a key!")), docs[keys.HPKE])...)
	// A document without public_key.
	wantExit(t, 1, "the document has no public_key", "verify", "--at-doc-time", "--any-pcrs", "--public-key", write("k.hex", []byte("00")),
		realDocs+"evervault-20221013-prod.cbor")
	wantExit(t, 2, "--key \"ed25519\"", append(verify, "--public-key", write("k2.hex", []byte("00")), "--key", "ed25519", docs[keys.HPKE])...)
}
