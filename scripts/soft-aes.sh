#!/usr/bin/env bash
# The wipe's AES stream on the `aes` crate's software backend, which is
# what a CPU without AES instructions runs (cpufeatures finds no AES-NI and
# the crate falls back to it). Builds the agent with
# `--cfg aes_backend="soft"` in its own target directory (the normal build
# is untouched) and runs:
# - the stream's unit tests: the pinned known answer (computed with
#   `openssl enc`) and every regeneration property, asserting the software
#   backend is really in use (SPEEDISO_EXPECT_SOFT_AES);
# - the verifier's unit test (verify_pattern over both algorithms);
# - with root and losetup: a loop-device wipe written by the normal
#   (AES-NI) binary is read back and checked by this software-AES build
#   (the test `the_stream_algorithm_is_recorded...` with SPEEDISO_WIPE_BIN).
# Usage: scripts/soft-aes.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${SOFT_AES_TARGET:-target/soft-aes}
export RUSTFLAGS="${RUSTFLAGS:-} --cfg aes_backend=\"soft\""
export SPEEDISO_EXPECT_SOFT_AES=1
cargo test --locked -p speediso --lib -- wipe::stream wipe::verify::tests::detects_a_single_corrupted_byte
if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null; then
    # The shipped kind of build (runtime AES-NI detection) writes...
    env -u CARGO_TARGET_DIR -u RUSTFLAGS -u SPEEDISO_EXPECT_SOFT_AES \
        cargo build --locked -p speediso --bin speediso
    # ...and the software-AES build regenerates and compares.
    SPEEDISO_WIPE_BIN="$PWD/target/debug/speediso" \
        cargo test --locked -p speediso --test wipe -- \
        the_stream_algorithm_is_recorded_and_aes_regenerates_without_aes_instructions
else
    echo "soft-aes.sh: SKIP the loop-device cross check (needs root and losetup)" >&2
fi
