#!/usr/bin/env bash
# The attestd demo (make demo): a mock enclave, attestd serving it, and
# `attest fetch` verifying a fresh document, in one command.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/demo.sh [--software]

Runs attestd against a mock NSM and fetches a verified attestation document:

  1. creates a mock PKI and enclave state in a temporary directory
     (bin/nsm-mock init), with chosen PCR0/1/2 values;
  2. starts attestd on a unix socket, with /dev/nsm answered by the FUSE mock
     device (scripts/nsm-run.sh: root, /dev/fuse and unshare needed) or, where
     those are missing or with --software, with the in-process software NSM
     (attestd --nsm mock:DIR); it says which;
  3. runs bin/attest fetch with a random nonce, trusting the mock root and
     pinning PCR0, PCR1 and PCR2, and prints the verified document;
  4. stops attestd (SIGTERM) and removes every process, mount and file it made.

Needs the binaries of `make build` in bin/.

  --software   use the in-process software NSM even where FUSE is available
  -h, --help   this help

Exit status: 0 when the document verified, 1 otherwise, 2 on a usage error.
EOF
}

software=""
while (($#)); do
  case $1 in
    --software) software=yes; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$repo/bin
for b in attestd attest nsm-mock; do
  [[ -x $bin/$b ]] || { echo "demo: $bin/$b not found: run 'make build' first" >&2; exit 1; }
done

step() { printf '\n==> %s\n' "$*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attestd-demo.XXXXXXXX")
pid=""
cleanup() {
  local status=$?
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The mock enclave's image measurements: any 48-byte values will do; these
# stand for an image, a kernel and an application.
pcr0=$(printf 'attestd demo: enclave image' | sha384sum | cut -d' ' -f1)
pcr1=$(printf 'attestd demo: kernel' | sha384sum | cut -d' ' -f1)
pcr2=$(printf 'attestd demo: application' | sha384sum | cut -d' ' -f1)

step "creating a mock PKI and enclave state in $tmp/mock"
"$bin/nsm-mock" init --dir "$tmp/mock" --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2"

# FUSE needs root, /dev/fuse and unshare; otherwise the software NSM.
why=""
if [[ -n $software ]]; then
  why="--software given"
elif [[ $(id -u) -ne 0 ]]; then
  why="not root"
elif [[ ! -e /dev/fuse ]]; then
  why="no /dev/fuse"
elif ! command -v unshare >/dev/null; then
  why="no unshare"
fi

parent=unix://$tmp/parent.sock
local_api=unix://$tmp/local.sock
# This machine is not an enclave, so the gates that read the host are relaxed:
# its hwrng is not the NSM's, and its kernel and clock source need not be an
# enclave's (at least 5.17.12, kvm-clock). --nsm mock:DIR relaxes them by
# itself, --insecure-dev on the FUSE device; attestd logs one INSECURE warning.
# The not-debug gate stays on: the mock enclave's PCR0 is a production-like
# image measurement.
attestd_flags=(--listen "$parent" --local "$local_api")

if [[ -z $why ]]; then
  step "starting attestd on the FUSE mock device: /dev/nsm in a private mount namespace, real ioctls answered by nsm-mock serve"
  "$repo/scripts/nsm-run.sh" --dir "$tmp/mock" --nsm-mock "$bin/nsm-mock" -- \
    "$bin/attestd" --nsm /dev/nsm --insecure-dev "${attestd_flags[@]}" 2>"$tmp/attestd.log" &
else
  step "starting attestd on the in-process software NSM ($why; the FUSE device needs root, /dev/fuse and unshare)"
  "$bin/attestd" --nsm "mock:$tmp/mock" "${attestd_flags[@]}" 2>"$tmp/attestd.log" &
fi
pid=$!

for ((i = 0; i < 600; i++)); do
  grep -q 'msg="attestd ready"' "$tmp/attestd.log" && break
  if ! kill -0 "$pid" 2>/dev/null; then
    pid=""
    echo "demo: attestd exited during start-up:" >&2
    cat "$tmp/attestd.log" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q 'msg="attestd ready"' "$tmp/attestd.log" || { echo "demo: attestd not ready after 60s" >&2; cat "$tmp/attestd.log" >&2; exit 1; }
echo "attestd log (start-up: platform gates, NSM and PCR0, entropy, keys, listeners):"
sed 's/^/  | /' "$tmp/attestd.log"

fetch=("$bin/attest" fetch --addr "$parent" --root "$tmp/mock/root.pem"
  --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2" --key hpke)
step "fetching a document with a fresh random nonce, pinning PCR0/1/2 and trusting the mock root"
echo "\$ attest fetch --addr $parent --root $tmp/mock/root.pem --pcr 0=$pcr0 --pcr 1=$pcr1 --pcr 2=$pcr2 --key hpke"
"${fetch[@]}"

step "stopping attestd (SIGTERM: it drains requests in flight and closes the NSM)"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
tail -n 2 "$tmp/attestd.log" | sed 's/^/  | /'
if ((status != 0)); then
  echo "demo: attestd exited with status $status" >&2
  exit 1
fi
step "done: the document verified; every process, mount and file of the demo is removed on exit"
