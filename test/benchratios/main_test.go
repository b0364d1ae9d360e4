package main

import (
	"strings"
	"testing"
)

func TestSummarise(t *testing.T) {
	in := `goos: linux
BenchmarkAttest-2   1063  1076012 ns/op  1.285 cpu-roundtrip/nsm  270413 ns-floor/op  1.276 roundtrip/nsm  12 B/op
BenchmarkAttest-2   1077  1224347 ns/op  1.198 cpu-roundtrip/nsm  309286 ns-floor/op  1.242 roundtrip/nsm  12 B/op
BenchmarkAttest-2   1003  1205349 ns/op  1.281 cpu-roundtrip/nsm  299807 ns-floor/op  1.300 roundtrip/nsm  12 B/op
BenchmarkOpen/32B-2 2587  444931 ns/op   1.299 roundtrip/inprocess
PASS
`
	var out strings.Builder
	if err := summarise(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"BenchmarkAttest-2            cpu-roundtrip/nsm        median 1.281  min 1.198  max 1.285  (3 runs)",
		"BenchmarkAttest-2            roundtrip/nsm            median 1.276  min 1.242  max 1.300  (3 runs)",
		"BenchmarkOpen/32B-2          roundtrip/inprocess      median 1.299  min 1.299  max 1.299  (1 runs)",
	}
	if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), strings.Join(want, "\n"))
	}
	if err := summarise(strings.NewReader("BenchmarkX-2 10 5 ns/op\n"), &out); err == nil {
		t.Error("no ratios: no error")
	}
	if err := summarise(strings.NewReader("BenchmarkX-2 10 x ns/op\n"), &out); err == nil {
		t.Error("a bad value: no error")
	}
	if median([]float64{1, 2, 3, 4}) != 2.5 {
		t.Error("median of an even count")
	}
}
