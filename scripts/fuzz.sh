#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each (default 10s).
# The seed corpora under testdata/fuzz/ also replay in plain `go test`.
set -euo pipefail

if [[ "${1:-}" == "--help" ]]; then
  echo "usage: FUZZTIME=30s $0"
  echo "Runs each Fuzz* target of every package for FUZZTIME."
  exit 0
fi

fuzztime="${FUZZTIME:-10s}"
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done
done
