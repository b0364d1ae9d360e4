#!/usr/bin/env bash
# Tests nsm-run.sh's run_child: the script exits with the program's own status
# when a TERM is forwarded to it, whenever the TERM arrives, including when the
# program exits at once and is reaped while the signal interrupts `wait` (the
# race behind "demo: attestd exited with status 143"). Needs no root: it
# sources the functions and drives them as in_namespace does.
# Usage: scripts/nsm-run_test.sh [ROUNDS] (default 10). Exit 0 when all pass.
# shellcheck disable=SC2016 # the programs below are perl, in single quotes on purpose
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rounds=${1:-10}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsm-run-test.XXXXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0

# drive runs PROGRAM under run_child with TERM forwarded, like in_namespace.
drive() {
  # shellcheck disable=SC1090 # sourced at run time, from NSM_RUN
  source "$NSM_RUN"
  # shellcheck disable=SC2034 # read by run_child and forward
  keep="" child="" status=""
  trap 'forward TERM 15' TERM
  run_child "$@"
  exit "$status"
}

# The programs: each writes $tmp/ready once its TERM handler is in place.
# perl's sleep returns on a signal, so "exit0" exits the moment TERM arrives.
exit0='$SIG{TERM} = sub { exit 0 }; open my $f, ">", $ENV{READY}; close $f; sleep 100; exit 9'
exit3='$SIG{TERM} = sub { exit 3 }; open my $f, ">", $ENV{READY}; close $f; sleep 100; exit 9'
late5='$SIG{TERM} = sub { select undef, undef, undef, 0.05; exit 5 }; open my $f, ">", $ENV{READY}; close $f; sleep 100; exit 9'
default143='open my $f, ">", $ENV{READY}; close $f; sleep 100; exit 9'

# check NAME WANT DELAY PERL: TERM DELAY seconds after the program is ready.
check() {
  local name=$1 want=$2 delay=$3 prog=$4 got=0
  rm -f "$tmp/ready"
  NSM_RUN=$here/nsm-run.sh READY=$tmp/ready bash -c "$(declare -f drive); drive \"\$@\"" drive perl -e "$prog" &
  local pid=$!
  while [[ ! -e $tmp/ready ]]; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.001
  done
  [[ $delay == 0 ]] || sleep "$delay"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || got=$?
  if [[ $got != "$want" ]]; then
    echo "FAIL: $name (TERM after ${delay}s): exit $got, want $want" >&2
    failures=$((failures + 1))
  fi
}

for ((i = 0; i < rounds; i++)); do
  for delay in 0 0.001 0.01; do
    check "program exits 0 on TERM" 0 "$delay" "$exit0"
    check "program exits 3 on TERM" 3 "$delay" "$exit3"
  done
  check "program exits 5 a little after TERM" 5 0 "$late5"
done
check "program killed by TERM" 143 0 "$default143"

# Without a TERM, the program's status as it is.
NSM_RUN=$here/nsm-run.sh READY=/dev/null bash -c "$(declare -f drive); drive \"\$@\"" drive sh -c 'exit 7' && got=0 || got=$?
[[ $got == 7 ]] || { echo "FAIL: exit 7 without a signal: exit $got" >&2; failures=$((failures + 1)); }

if ((failures)); then
  echo "nsm-run_test: $failures failed" >&2
  exit 1
fi
echo "nsm-run_test: ok"
