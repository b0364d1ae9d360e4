#!/usr/bin/env bash
# Starts an enclave from an EIF with nitro-cli run-enclave, waits for attestd to answer on
# vsock, then fetches and verifies an attestation document with `attest fetch`, pinning the
# PCRs of that very EIF. Runs on a Nitro Enclaves parent instance.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/run-enclave.sh --eif FILE.eif [--pcrs-from POLICY] [--cid N] [--memory MIB]
                              [--cpus N] [--port PORT] [--wait SECONDS] [--debug-mode]
                              [--terminate] [-- ATTEST-FETCH-FLAGS...]

Runs the EIF with nitro-cli run-enclave and, once attestd answers on vsock://CID:PORT,
runs attest fetch against it. The expected PCRs come from --pcrs-from (a policy file
written by build-eif.sh / attest eif describe --policy, or an EIF), default: the EIF itself.

  --eif FILE        the enclave image (required)
  --pcrs-from P     PCR policy file or EIF to verify the document against (default: --eif)
  --cid N           enclave CID (default: nitro-cli picks one)
  --memory MIB      enclave memory in MiB (default 1024)
  --cpus N          enclave vCPUs (default 2)
  --port PORT       attestd's parent API port (default 5005)
  --wait SECONDS    how long to wait for attestd to answer (default 60)
  --debug-mode      run in debug mode (console available; PCR0-2 read as zeros). attestd
                    refuses to start in debug mode unless the image's entry point passes
                    --insecure-skip-debug-check; the console (nitro-cli console) shows why it
                    stopped. A debug document is checked with --allow-debug --any-pcrs: it
                    proves nothing
  --terminate       terminate the enclave after the fetch
  -h, --help        this help
Flags after -- go to attest fetch (e.g. --key rsa --json --out doc.cbor).

Environment: NITRO_CLI names nitro-cli; ATTEST the attest binary (default bin/attest).
Exit status: attest fetch's status (0 verified, 1 rejected); 1 if a step fails; 2 usage error.
EOF
}

die() { echo "run-enclave: $*" >&2; exit 1; }
usage_error() { echo "run-enclave: $*" >&2; echo "run 'scripts/run-enclave.sh --help' for usage" >&2; exit 2; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

root="$(cd "$(dirname "$0")/.." && pwd)"
eif="" pcrs_from="" cid="" memory=1024 cpus=2 port=5005 wait_s=60 debug=false terminate=false
fetch_args=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --debug-mode) debug=true; shift ;;
    --terminate) terminate=true; shift ;;
    --) shift; fetch_args=("$@"); break ;;
    --eif | --pcrs-from | --cid | --memory | --cpus | --port | --wait)
      if (($# < 2)) || [[ -z "$2" ]]; then usage_error "$1 needs a value"; fi
      case "$1" in
        --eif) eif="$2" ;;
        --pcrs-from) pcrs_from="$2" ;;
        --cid) cid="$2" ;;
        --memory) memory="$2" ;;
        --cpus) cpus="$2" ;;
        --port) port="$2" ;;
        --wait) wait_s="$2" ;;
      esac
      shift 2
      ;;
    *) usage_error "unknown argument $1" ;;
  esac
done
[[ -n "$eif" ]] || usage_error "--eif is required"
[[ -r "$eif" ]] || usage_error "cannot read $eif"
pcrs_from="${pcrs_from:-$eif}"
[[ -r "$pcrs_from" ]] || usage_error "cannot read $pcrs_from"
for v in memory cpus port wait_s; do
  is_uint "${!v}" || usage_error "--${v%_s} must be a number, got ${!v}"
done
[[ -z "$cid" ]] || is_uint "$cid" || usage_error "--cid must be a number, got $cid"

nitro_cli="${NITRO_CLI:-nitro-cli}"
command -v "$nitro_cli" >/dev/null || die "$nitro_cli is not installed (run this on a Nitro Enclaves parent instance)"
attest="${ATTEST:-$root/bin/attest}"
[[ -x "$attest" ]] || die "no attest binary at $attest (run make build, or set ATTEST)"

run_args=(run-enclave --eif-path "$eif" --memory "$memory" --cpu-count "$cpus")
[[ -z "$cid" ]] || run_args+=(--enclave-cid "$cid")
! $debug || run_args+=(--debug-mode)
echo "run-enclave: $nitro_cli ${run_args[*]}" >&2
out="$("$nitro_cli" "${run_args[@]}")" || die "nitro-cli run-enclave failed"
printf '%s\n' "$out" >&2
# nitro-cli prints JSON: {"EnclaveName": ..., "EnclaveID": "...", "EnclaveCID": 16, ...}
cid="$(printf '%s\n' "$out" | sed -n 's/.*"EnclaveCID": *\([0-9][0-9]*\).*/\1/p' | head -n1)"
enclave_id="$(printf '%s\n' "$out" | sed -n 's/.*"EnclaveID": *"\([^"]*\)".*/\1/p' | head -n1)"
[[ -n "$cid" ]] || die "could not read EnclaveCID from nitro-cli's output"
if $terminate && [[ -n "$enclave_id" ]]; then
  trap '"$nitro_cli" terminate-enclave --enclave-id "$enclave_id" >&2 || true' EXIT
fi

verify_args=(--pcrs-from "$pcrs_from")
if $debug; then
  echo "run-enclave: debug mode: PCR0-2 are zeros; the document is accepted without a PCR policy" >&2
  verify_args=(--allow-debug --any-pcrs)
fi
addr="vsock://$cid:$port"
echo "run-enclave: waiting up to ${wait_s}s for attestd at $addr" >&2
deadline=$((SECONDS + wait_s))
# The probe only needs an answer; the policy is applied by the fetch below, whose error is shown.
until "$attest" fetch --addr "$addr" --timeout 5s --allow-debug --any-pcrs >/dev/null 2>&1; do
  if ((SECONDS >= deadline)); then
    echo "run-enclave: no valid answer from $addr within ${wait_s}s (try --debug-mode and $nitro_cli console); last attempt:" >&2
    break
  fi
  sleep 2
done
"$attest" fetch --addr "$addr" "${verify_args[@]}" "${fetch_args[@]}"
