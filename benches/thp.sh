# shellcheck shell=bash
# Sourced by the disk benchmarks: run speediso and its peer on the same kind
# of buffer memory. speediso asks for transparent huge pages on its I/O
# buffers (madvise); fio's and dd's buffers get them only when the kernel's
# mode is "always". On a virtio disk a 1 MiB direct I/O from huge pages is
# one segment instead of 256, which moved sequential throughput 2.5x on the
# development VM: comparing the two under different memory would measure
# the allocator, not the tool. The scripts also give fio --iomem_align=2m,
# so its buffers start on a huge page as speediso's do (without it, fio's
# 16 MiB buffer straddles huge pages and reads ~10% slower).
# THP_MODE=keep leaves the machine as it is.
THP_FILE=/sys/kernel/mm/transparent_hugepage/enabled
THP_MODE=${THP_MODE:-always}
THP_WAS=""
thp_current() { sed -n 's/.*\[\(.*\)\].*/\1/p' "$THP_FILE" 2>/dev/null; }
thp_setup() {
    [ -r "$THP_FILE" ] || { echo "transparent huge pages: not available"; return 0; }
    local cur
    cur=$(thp_current)
    if [ "$THP_MODE" != keep ] && [ "$cur" != "$THP_MODE" ] && [ -w "$THP_FILE" ]; then
        THP_WAS=$cur
        echo "$THP_MODE" >"$THP_FILE"
    fi
    echo "transparent huge pages: $(thp_current) (machine default: ${THP_WAS:-$cur})"
}
thp_restore() {
    if [ -n "$THP_WAS" ]; then echo "$THP_WAS" >"$THP_FILE" || true; THP_WAS=""; fi
}
