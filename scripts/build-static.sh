#!/usr/bin/env bash
# Build the static agent binary and check that it is static.
# Prints the path of the binary on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# The agent package alone (crates/agent): it has no collector or server
# dependencies, which scripts/test.sh checks with cargo tree.
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    target=x86_64-unknown-linux-musl
    cargo build --release --locked --target "$target" -p speediso --bin speediso >&2
else
    target=x86_64-unknown-linux-gnu
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --release --locked --target "$target" -p speediso --bin speediso >&2
fi
bin="target/$target/release/speediso"
desc=$(file -L "$bin")
case "$desc" in
    *"statically linked"*) ;;
    *) echo "build-static: $bin is not static: $desc" >&2; exit 1 ;;
esac
echo "build-static: $desc" >&2
echo "build-static: size $(stat -c %s "$bin") bytes" >&2
echo "$bin"
