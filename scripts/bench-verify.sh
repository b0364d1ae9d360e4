#!/usr/bin/env bash
# Benchmarks the attestation verifier side by side with hf/nitrite and a single
# ECDSA P-384 verification, on the real AWS documents, in the separate module
# test/verifybench. Each run measures all four; each figure is the median of
# BENCH_COUNT runs (default 3) of BENCH_TIME per figure (default 2s).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/bench-verify.sh [--help]

Runs test/verifybench (its own Go module, so the main module never depends on
hf/nitrite) and prints one line per figure, the ratios, and a last line:
  verify: warm X µs/op, cold Y µs/op, hf/nitrite Z µs/op, p384-verify W µs/op

  warm         attestation.Verifier with the certificate chain cached
  cold         attestation.Verify, chain verified from scratch
  hf/nitrite   nitrite.Verify at the document time
  p384-verify  one ecdsa.VerifyASN1 with a P-384 key

Figures are medians over BENCH_COUNT runs (default 3) of BENCH_TIME per figure
(default 2s). BENCH_CLOCK=wall (default) uses wall-clock ns/op; BENCH_CLOCK=cpu
uses the process CPU time per op, which a shared, loaded machine distorts far
less. Both are printed.
EOF
}

if [[ $# -gt 0 ]]; then
  if [[ "$1" == "--help" || "$1" == "-h" ]]; then
    usage
    exit 0
  fi
  usage >&2
  exit 2
fi

count="${BENCH_COUNT:-3}"
benchtime="${BENCH_TIME:-2s}"
clock="${BENCH_CLOCK:-wall}"
case "$clock" in
  wall) unit="ns/op" ;;
  cpu) unit="cpu-ns/op" ;;
  *) echo "BENCH_CLOCK must be wall or cpu" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../test/verifybench"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/verifybench.test" .
# Every contender must accept every benchmarked document first.
"$tmp/verifybench.test" -test.run '^TestAllAgree$' >&2

# Each round runs all four sub-benchmarks back to back, so they share the
# machine's load; figures are medians over the rounds.
out=""
for ((i = 1; i <= count; i++)); do
  round="$("$tmp/verifybench.test" -test.run '^$' -test.bench '^BenchmarkVerify$' -test.benchtime "$benchtime" -test.benchmem)"
  printf '%s\n' "$round" | grep '^Benchmark' >&2
  out+="$round"$'\n'
done

# median of one sub-benchmark's metric ($2: ns/op or cpu-ns/op), in µs with
# one decimal.
median_us() {
  printf '%s\n' "$out" | awk -v name="BenchmarkVerify/$1" -v unit="$2" '
    $1 ~ "^" name "(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == unit) v[n++] = $i }
    END {
      if (n == 0) exit 1
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      m = (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
      printf "%.1f", m / 1000
    }'
}

declare -A fig
for b in warm cold nitrite p384; do
  for u in ns/op cpu-ns/op; do
    fig[$b,$u]="$(median_us "$b" "$u")"
  done
done
line() { printf '%-24s %10s µs/op   (cpu %s µs/op)\n' "$1:" "${fig[$2,ns/op]}" "${fig[$2,cpu-ns/op]}"; }
line "warm (chain cached)" warm
line "cold" cold
line "hf/nitrite" nitrite
line "single P-384 verify" p384

warm="${fig[warm,$unit]}"
cold="${fig[cold,$unit]}"
nitrite="${fig[nitrite,$unit]}"
p384="${fig[p384,$unit]}"
awk -v w="$warm" -v c="$cold" -v n="$nitrite" -v p="$p384" -v clock="$clock" 'BEGIN {
  printf "hf/nitrite / warm:       %.2fx (target >= 5, %s clock)\n", n / w, clock
  printf "warm / p384-verify:      %.2fx (target <= 1.2, %s clock)\n", w / p, clock
  printf "cold / hf/nitrite:       %.2fx (target <= 1, %s clock)\n", c / n, clock
}'
echo "verify: warm ${warm} µs/op, cold ${cold} µs/op, hf/nitrite ${nitrite} µs/op, p384-verify ${p384} µs/op"
