#!/usr/bin/env bash
# Runs the benchmarks behind the issues' speed targets and prints, for each ratio they report, the
# median, minimum and maximum over BENCH_COUNT runs (default 6): the figures the notes quote.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/bench-ratios.sh [--help]

Runs, with -count BENCH_COUNT (default 6), each benchmark's arms interleaved in one run:
  agent        BenchmarkAttest, BenchmarkOpen, BenchmarkKMSOpen, BenchmarkKMSRecipient
               (round trips over the local socket against the NSM or the bare crypto, and a
               bare-socket floor)
  attestedtls  BenchmarkHandshake (attested TLS 1.3 warm and cold against plain),
               BenchmarkNonce (the endpoint's fresh document against the NSM)
  cmd/attest   BenchmarkSealVsFetch (attest seal against attest fetch)
and prints one line per benchmark and ratio (test/benchratios):
  BenchmarkAttest-2   roundtrip/nsm   median 1.208  min 1.17  max 1.23  (6 runs)
USAGE
}

if [[ $# -gt 0 ]]; then
  if [[ "$1" == "--help" || "$1" == "-h" ]]; then
    usage
    exit 0
  fi
  usage >&2
  exit 2
fi

count="${BENCH_COUNT:-6}"
cd "$(dirname "$0")/.."
{
  go test -run '^$' -bench 'BenchmarkAttest$|BenchmarkOpen|BenchmarkKMSOpen|BenchmarkKMSRecipient' -count "$count" ./agent
  go test -run '^$' -bench 'BenchmarkHandshake|BenchmarkNonce' -count "$count" ./attestedtls
  go test -run '^$' -bench 'BenchmarkSealVsFetch' -count "$count" ./cmd/attest
} | go run ./test/benchratios
