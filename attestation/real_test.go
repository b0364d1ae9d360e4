package attestation

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const realDir = "../testdata/nitro/real"

// realFacts are what INDEX.md (written from two independent decoders) says
// about one real document.
type realFacts struct {
	name        string
	sha256      string
	size        int
	moduleID    string
	timestampMs int64
	pcrs        map[int][]byte
	aux         map[string]auxFact // public_key, user_data, nonce
	indefinite  bool
	leafFrom    time.Time
	leafTo      time.Time
}

type auxFact struct {
	null   bool
	length int
	prefix []byte // leading bytes given in INDEX.md (all of them when not elided)
}

var (
	reSection = regexp.MustCompile(`^### (\S+\.cbor)$`)
	reSHA     = regexp.MustCompile(`^\* SHA-256 of file: ` + "`([0-9a-f]{64})`" + ` \((\d+) bytes\)`)
	reModule  = regexp.MustCompile(`^\* module_id: ` + "`([^`]+)`")
	reTime    = regexp.MustCompile(`^\* timestamp: (\d+) ms`)
	rePCR     = regexp.MustCompile(`^\* PCR(\d+): ` + "`([0-9a-f]{96})`")
	reAux     = regexp.MustCompile(`(public_key|user_data|nonce): (null|bytes\[(\d+)\](?: ` + "`" + `([0-9a-f]*)(?:\.\.\.)?` + "`" + `)?)`)
	reShape   = regexp.MustCompile(`^\* payload map: (definite|indefinite-length) .* leaf valid (\S+) \.\. (\S+)$`)
)

func loadIndex(t testing.TB) []*realFacts {
	t.Helper()
	f, err := os.Open(filepath.Join(realDir, "INDEX.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*realFacts
	var cur *realFacts
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reSection.FindStringSubmatch(line); m != nil {
			cur = &realFacts{name: m[1], pcrs: map[int][]byte{}, aux: map[string]auxFact{}}
			out = append(out, cur)
			continue
		}
		if cur == nil {
			continue
		}
		if m := reSHA.FindStringSubmatch(line); m != nil {
			cur.sha256, cur.size = m[1], atoi(t, m[2])
		} else if m := reModule.FindStringSubmatch(line); m != nil {
			cur.moduleID = m[1]
		} else if m := reTime.FindStringSubmatch(line); m != nil {
			cur.timestampMs = int64(atoi(t, m[1]))
		} else if m := rePCR.FindStringSubmatch(line); m != nil {
			cur.pcrs[atoi(t, m[1])] = unhex(t, m[2])
		} else if strings.HasPrefix(line, "* public_key:") {
			for _, m := range reAux.FindAllStringSubmatch(line, -1) {
				if m[2] == "null" {
					cur.aux[m[1]] = auxFact{null: true}
				} else {
					cur.aux[m[1]] = auxFact{length: atoi(t, m[3]), prefix: unhex(t, m[4])}
				}
			}
		} else if m := reShape.FindStringSubmatch(line); m != nil {
			cur.indefinite = m[1] == "indefinite-length"
			cur.leafFrom, cur.leafTo = parseTime(t, m[2]), parseTime(t, m[3])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, r := range out {
		if r.sha256 == "" || r.moduleID == "" || r.timestampMs == 0 || len(r.pcrs) < 6 || len(r.aux) != 3 || r.leafTo.IsZero() {
			t.Fatalf("INDEX.md section %s incompletely parsed: %+v", r.name, r)
		}
	}
	return out
}

func atoi(t testing.TB, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseTime(t testing.TB, s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

func (r *realFacts) badsig() bool { return strings.Contains(r.name, "-badsig") }
func (r *realFacts) debug() bool  { return strings.Contains(r.name, "-debug") }
func (r *realFacts) timestamp() time.Time {
	return time.UnixMilli(r.timestampMs).UTC()
}

func readReal(t testing.TB, r *realFacts) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realDir, r.name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != r.sha256 || len(b) != r.size {
		t.Fatalf("%s does not match its INDEX.md hash and size", r.name)
	}
	return b
}

// realVerify runs o with a chain cache shared by all configs (they all use
// the AWS root).
func realVerify(t *testing.T, cache *chainCache, doc []byte, o Options) (*Document, error) {
	t.Helper()
	if o.Root != nil {
		t.Fatal("the shared cache is for the AWS root only")
	}
	c, err := o.compile()
	if err != nil {
		t.Fatal(err)
	}
	return c.verify(doc, cache, c.nonce)
}

// TestRealDocuments checks all 36 real AWS documents against INDEX.md: the 34
// genuine ones verify at their own timestamp with the embedded root, the two
// *-badsig* are rejected by the signature check, the 16 debug ones are
// rejected by the debug check unless allowed, and all are expired today.
func TestRealDocuments(t *testing.T) {
	facts := loadIndex(t)
	files, err := filepath.Glob(filepath.Join(realDir, "*.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 36 || len(files) != 36 {
		t.Fatalf("INDEX.md describes %d documents, %d files present, want 36", len(facts), len(files))
	}
	var genuine, badsig, debug, verifiedDebug atomic.Int32
	cache := newChainCache(ChainCacheSize)
	t.Run("documents", func(t *testing.T) {
		for _, r := range facts {
			t.Run(r.name, func(t *testing.T) {
				t.Parallel()
				testRealDocument(t, r, cache, &genuine, &badsig, &debug, &verifiedDebug)
			})
		}
	})
	if genuine.Load() != 34 || badsig.Load() != 2 || debug.Load() != 16 || verifiedDebug.Load() != 15 {
		t.Fatalf("genuine %d, badsig %d, debug %d (verified with AllowDebug %d); want 34, 2, 16 (15)",
			genuine.Load(), badsig.Load(), debug.Load(), verifiedDebug.Load())
	}
}

func testRealDocument(t *testing.T, r *realFacts, cache *chainCache, genuine, badsig, debug, verifiedDebug *atomic.Int32) {
	doc := readReal(t, r)
	ts := r.timestamp()
	verify := func(o Options) (*Document, error) { t.Helper(); return realVerify(t, cache, doc, o) }
	if r.debug() {
		debug.Add(1)
	}
	// Expired today, whatever else is wrong with it.
	d, err := verify(Options{AnyPCRs: true, AllowDebug: true})
	wantRejected(t, d, err, ErrValidity, "expired")

	if r.badsig() {
		badsig.Add(1)
		d, err := Verify(doc, Options{AtDocumentTime: true, AnyPCRs: true, AllowDebug: true})
		wantRejected(t, d, err, ErrSignature, "does not verify")
		d, err = verify(Options{AtDocumentTime: true, AnyPCRs: true})
		wantRejected(t, d, err, ErrSignature, "does not verify")
		return
	}
	genuine.Add(1)

	// Cold, at the document time, everything allowed: the content.
	own, err := Verify(doc, Options{AtDocumentTime: true, AnyPCRs: true, AllowDebug: true})
	if err != nil {
		t.Fatalf("genuine document rejected: %v", err)
	}
	checkFacts(t, r, doc, own)

	// Default policy at the document time: debug rejected, production accepted.
	d, err = verify(Options{AtDocumentTime: true, AnyPCRs: true})
	if r.debug() {
		wantRejected(t, d, err, ErrDebug, "debug-mode")
		d, err = verify(Options{Time: ts, AnyPCRs: true, AllowDebug: true})
		if err != nil || !d.Debug {
			t.Fatalf("debug document with AllowDebug: %v, %v", d, err)
		}
		verifiedDebug.Add(1)
		return
	}
	if err != nil {
		t.Fatalf("production document rejected: %v", err)
	}

	// Pinned to its INDEX.md PCR0/1/2/8: accepted; any other PCR0: rejected.
	policy := map[int][][]byte{}
	for _, i := range []int{0, 1, 2, 8} {
		policy[i] = [][]byte{r.pcrs[i]}
	}
	if _, err := verify(Options{Time: ts, PCRs: policy}); err != nil {
		t.Fatalf("pinned PCRs rejected: %v", err)
	}
	other := bytes.Clone(r.pcrs[0])
	other[47] ^= 1
	policy[0] = [][]byte{other}
	d, err = verify(Options{Time: ts, PCRs: policy})
	wantRejected(t, d, err, ErrPCRPolicy, "PCR0")
	policy[0] = [][]byte{other, r.pcrs[0]} // a rollout: either value
	if _, err := verify(Options{Time: ts, PCRs: policy}); err != nil {
		t.Fatalf("second allowed PCR0 value rejected: %v", err)
	}

	// Freshness: fine at its timestamp, too old 6 minutes later (the leaf is
	// still valid then), accepted then with NoMaxAge.
	later := ts.Add(6 * time.Minute)
	d, err = verify(Options{Time: later, AnyPCRs: true})
	wantRejected(t, d, err, ErrFreshness, "old")
	if _, err := verify(Options{Time: later, AnyPCRs: true, MaxAge: NoMaxAge}); err != nil {
		t.Fatalf("NoMaxAge: %v", err)
	}
	// Certificate windows: just after the leaf's end, just before its start.
	d, err = verify(Options{Time: r.leafTo.Add(time.Second), AnyPCRs: true, MaxAge: NoMaxAge})
	wantRejected(t, d, err, ErrValidity, "expired")
	d, err = verify(Options{Time: r.leafFrom.Add(-time.Second), AnyPCRs: true, MaxAge: NoMaxAge})
	wantRejected(t, d, err, ErrValidity, "not valid before")

	// Nonce: its own (if any) is accepted, another is not.
	if own.Nonce != nil {
		if _, err := verify(Options{Time: ts, AnyPCRs: true, Nonce: own.Nonce}); err != nil {
			t.Fatalf("own nonce rejected: %v", err)
		}
		d, err = verify(Options{Time: ts, AnyPCRs: true, Nonce: append(bytes.Clone(own.Nonce), 0)})
		wantRejected(t, d, err, ErrNonce, "differs")
	} else {
		d, err = verify(Options{Time: ts, AnyPCRs: true, Nonce: []byte("fresh")})
		wantRejected(t, d, err, ErrNonce, "no nonce")
	}

	// Tampering with a signed byte (inside PCR4) or the signature.
	pcr4 := bytes.Index(doc, r.pcrs[4])
	if pcr4 < 0 {
		t.Fatal("PCR4 not found in the document")
	}
	for _, off := range []int{pcr4, len(doc) - 1} {
		bad := bytes.Clone(doc)
		bad[off] ^= 1
		d, err = realVerify(t, cache, bad, Options{AtDocumentTime: true, AnyPCRs: true})
		wantRejected(t, d, err, ErrSignature, "does not verify")
	}
}

func checkFacts(t *testing.T, r *realFacts, doc []byte, d *Document) {
	t.Helper()
	if d.ModuleID != r.moduleID {
		t.Errorf("module_id %q, INDEX.md %q", d.ModuleID, r.moduleID)
	}
	if !d.Timestamp.Equal(r.timestamp()) || !d.VerifiedAt.Equal(r.timestamp()) {
		t.Errorf("timestamp %v (verified at %v), INDEX.md %v", d.Timestamp, d.VerifiedAt, r.timestamp())
	}
	if d.Digest != "SHA384" {
		t.Errorf("digest %q", d.Digest)
	}
	wantPCRs := 16
	if strings.Contains(r.name, "pcr16") {
		wantPCRs = 17
	}
	if len(d.PCRs) != wantPCRs {
		t.Errorf("%d PCRs, want %d", len(d.PCRs), wantPCRs)
	}
	for i, v := range r.pcrs {
		if !bytes.Equal(d.PCRs[i], v) {
			t.Errorf("PCR%d = %x, INDEX.md %x", i, d.PCRs[i], v)
		}
	}
	if d.Debug != r.debug() {
		t.Errorf("Debug = %v", d.Debug)
	}
	for name, got := range map[string][]byte{"public_key": d.PublicKey, "user_data": d.UserData, "nonce": d.Nonce} {
		want := r.aux[name]
		switch {
		case want.null && got != nil:
			t.Errorf("%s = %x, INDEX.md null", name, got)
		case !want.null && (got == nil || len(got) != want.length || !bytes.HasPrefix(got, want.prefix)):
			t.Errorf("%s = %x, INDEX.md %d bytes starting %x", name, got, want.length, want.prefix)
		}
	}
	if len(d.Chain) != 5 {
		t.Fatalf("chain of %d certificates", len(d.Chain))
	}
	if hex.EncodeToString(d.Chain[4].SHA256[:]) != AWSRootSHA256 {
		t.Errorf("chain does not end at the AWS root")
	}
	leaf := d.Chain[0]
	if !leaf.NotBefore.Equal(r.leafFrom) || !leaf.NotAfter.Equal(r.leafTo) || leaf.NotAfter.Sub(leaf.NotBefore) != 10803*time.Second {
		t.Errorf("leaf validity %v .. %v, INDEX.md %v .. %v", leaf.NotBefore, leaf.NotAfter, r.leafFrom, r.leafTo)
	}
	if !strings.HasPrefix(leaf.Subject, "CN="+r.moduleID+".") || leaf.Issuer != d.Chain[1].Subject {
		t.Errorf("leaf subject %q issuer %q", leaf.Subject, leaf.Issuer)
	}
	var p parsed
	if err := parse(doc, &p); err != nil {
		t.Fatal(err)
	}
	if (p.payload[0] == 0xbf) != r.indefinite {
		t.Errorf("payload map indefinite=%v, INDEX.md %v", p.payload[0] == 0xbf, r.indefinite)
	}
}

// TestRealTruncations: no strict prefix of a real document parses.
func TestRealTruncations(t *testing.T) {
	for _, name := range []string{"qos-20220706-prod.cbor", "bedrock-20250923-prod.cbor"} {
		doc, err := os.ReadFile(filepath.Join(realDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(doc) {
			var p parsed
			if err := parse(doc[:n], &p); err == nil {
				t.Fatalf("%s: prefix of %d bytes parsed", name, n)
			}
		}
	}
}

// TestRealTruncatedByOneByte: the error for a document cut by one byte counts
// the signature's data, not its head: 96 bytes needed, 95 left.
func TestRealTruncatedByOneByte(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(realDir, "qos-20220706-prod.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Verify(doc[:len(doc)-1], Options{AtDocumentTime: true, AnyPCRs: true})
	wantRejected(t, d, err, ErrCBOR, "signature: truncated byte string: needs 96 bytes, 95 left")
}
