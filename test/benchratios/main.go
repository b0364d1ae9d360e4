// Command benchratios summarises the ratio metrics of `go test -bench` output read from standard
// input: for each benchmark, every reported metric whose unit is a ratio (it has a "/" and is not
// a per-operation figure such as ns/op, B/op or ns-nsm/op), with its median, minimum and maximum
// over the runs (-count). The project's benchmarks report their arms interleaved in one run and
// their ratios as metrics (roundtrip/nsm, roundtrip/floor, ...); a median over several runs is what
// the notes quote. scripts/bench-ratios.sh runs the benchmarks and pipes them here.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Println("usage: go test -run '^$' -bench . -count 6 ./pkg | benchratios")
		if os.Args[1] == "--help" || os.Args[1] == "-h" {
			return
		}
		os.Exit(2)
	}
	if err := summarise(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratios:", err)
		os.Exit(1)
	}
}

// summarise reads benchmark lines from r and writes one line per benchmark and ratio to w, in the
// order they first appear.
func summarise(r io.Reader, w io.Writer) error {
	type key struct{ bench, metric string }
	var order []key
	values := map[key][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		// Name, iterations, then value-unit pairs.
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return fmt.Errorf("%s: value %q: %v", f[0], f[i], err)
			}
			if !isRatio(f[i+1]) {
				continue
			}
			k := key{f[0], f[i+1]}
			if _, seen := values[k]; !seen {
				order = append(order, k)
			}
			values[k] = append(values[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(order) == 0 {
		return fmt.Errorf("no ratio metrics in the input")
	}
	for _, k := range order {
		v := values[k]
		slices.Sort(v)
		fmt.Fprintf(w, "%-28s %-24s median %.3f  min %.3f  max %.3f  (%d runs)\n", k.bench, k.metric, median(v), v[0], v[len(v)-1], len(v))
	}
	return nil
}

// isRatio reports whether unit names a ratio of two measurements rather than a per-operation
// figure.
func isRatio(unit string) bool {
	a, b, ok := strings.Cut(unit, "/")
	return ok && b != "op" && !strings.HasPrefix(a, "ns") && !strings.HasPrefix(b, "op")
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
