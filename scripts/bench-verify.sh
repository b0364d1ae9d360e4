#!/usr/bin/env bash
# Benchmarks the attestation verifier side by side with hf/nitrite and a single
# ECDSA P-384 verification, on the real AWS documents, in one `go test` run of
# the separate module test/verifybench. Each figure is the median of
# BENCH_COUNT runs (default 3) of BENCH_TIME each (default 2s).
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

Environment: BENCH_COUNT (default 3), BENCH_TIME (default 2s).
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
cd "$(dirname "$0")/../test/verifybench"

out="$(go test -run '^TestAllAgree$' -bench '^BenchmarkVerify$' -benchtime "$benchtime" -count "$count" .)"
printf '%s\n' "$out" | grep -E '^(Benchmark|ok|PASS|FAIL)' >&2

# median ns/op of one sub-benchmark, in µs with one decimal.
median_us() {
  printf '%s\n' "$out" | awk -v name="BenchmarkVerify/$1" '
    $1 ~ "^" name "(-[0-9]+)?$" { for (i = 2; i < NF; i++) if ($(i+1) == "ns/op") v[n++] = $i }
    END {
      if (n == 0) exit 1
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      m = (n % 2) ? v[int(n/2)] : (v[n/2-1] + v[n/2]) / 2
      printf "%.1f", m / 1000
    }'
}

warm="$(median_us warm)"
cold="$(median_us cold)"
nitrite="$(median_us nitrite)"
p384="$(median_us p384)"

echo "warm (chain cached):     ${warm} µs/op"
echo "cold:                    ${cold} µs/op"
echo "hf/nitrite:              ${nitrite} µs/op"
echo "single P-384 verify:     ${p384} µs/op"
awk -v w="$warm" -v c="$cold" -v n="$nitrite" -v p="$p384" 'BEGIN {
  printf "hf/nitrite / warm:       %.2fx (target >= 5)\n", n / w
  printf "warm / p384-verify:      %.2fx (target <= 1.2)\n", w / p
  printf "cold / hf/nitrite:       %.2fx (target <= 1)\n", c / n
}'
echo "verify: warm ${warm} µs/op, cold ${cold} µs/op, hf/nitrite ${nitrite} µs/op, p384-verify ${p384} µs/op"
