#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
# setup, format and lint checks, every test, the static build and its check.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
# Tests that need a tool fail (instead of skipping) when it is missing.
export SPEEDISO_REQUIRE_TOOLS=1
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
step "crate boundaries"
scripts/check-crates.sh
step "cargo test"
# The loop-device tests that need device-mapper may skip on a host kernel
# without it only because the VM suite below runs them in its guest
# (wipe-faults); without the VM suite they fail under REQUIRE_TOOLS.
if [ -x tests/vm/run.sh ]; then export SPEEDISO_DM_IN_VM=1; fi
cargo test --locked --workspace --no-fail-fast 2>&1 | tee target/test.log
step "static agent build"
bin=$(./scripts/build-static.sh)
size=$(stat -c %s "$bin")
limit=$((10 * 1024 * 1024))
if [ "$size" -ge "$limit" ]; then
    echo "static agent is $size bytes, over the 10 MiB budget" >&2
    exit 1
fi
"$bin" --version
if [ -x tests/vm/run.sh ]; then
    step "VM suite"
    tests/vm/run.sh
fi
step "all checks passed"
