#!/usr/bin/env bash
# The attested TLS demo (make demo-tls): mock attestd, the attested-hello
# example server, and `attest tls-check` verifying it, in one command.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
usage: scripts/demo-tls.sh

Runs attested TLS end to end on this machine with the software NSM:

  1. creates a mock PKI and enclave state in a temporary directory
     (bin/nsm-mock init) with chosen PCR0/1/2 values;
  2. starts attestd on it (--nsm mock:DIR) with its local API on a unix socket;
  3. starts bin/attested-hello on 127.0.0.1 (a free port) in self-signed mode:
     its TLS key is made in its process, attestd binds it in a document, the
     certificate carries the document;
  4. runs bin/attest tls-check https://127.0.0.1:PORT, trusting the mock root
     and pinning PCR0/1/2, with --bind-session (the document is bound to the
     connection's TLS exporter), then once with a wrong PCR0 to show a refusal;
  5. stops both (SIGTERM) and removes every file it made.

Needs the binaries of `make build` in bin/.

Exit status: 0 when the server verified (and the wrong PCR0 was refused), 1
otherwise, 2 on a usage error.
EOF_USAGE
}

while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    *) echo "demo-tls: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$repo/bin
for b in attestd attest nsm-mock attested-hello; do
  [[ -x $bin/$b ]] || { echo "demo-tls: $bin/$b not found: run 'make build' first" >&2; exit 1; }
done

step() { printf '\n==> %s\n' "$*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/attestd-demo-tls.XXXXXXXX")
pids=()
cleanup() {
  local status=$?
  local p
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for LOG PATTERN PID NAME: until LOG has PATTERN, PID exits, or 60 s pass.
wait_for() {
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q "$2" "$1" && return 0
    if ! kill -0 "$3" 2>/dev/null; then
      echo "demo-tls: $4 exited during start-up:" >&2
      cat "$1" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "demo-tls: $4 not ready after 60s" >&2
  cat "$1" >&2
  return 1
}

pcr0=$(printf 'attestd demo: enclave image' | sha384sum | cut -d' ' -f1)
pcr1=$(printf 'attestd demo: kernel' | sha384sum | cut -d' ' -f1)
pcr2=$(printf 'attestd demo: application' | sha384sum | cut -d' ' -f1)

step "creating a mock PKI and enclave state in $tmp/mock"
"$bin/nsm-mock" init --dir "$tmp/mock" --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2"

step "starting attestd on the software NSM, local API on $tmp/local.sock"
"$bin/attestd" --nsm "mock:$tmp/mock" --listen "unix://$tmp/parent.sock" --local "unix://$tmp/local.sock" \
  2>"$tmp/attestd.log" &
pids+=($!)
wait_for "$tmp/attestd.log" 'msg="attestd ready"' "${pids[0]}" attestd

step "starting attested-hello on 127.0.0.1, a free port (self-signed mode)"
echo "\$ attested-hello --agent unix://$tmp/local.sock --listen 127.0.0.1:0"
"$bin/attested-hello" --agent "unix://$tmp/local.sock" --listen "127.0.0.1:0" 2>"$tmp/hello.log" &
pids+=($!)
wait_for "$tmp/hello.log" 'msg="attested-hello ready"' "${pids[1]}" attested-hello
port=$(sed -n 's/.*msg="attested-hello ready" listen=127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/hello.log")
[[ -n $port ]] || { echo "demo-tls: no port in attested-hello's log" >&2; exit 1; }
sed 's/^/  | /' "$tmp/hello.log"

check=("$bin/attest" tls-check "https://127.0.0.1:$port" --root "$tmp/mock/root.pem"
  --pcr "0=$pcr0" --pcr "1=$pcr1" --pcr "2=$pcr2" --bind-session)
step "verifying the server: handshake, document in the certificate, PCRs, session binding"
echo "\$ attest tls-check https://127.0.0.1:$port --root $tmp/mock/root.pem --pcr 0=$pcr0 --pcr 1=$pcr1 --pcr 2=$pcr2 --bind-session"
"${check[@]}"

wrong=$(printf 'another image' | sha384sum | cut -d' ' -f1)
step "the same check pinning another PCR0 must be refused (exit 1) before anything is sent"
status=0
"$bin/attest" tls-check "https://127.0.0.1:$port" --root "$tmp/mock/root.pem" \
  --pcr "0=$wrong" --pcr "1=$pcr1" --pcr "2=$pcr2" || status=$?
if ((status != 1)); then
  echo "demo-tls: a wrong PCR0 gave exit status $status, want 1" >&2
  exit 1
fi

step "stopping attested-hello and attestd (SIGTERM)"
for p in "${pids[@]}"; do
  kill -TERM "$p"
  wait "$p" || { echo "demo-tls: process $p exited with status $?" >&2; exit 1; }
done
pids=()
step "done: the attested server verified; every process and file of the demo is removed on exit"
