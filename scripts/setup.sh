#!/usr/bin/env bash
# Install everything speediso's build, tests and benchmarks need on a Debian
# machine: apt packages listed in tests/apt/*.txt, the Rust musl target for the
# static agent, and Python tools from tests/pip/*.txt into target/pyenv.
# Idempotent: a second run installs nothing new. Runs as root (or via sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# apt packages: every line of tests/apt/*.txt that is not a comment.
mapfile -t pkgs < <(cat tests/apt/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# lldpd is here for tests/lldp.rs, which runs its own copy inside a network
# namespace. Debian starts the packaged daemon on install, which would
# announce this machine on its real NICs: stop it and keep it off.
if [ -d /run/systemd/system ] && systemctl is-enabled lldpd.service >/dev/null 2>&1; then
    $SUDO systemctl disable --now lldpd.service >/dev/null 2>&1 || true
fi

# Rust: rustup's stable toolchain (Debian's own rustc is too old for our
# dependencies). Where no rustup exists, Debian's rustup package brings it.
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rustup >/dev/null
        rustup default stable
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The static agent is built for musl; scripts/build-static.sh falls back to
# glibc with +crt-static when the target cannot be installed.
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 ||
    echo "setup: note: could not add the musl target; the static build will use glibc +crt-static"

# Python tools, in a venv under target/ so nothing lands in the system.
if compgen -G "tests/pip/*.txt" >/dev/null; then
    if [ ! -x target/pyenv/bin/python ]; then
        mkdir -p target
        python3 -m venv target/pyenv
    fi
    mapfile -t pips < <(cat tests/pip/*.txt | sed "s/#.*//" | grep -v "^\s*$")
    target/pyenv/bin/pip install -q --disable-pip-version-check "${pips[@]}"
fi
echo "setup: done"
