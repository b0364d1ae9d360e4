#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine that has Go:
# gcc (the race detector needs cgo), shellcheck, openssl (attested TLS tests) and a
# pinned staticcheck.
set -euo pipefail

if [[ "${1:-}" == "--help" ]]; then
  echo "usage: STATICCHECK_VERSION=vX TOOLS=DIR $0"
  echo "Installs gcc, shellcheck and openssl with apt-get when missing, and staticcheck into DIR."
  exit 0
fi

: "${STATICCHECK_VERSION:?set STATICCHECK_VERSION}"
: "${TOOLS:?set TOOLS}"

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v openssl >/dev/null 2>&1 || missing+=(openssl) # attestedtls tests: s_client, x509
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing ${missing[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

want="staticcheck ${STATICCHECK_VERSION#v}"
if ! "$TOOLS/staticcheck" -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
  echo "installing $want into $TOOLS" >&2
  GOBIN="$TOOLS" go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi
