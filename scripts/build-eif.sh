#!/usr/bin/env bash
# Builds the attestd enclave image: docker build of Dockerfile.enclave, nitro-cli
# build-enclave (optionally signed), then `attest eif describe` to check the EIF, print its
# PCRs and write the PCR policy file that `attest verify/fetch --pcrs-from` read.
# Runs on a parent instance (or any machine) with Docker and nitro-cli installed.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: scripts/build-eif.sh [--output FILE.eif] [--policy FILE.json] [--tag TAG]
                            [--dockerfile FILE] [--context DIR]
                            [--signing-key KEY.pem --signing-cert CERT.pem]

Builds the Docker image (default Dockerfile.enclave, context: this repository), turns it
into an EIF with nitro-cli build-enclave, checks the EIF with attest eif describe and
writes the PCR policy of the image.

  --output FILE     EIF to write (default attestd.eif)
  --policy FILE     PCR policy to write (default: the EIF path with .pcrs.json)
  --tag TAG         Docker image tag (default attestd-enclave:local)
  --dockerfile F    Dockerfile (default Dockerfile.enclave)
  --context DIR     build context (default: the repository root)
  --signing-key K   sign the EIF: ECDSA private key (PEM); needs --signing-cert
  --signing-cert C  certificate of the signing key (PEM); its hash is PCR8
  -h, --help        this help

The enclave kernel comes from nitro-cli's blobs directory, NITRO_CLI_BLOBS (default
/usr/share/nitro_enclaves/blobs). attestd refuses kernels older than 5.17.12, and the one
nitro-cli ships there is 4.14: point NITRO_CLI_BLOBS at blobs with a newer kernel (for
example aws-nitro-enclaves-sdk-bootstrap's, 6.6). An image whose kernel attestd would
refuse fails the build (exit 1); see docs/enclave-image.md.

Environment: SOURCE_DATE_EPOCH (default: the last commit's time) fixes file times in the
image; NITRO_CLI_BLOBS is passed on to nitro-cli; NITRO_CLI and DOCKER name the tools;
ATTEST names the attest binary (default bin/attest, built with `make build` when missing).
Exit status: 0 built, 1 a step failed (or attestd would refuse the kernel), 2 usage error.
EOF
}

die() { echo "build-eif: $*" >&2; exit 1; }
usage_error() { echo "build-eif: $*" >&2; echo "run 'scripts/build-eif.sh --help' for usage" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
output=attestd.eif
policy=""
tag=attestd-enclave:local
dockerfile="$root/Dockerfile.enclave"
context="$root"
signing_key=""
signing_cert=""
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --output | --policy | --tag | --dockerfile | --context | --signing-key | --signing-cert)
      if (($# < 2)) || [[ -z "$2" ]]; then usage_error "$1 needs a value"; fi
      case "$1" in
        --output) output="$2" ;;
        --policy) policy="$2" ;;
        --tag) tag="$2" ;;
        --dockerfile) dockerfile="$2" ;;
        --context) context="$2" ;;
        --signing-key) signing_key="$2" ;;
        --signing-cert) signing_cert="$2" ;;
      esac
      shift 2
      ;;
    *) usage_error "unknown argument $1" ;;
  esac
done
if [[ -z "$signing_key" && -n "$signing_cert" ]] || [[ -n "$signing_key" && -z "$signing_cert" ]]; then
  usage_error "--signing-key and --signing-cert go together"
fi
[[ "$output" == *.eif ]] || usage_error "--output should end in .eif, got $output"
policy="${policy:-${output%.eif}.pcrs.json}"
[[ -f "$dockerfile" ]] || usage_error "no Dockerfile $dockerfile"
[[ -d "$context" ]] || usage_error "no build context directory $context"
for f in "$signing_key" "$signing_cert"; do
  [[ -z "$f" || -r "$f" ]] || usage_error "cannot read $f"
done

docker="${DOCKER:-docker}"
nitro_cli="${NITRO_CLI:-nitro-cli}"
command -v "$docker" >/dev/null || die "$docker is not installed (Docker is needed to build the image)"
command -v "$nitro_cli" >/dev/null || die "$nitro_cli is not installed (see the Nitro Enclaves CLI install guide)"
attest="${ATTEST:-$root/bin/attest}"
if [[ ! -x "$attest" ]]; then
  echo "build-eif: building $attest" >&2
  make -C "$root" build >/dev/null
fi

if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)"
fi
export SOURCE_DATE_EPOCH

echo "build-eif: docker image $tag from $dockerfile (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)" >&2
if "$docker" buildx version >/dev/null 2>&1; then
  # rewrite-timestamp clamps file times in the layers to SOURCE_DATE_EPOCH.
  "$docker" buildx build --file "$dockerfile" --build-arg SOURCE_DATE_EPOCH \
    --output "type=docker,name=$tag,rewrite-timestamp=true" "$context"
else
  echo "build-eif: docker buildx is missing: layer file times are not clamped, PCR2 may differ between builds" >&2
  "$docker" build --file "$dockerfile" --build-arg SOURCE_DATE_EPOCH --tag "$tag" "$context"
fi

sign_args=()
if [[ -n "$signing_key" ]]; then
  sign_args=(--signing-certificate "$signing_cert" --private-key "$signing_key")
fi
echo "build-eif: nitro-cli build-enclave -> $output" >&2
"$nitro_cli" build-enclave --docker-uri "$tag" --output-file "$output" "${sign_args[@]}" >&2

# Our own strict check and measurement of what nitro-cli wrote; the policy pins exactly it.
"$attest" eif describe "$output" --policy "$policy"
# attestd's kernel gate, ahead of time: an image it would refuse is no success.
if "$attest" eif describe "$output" --json | grep -Eq '"Refuses": *true'; then
  die "attestd refuses this image's kernel (see the kernel line above: it needs 5.17.12 or newer);" \
    "nitro-cli took it from NITRO_CLI_BLOBS (${NITRO_CLI_BLOBS:-/usr/share/nitro_enclaves/blobs, the default});" \
    "set NITRO_CLI_BLOBS to blobs with a newer kernel and build again ($output and $policy are left for inspection)"
fi
echo "build-eif: wrote $output and its PCR policy $policy" >&2
echo "build-eif: verify an enclave of this image with: attest fetch --addr vsock://CID:5005 --pcrs-from $policy" >&2
