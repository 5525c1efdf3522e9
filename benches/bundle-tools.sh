#!/usr/bin/env bash
# Pack fio and sysbench with every shared library they load (and the
# dynamic loader) into target/benchtools.tar.xz, for running benches/speed.sh
# on a machine that cannot install packages. Unpack there and use:
#   tar xJf target/benchtools.tar.xz -C DIR
#   SYSBENCH=DIR/benchtools/sysbench FIO=DIR/benchtools/fio benches/speed.sh
# The wrappers start each tool through the bundled ld.so, so the other
# machine's libc does not matter.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
b=$work/benchtools
mkdir -p "$b/bin" "$b/lib"
for t in fio sysbench; do
    cp "$(command -v "$t")" "$b/bin/"
    ldd "$(command -v "$t")" | grep -o '/[^ ]*' | while read -r l; do cp -L "$l" "$b/lib/"; done
    cat >"$b/$t" <<WRAP
#!/bin/sh
d=\$(dirname "\$(readlink -f "\$0")")
exec "\$d/lib/ld-linux-x86-64.so.2" --library-path "\$d/lib" "\$d/bin/$t" "\$@"
WRAP
    chmod +x "$b/$t"
done
mkdir -p target
tar cJf target/benchtools.tar.xz -C "$work" benchtools
ls -la target/benchtools.tar.xz
