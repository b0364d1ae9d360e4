package attestation

import (
	"strings"
	"testing"
)

// Benchmarks over the genuine real documents (round robin). The comparison
// with hf/nitrite and a bare P-384 verification lives in the separate module
// test/verifybench (scripts/bench-verify.sh).

func genuineDocs(b *testing.B) [][]byte {
	var docs [][]byte
	for name, doc := range realDocuments(b) {
		if !strings.Contains(name, "badsig") {
			docs = append(docs, doc)
		}
	}
	return docs
}

func BenchmarkParse(b *testing.B) {
	docs := genuineDocs(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var p parsed
		if err := parse(docs[i%len(docs)], &p); err != nil {
			b.Fatal(err)
		}
	}
}

var benchOptions = Options{AtDocumentTime: true, AnyPCRs: true, AllowDebug: true}

func BenchmarkVerifyCold(b *testing.B) {
	docs := genuineDocs(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Verify(docs[i%len(docs)], benchOptions); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyWarm(b *testing.B) {
	docs := genuineDocs(b)
	v, err := NewVerifier(benchOptions)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range docs {
		if _, err := v.Verify(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := v.Verify(docs[i%len(docs)]); err != nil {
			b.Fatal(err)
		}
	}
}
