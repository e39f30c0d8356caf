#!/usr/bin/env bash
# Builds the project's images on a machine without a container registry (CI, this workplace):
#   car-price-base:<suite>  Debian <suite> made with mmdebstrap from this machine's own apt mirror,
#                           imported with `podman import` (stands in for python:3.12-slim);
#   car-price-uv:local      the uv binary `make setup` runs, alone in a scratch image
#                           (stands in for ghcr.io/astral-sh/uv:0.13);
#   car-price-api, car-price-training, car-price-proxy   the three Dockerfiles, given the two
#                           above as build args (their defaults stay the public images).
# Podman's layer cache makes a second run cheap; the base is made once per machine (delete it
# with `podman rmi car-price-base:bookworm` to refresh it).
# Usage: containers/images.sh [api|training|proxy ...]   (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."

# bookworm: its python3 is 3.11, which the workspace allows (requires-python >=3.11,<3.13);
# trixie's 3.13 is outside that range. python:3.12-slim is what users get by default.
SUITE="${SUITE:-bookworm}"
BASE="localhost/car-price-base:$SUITE"
UV_IMAGE="localhost/car-price-uv:local"
# Registries inside a build answer over TLS only with the host's CA bundle (a proxy's CA).
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"

for tool in podman mmdebstrap apt-get; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run \`make system-deps\` (as root)" >&2; exit 1; }
done

# The Debian sources this machine's apt already uses for $SUITE (and its -updates/-security),
# whatever file format declares them: no mirror is hard-coded.
sources() {
    apt-get indextargets --format '$(TARGET_OF) $(SITE) $(RELEASE) $(COMPONENT)' \
        | awk -v suite="$SUITE" '$1 == "deb" && ($3 == suite || index($3, suite "-") == 1) {print $1, $2, $3, $4}' \
        | sort -u
}

if ! podman image exists "$BASE"; then
    # Package lists cleaned after an install leave indextargets empty: fetch them first.
    [ -n "$(sources)" ] || apt-get update -qq
    if [ -z "$(sources)" ]; then
        echo "no apt source for Debian $SUITE in /etc/apt/sources.list(.d)" >&2; exit 1
    fi
    started=$SECONDS
    tarball="$(mktemp --suffix=.tar)"
    trap 'rm -f "$tarball"' EXIT
    # minbase + python3: the interpreter uv builds the venv for, and what the images run.
    sources | mmdebstrap --quiet --variant=minbase --include=python3 "$SUITE" "$tarball" -
    podman import --quiet "$tarball" "$BASE" >/dev/null
    rm -f "$tarball"
    echo "base $BASE: $((SECONDS - started)) s" >&2
fi

# The uv that `make setup` uses (the pip-installed one when it exists), so image and checkout
# lock-read with one version.
uv_binary="$(python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null || command -v uv || true)"
[ -n "$uv_binary" ] || { echo "uv is missing: run \`make uv\` (or \`make setup\`)" >&2; exit 1; }
uv_context="$(mktemp -d)"
trap 'rm -rf "$uv_context"' EXIT
cp "$uv_binary" "$uv_context/uv"
printf 'FROM scratch\nCOPY uv /uv\n' >"$uv_context/Containerfile"
podman build --quiet --tag "$UV_IMAGE" "$uv_context" >/dev/null

# Without the host's bundle (no ca-certificates), the build keeps the images' own TLS defaults.
ca_args=()
[ ! -f "$HOST_CA" ] || ca_args=(--build-arg "SSL_CERT_FILE=/run/host-ca.crt" --volume "$HOST_CA:/run/host-ca.crt:ro")

build() {  # build <tag> <Dockerfile>
    local started=$SECONDS
    # docker format: OCI images have no HEALTHCHECK, and podman would drop the inference one.
    podman build --quiet --format docker --tag "$1" --file "$2" \
        --build-arg "BASE_IMAGE=$BASE" --build-arg "UV_IMAGE=$UV_IMAGE" \
        "${ca_args[@]}" . >/dev/null
    echo "$1: $((SECONDS - started)) s, $(podman image inspect --format '{{.Size}}' "$1") bytes" >&2
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(api training proxy)
for target in "${targets[@]}"; do
    case "$target" in
        api) build localhost/car-price-api:local inference/Dockerfile ;;
        training) build localhost/car-price-training:local training/Dockerfile ;;
        proxy) build localhost/car-price-proxy:local inference/haproxy/Dockerfile ;;
        *) echo "unknown image $target (api, training, proxy)" >&2; exit 2 ;;
    esac
done
