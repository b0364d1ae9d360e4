#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine that has Go:
# gcc (the race detector needs cgo), shellcheck, openssl (an independent CMS implementation the KMS
# envelope tests check against; attested TLS tests: s_client, x509), Debian's python3 with cbor2,
# cryptography and pycryptodome (examples/secretstore; seal's interop tests), and a pinned staticcheck.
set -euo pipefail

if [[ "${1:-}" == "--help" ]]; then
  echo "usage: STATICCHECK_VERSION=vX TOOLS=DIR $0"
  echo "Installs gcc, shellcheck, openssl and python3 with cbor2, cryptography and pycryptodome with"
  echo "apt-get when missing, and staticcheck into DIR."
  exit 0
fi

: "${STATICCHECK_VERSION:?set STATICCHECK_VERSION}"
: "${TOOLS:?set TOOLS}"

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
# Debian's own python3 and packages (pycryptodome as Cryptodome), not a pip or pyenv one:
# the SecretStore example and seal's interop tests (RSA-OAEP, an independent HPKE) use them.
for pkg in python3 python3-cbor2 python3-cryptography python3-pycryptodome; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
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
