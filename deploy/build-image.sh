#!/usr/bin/env bash
# Builds the `trunkline` container image with no image registry: a FROM scratch image holding
# the release binary and exactly the shared libraries `ldd` lists for it.
#
#   deploy/build-image.sh [TAG]        (default tag: trunkline:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-trunkline:dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/trunkline-target}"
cargo build --release --locked --bin trunkline
binary="$CARGO_TARGET_DIR/release/trunkline"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/root/usr/local/bin" "$context/root/data" "$context/root/tmp"
cp "$binary" "$context/root/usr/local/bin/trunkline"
# Each library at the path the dynamic loader will look for it.
ldd "$binary" | grep -oE '/[^ ]+' | sort -u | while read -r library; do
  mkdir -p "$context/root$(dirname "$library")"
  cp -L "$library" "$context/root$library"
done
cp deploy/Dockerfile "$context/Dockerfile"
docker build --quiet -t "$tag" "$context"
echo "built $tag"
