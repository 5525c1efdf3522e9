#!/usr/bin/env bash
# Set up, build the agent, and show what it would do on this machine:
# the shipped tasks, then an inventory of this machine (when the inventory
# module is in this build; otherwise the dispatch plan of an inventory boot).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/setup.sh
cargo build --release --locked --bin speediso
bin=target/release/speediso
"$bin" tasks
echo
if "$bin" inventory --help >/dev/null 2>&1; then
    "$bin" inventory "$@"
else
    "$bin" dispatch --dry-run --cmdline "systemd.setenv=SPEEDISO=inventory"
fi
