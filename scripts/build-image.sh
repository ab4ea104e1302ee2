#!/usr/bin/env bash
# Builds the Custody container image from the release binary that
# scripts/test.sh already built (one release build for everything: the
# binary is not rebuilt for another target).
#
# The image is FROM scratch: its root holds /usr/local/bin/custody, the
# shared libraries `ldd` lists for it (glibc, libgcc_s, ...) and the dynamic
# loader, each at the path the binary expects.
#
#   scripts/build-image.sh            # tags custody:dev
#   CUSTODY_IMAGE=custody:1 scripts/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

image=${CUSTODY_IMAGE:-custody:dev}
binary=${CUSTODY_BINARY:-target/release/custody}

if [[ ! -x $binary ]]; then
    echo "error: $binary is missing; run: cargo build --workspace --all-targets --release" >&2
    exit 1
fi
if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker daemon is reachable (docker info failed); cannot build the image" >&2
    exit 1
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root=$context/rootfs
mkdir -p "$root/usr/local/bin" "$root/home/custody" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$binary" "$root/usr/local/bin/custody"

# Every absolute path ldd prints: the libraries and the loader. The
# virtual vDSO has no path and is skipped.
libraries=$(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
if [[ -z $libraries ]]; then
    echo "error: ldd listed no libraries for $binary (is it static? then drop this step)" >&2
    exit 1
fi
for library in $libraries; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
done

if ! docker build --quiet -t "$image" -f scripts/image/Dockerfile "$context" >"$context/build.log" 2>&1; then
    cat "$context/build.log" >&2
    echo "error: docker build failed" >&2
    exit 1
fi
echo "built image $image ($(docker image inspect -f '{{.Size}}' "$image") bytes): custody + $(wc -w <<<"$libraries") libraries from ldd"
