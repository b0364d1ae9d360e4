#!/usr/bin/env bash
# Runs an unmodified program that opens /dev/nsm against the mock NSM device.
#
# The program runs in a private mount namespace whose /dev is an overlay of the
# host's /dev (upper and work directories in a temporary directory) with the
# mock's FUSE file bound on /dev/nsm. The host's /dev is never written to.
# Unless --mount names a running `nsm-mock serve`, the script starts one inside
# the namespace; the server, the mounts and the temporary directory are removed
# when the program exits. The script exits with the program's status.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/nsm-run.sh [--dir D] [--mount DIR] [--nsm-mock BIN] [--verbose] -- CMD [ARGS...]

Runs CMD with /dev/nsm answered by the mock NSM, in a private mount namespace;
the host's /dev is untouched. Needs root (mount namespace, overlay, FUSE).

  --dir D         mock NSM state directory; created with `nsm-mock init` if it
                  has no root.pem yet (default: a fresh temporary state, removed
                  on exit; give --dir to verify documents afterwards against
                  D/root.pem)
  --mount DIR     use the device DIR/nsm of an `nsm-mock serve` already running
                  in this mount namespace instead of starting one
  --nsm-mock BIN  the nsm-mock binary (default: $NSM_MOCK, else bin/nsm-mock of
                  this repository, else nsm-mock from PATH)
  --verbose       the server logs at info level (default: warnings only)
  -h, --help      this help

Exit status: CMD's status; 1 if the script itself fails, 2 on a usage error.
EOF
}

die() { echo "nsm-run: $*" >&2; exit 1; }
usage_error() { echo "nsm-run: $*" >&2; echo "run 'scripts/nsm-run.sh --help' for usage" >&2; exit 2; }

# teardown ends the namespace's life (EXIT trap of in_namespace): it drops
# every reference to the FUSE file first, so the server's connection ends at its
# unmount instead of lingering, then stops the server and removes the temp dir.
teardown() {
  umount -l /dev 2>/dev/null || true
  umount -l "$tmp/dev" 2>/dev/null || true
  if [[ -n $server ]]; then
    if [[ -n $keep ]]; then
      exec {keep}>&- # EOF on the server's stdin: it unmounts and exits
    fi
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}

# forward passes a TERM or HUP on to the program; before the program runs it
# ends the script (teardown runs as the EXIT trap).
forward() {
  if [[ -n $child ]]; then
    kill -"$1" "$child" 2>/dev/null || true
  else
    exit $((128 + $2))
  fi
}

# run_child runs "$@" in the background with stdin kept and SIGINT/SIGQUIT
# restored (bash ignores them in background jobs), without the fd named by
# $keep (if set), and waits for it; TERM/HUP meanwhile are forwarded to it
# (forward, the caller's trap). It sets status to the program's exit status.
#
# A forwarded signal interrupts `wait`, which then returns 128+signal, not the
# program's status; the program may already have exited and been reaped by
# then. So wait again until a `wait` reports the program itself: `wait -p`
# names the process whose status it returns and leaves the variable unset
# when a signal interrupted it (bash 5.1), and bash keeps a reaped child's
# status for the next `wait` on it.
run_child() {
  if [[ -n $keep ]]; then
    (trap - INT QUIT; exec "$@") <&0 {keep}>&- &
  else
    (trap - INT QUIT; exec "$@") <&0 &
  fi
  child=$!
  local done_pid s
  while :; do
    unset done_pid
    wait -n -p done_pid "$child" && s=0 || s=$?
    [[ -z ${done_pid:-} ]] || break
  done
  child=""
  status=$s
}

# in_namespace runs inside `unshare --mount --propagation private`: it starts
# the server (unless a mount was given), builds the private /dev, runs the
# command and tears everything down in reverse order (teardown).
in_namespace() {
  set -euo pipefail
  local mock=$1 state=$2 mnt=$3 level=$5
  tmp=$4 server="" keep="" child=""
  shift 5
  local status=0
  trap teardown EXIT
  trap 'forward TERM 15' TERM
  trap 'forward HUP 1' HUP
  trap : INT

  if [[ -z $mnt ]]; then
    mnt=$tmp/mnt
    mkdir "$mnt"
    mkfifo "$tmp/keep"
    # setsid: a Ctrl-C for the program must not stop the server under it. The
    # fifo ties the server's life to this shell even if it is SIGKILLed.
    setsid "$mock" serve --dir "$state" --mount "$mnt" --watch-stdin --log-level "$level" <"$tmp/keep" &
    server=$!
    exec {keep}>"$tmp/keep"
    local i
    for ((i = 0; i < 600; i++)); do
      [[ -e $mnt/nsm ]] && break
      kill -0 "$server" 2>/dev/null || { wait "$server" || true; server=""; echo "nsm-run: nsm-mock serve failed" >&2; exit 1; }
      sleep 0.05
    done
    [[ -e $mnt/nsm ]] || { echo "nsm-run: nsm-mock serve did not mount $mnt/nsm within 30s" >&2; exit 1; }
  fi
  [[ -e $mnt/nsm ]] || { echo "nsm-run: no device at $mnt/nsm" >&2; exit 1; }

  # A private /dev: overlay on the host's /dev (device nodes keep working),
  # with the submounts (pts, shm, mqueue, ...) carried over and the mock bound
  # on nsm; then it replaces /dev in this namespace only.
  mkdir "$tmp/up" "$tmp/work" "$tmp/dev"
  mount -t overlay overlay -o "lowerdir=/dev,upperdir=$tmp/up,workdir=$tmp/work" "$tmp/dev"
  local sub
  while read -r sub; do
    if [[ -e $tmp/dev/${sub#/dev/} ]]; then
      mount --rbind "$sub" "$tmp/dev/${sub#/dev/}"
    fi
  done < <(awk '$5 ~ "^/dev/[^/]+$" { print $5 }' /proc/self/mountinfo | sort -u)
  [[ -e $tmp/dev/nsm ]] || touch "$tmp/dev/nsm"
  mount --bind "$mnt/nsm" "$tmp/dev/nsm"
  mount --rbind "$tmp/dev" /dev

  # In the background so that TERM/HUP can be forwarded; the program does not
  # inherit the fifo. A Ctrl-C reaches the program from the terminal; this
  # shell waits for it and then tears down.
  run_child "$@"
  exit "$status"
}

main() {
  local state="" mnt="" mock="${NSM_MOCK:-}" level=warn
  while (($#)); do
    case $1 in
      --dir) (($# > 1)) || usage_error "--dir needs a value"; state=$2; shift 2 ;;
      --mount) (($# > 1)) || usage_error "--mount needs a value"; mnt=$2; shift 2 ;;
      --nsm-mock) (($# > 1)) || usage_error "--nsm-mock needs a value"; mock=$2; shift 2 ;;
      --verbose) level=info; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; break ;;
      *) usage_error "unexpected argument '$1' (the command goes after --)" ;;
    esac
  done
  (($#)) || usage_error "no command given (after --)"
  if [[ -n $mnt && -n $state ]]; then
    usage_error "--dir has no effect with --mount (the running server has its own state)"
  fi
  ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 501)) || die "needs bash 5.1 or newer (wait -p)"
  [[ $(id -u) -eq 0 ]] || die "needs root (mount namespace, overlay /dev, FUSE)"
  command -v unshare >/dev/null || die "unshare (util-linux) not found"

  if [[ -z $mock ]]; then
    local repo
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [[ -x $repo/bin/nsm-mock ]]; then
      mock=$repo/bin/nsm-mock
    else
      mock=$(command -v nsm-mock) || die "nsm-mock not found: run 'make build' or pass --nsm-mock"
    fi
  fi
  [[ -x $mock ]] || die "nsm-mock binary $mock is not executable"
  mock=$(realpath "$mock")

  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/nsm-run.XXXXXXXX")
  # Until the namespace takes over the cleanup (exec below).
  trap 'rm -rf "$tmp"' EXIT

  if [[ -n $mnt ]]; then
    [[ -e $mnt/nsm ]] || die "no device at $mnt/nsm (is nsm-mock serve running?)"
    mnt=$(realpath "$mnt")
  else
    if [[ -z $state ]]; then
      state=$tmp/state
    fi
    if [[ ! -e $state/root.pem ]]; then
      "$mock" init --dir "$state" >/dev/null || die "nsm-mock init --dir $state failed"
    fi
    state=$(realpath "$state")
  fi

  trap - EXIT
  exec unshare --mount --propagation private -- \
    bash -c "$(declare -f teardown forward run_child in_namespace); in_namespace \"\$@\"" nsm-run \
    "$mock" "$state" "$mnt" "$tmp" "$level" "$@"
}

# Sourced (scripts/nsm-run_test.sh tests run_child), it only defines functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
