#!/usr/bin/env bash
# Reproducible-build check: builds attestd twice, from two copies of the source tree at
# different absolute paths, the second time with an empty build cache, with the Makefile's
# flags, and requires the two binaries to be byte-identical. attestd is baked into enclave
# images: a build that depends on where or when it ran changes PCR2 and breaks every policy.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/repro-check.sh [--package PKG] [--keep]

Copies the source tree (git ls-files: tracked and untracked-but-not-ignored files) into two
temporary directories with different absolute paths, builds PKG (default ./cmd/attestd) in
each with CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' (the
Makefile's BUILD_FLAGS; the script checks they still match), the second build with a fresh
GOCACHE, and compares the SHA-256 of the two binaries.

  --package PKG  the main package to build (default ./cmd/attestd)
  --keep         keep the temporary directory and print its path

Exit status: 0 identical, 1 different (or a build failed), 2 usage error.
EOF
}

pkg=./cmd/attestd
keep=false
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --package) pkg="${2:?--package needs a value}"; shift 2 ;;
    --keep) keep=true; shift ;;
    *) echo "repro-check: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
flags_line="BUILD_FLAGS := -trimpath -buildvcs=false -ldflags='-s -w -buildid='"
if ! grep -qxF "$flags_line" Makefile; then
  echo "repro-check: the Makefile's BUILD_FLAGS changed; update this script to build with them (want: $flags_line)" >&2
  exit 1
fi
command -v git >/dev/null || { echo "repro-check: git is needed to list the source files" >&2; exit 1; }
[[ -d "${pkg#./}" ]] || { echo "repro-check: no package $pkg in $root" >&2; exit 1; }

tmp="$(mktemp -d)"
if $keep; then
  echo "repro-check: keeping $tmp"
else
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
fi

# copy_tree DEST: the files git knows about (deleted ones skipped), modes kept.
copy_tree() {
  local dest="$1"
  mkdir -p "$dest"
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      [[ -e "$f" ]] && printf '%s\0' "$f"
    done |
    xargs -0 cp --parents -p -t "$dest"
}

# build SRC OUT [GOCACHE]: the Makefile's build of $pkg.
build() {
  local src="$1" out="$2" cache="${3:-}"
  (
    cd "$src"
    if [[ -n "$cache" ]]; then export GOCACHE="$cache"; fi
    CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$out" "$pkg"
  )
}

a="$tmp/a/src"
b="$tmp/second-copy/elsewhere/attestd-src"
copy_tree "$a"
copy_tree "$b"
echo "repro-check: building $pkg in $a"
build "$a" "$tmp/one.bin"
echo "repro-check: building $pkg in $b with an empty build cache"
build "$b" "$tmp/two.bin" "$tmp/gocache"

sum1="$(sha256sum "$tmp/one.bin" | cut -d' ' -f1)"
sum2="$(sha256sum "$tmp/two.bin" | cut -d' ' -f1)"
echo "repro-check: $sum1  $a"
echo "repro-check: $sum2  $b"
if [[ "$sum1" != "$sum2" ]]; then
  echo "repro-check: FAIL: $pkg is not reproducible: the two builds differ (sizes $(stat -c %s "$tmp/one.bin") and $(stat -c %s "$tmp/two.bin") bytes)" >&2
  echo "repro-check: rerun with --keep and compare the binaries (e.g. cmp -l, go version -m) to find the path or time that leaked in" >&2
  exit 1
fi
echo "repro-check: OK: $pkg builds byte-identically ($(stat -c %s "$tmp/one.bin") bytes)"
