#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s).
# The seed corpora under testdata/fuzz/ also replay in plain `go test`.
#
# FUZZMINIMIZETIME (default 2s) bounds how long Go minimises each input that
# finds new coverage: at Go's default (60s) a target that keeps finding paths
# stalls for seconds at a time (kmsfake's FuzzRequest: 69,767 executions in
# 25s, 9 new paths; at 2s, 156,583 and 47).
#
# A run that fails without writing a reproducer to testdata/fuzz/TARGET/ is the
# Go fuzz coordinator's deadline race at the end of -fuzztime
# (golang/go#75804, unfixed in go1.26): it is reported as a flake, not a
# failure. A failure with a reproducer fails the script.
set -euo pipefail

if [[ "${1:-}" == "--help" ]]; then
  echo "usage: FUZZTIME=30s [FUZZMINIMIZETIME=2s] $0 [PACKAGE...]"
  echo "Runs each Fuzz* target of the packages (default ./...) for FUZZTIME; fails on a written reproducer."
  exit 0
fi

fuzztime="${FUZZTIME:-10s}"
minimize="${FUZZMINIMIZETIME:-2s}"
cd "$(dirname "$0")/.."
# listing names the files of a corpus directory (none if it does not exist).
listing() { find "$1" -maxdepth 1 -type f 2>/dev/null | sort || true; }
passed=0 flaked=0 failed=()
for pkg in $(go list "${@:-./...}"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($fuzztime)"
    corpus="$dir/testdata/fuzz/$target"
    before=$(listing "$corpus")
    if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$pkg"; then
      passed=$((passed + 1))
    elif [[ "$(listing "$corpus")" != "$before" ]]; then
      failed+=("$pkg $target")
    else
      echo "fuzz.sh: $target failed without a reproducer: the fuzz coordinator's deadline race (golang/go#75804), not an input"
      flaked=$((flaked + 1))
    fi
  done
done
echo "fuzz.sh: ${passed} passed, ${#failed[@]} failed, ${flaked} flaked (golang/go#75804)"
for f in "${failed[@]}"; do echo "FAILED: $f (reproducer in its testdata/fuzz)"; done
[[ ${#failed[@]} -eq 0 ]]
