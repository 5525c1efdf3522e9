#!/bin/bash
# speediso build job fragment: number the build, stamp it into the image,
# publish it to the central repository.
#
#   build-job.sh number            print the build number
#   build-job.sh motd ROOTFS       write the SPEEDISO_BUILD line into the image
#                                  tree ROOTFS (before the squashfs is made;
#                                  e.g. from kickstart %post --nochroot with
#                                  ROOTFS=$INSTALL_ROOT)
#   build-job.sh publish OUTDIR    publish OUTDIR's vmlinuz, initrd,
#                                  speedtest.squashfs, speedtest.iso
#
# Environment:
#   SPEEDISO_BUILD_NUMBER  the build number; else Jenkins BUILD_NUMBER, GitLab
#                          CI_PIPELINE_IID or GitHub GITHUB_RUN_NUMBER
#   SPEEDISO_JOB           build job name (default: speedtest)
#   SPEEDISO_REPO_ROOT     repository root on the repo server (default: /srv/speediso/repo)
#   SPEEDISO_REPO_SSH      user@host of the repo server; empty: publish locally
#   SPEEDISO_REPO_BIN      speediso-repo command (default: speediso-repo)
#   SPEEDISO_FILES         file names to publish (default: the four above)
#   SPEEDISO_KEEP          builds to keep (default: 3)
set -euo pipefail

job=${SPEEDISO_JOB:-speedtest}
repo_root=${SPEEDISO_REPO_ROOT:-/srv/speediso/repo}
repo_bin=${SPEEDISO_REPO_BIN:-speediso-repo}
files=${SPEEDISO_FILES:-vmlinuz initrd speedtest.squashfs speedtest.iso}
keep=${SPEEDISO_KEEP:-3}

die() {
    echo "build-job.sh: $*" >&2
    exit 1
}

build_number() {
    local n=${SPEEDISO_BUILD_NUMBER:-${BUILD_NUMBER:-${CI_PIPELINE_IID:-${GITHUB_RUN_NUMBER:-}}}}
    [[ -n $n ]] || die "no build number: set SPEEDISO_BUILD_NUMBER (or run under Jenkins, GitLab CI or GitHub Actions)"
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "build number '$n' is not a positive integer"
    echo "$n"
}

# The line an engineer sees on login, and a key=value file the agent and
# scripts can read: both say exactly which build this image is.
write_motd() {
    local rootfs=$1 n stamp
    [[ -d $rootfs/etc ]] || die "$rootfs/etc does not exist: is $rootfs an image tree?"
    n=$(build_number)
    stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    printf 'SPEEDISO_BUILD=%s-%s\nSPEEDISO_BUILT=%s\n' "$job" "$n" "$stamp" >"$rootfs/etc/speediso-build"
    # Replace an earlier line rather than stacking one per rebuild.
    if [[ -f $rootfs/etc/motd ]]; then
        grep -v '^SPEEDISO_BUILD=' "$rootfs/etc/motd" >"$rootfs/etc/motd.new" || true
    else
        : >"$rootfs/etc/motd.new"
    fi
    printf 'SPEEDISO_BUILD=%s-%s (built %s)\n' "$job" "$n" "$stamp" >>"$rootfs/etc/motd.new"
    mv "$rootfs/etc/motd.new" "$rootfs/etc/motd"
}

publish() {
    local outdir=$1 n f
    local -a paths=()
    n=$(build_number)
    for f in $files; do
        [[ -f $outdir/$f ]] || die "$outdir/$f is missing; the build did not produce it"
        paths+=("$outdir/$f")
    done
    if [[ -z ${SPEEDISO_REPO_SSH:-} ]]; then
        "$repo_bin" publish --root "$repo_root" --job "$job" --build "$n" --keep "$keep" "${paths[@]}"
        return
    fi
    # Remote: upload to an incoming directory on the repo server's file
    # system, publish from there (publish copies, fsyncs and renames), clean up.
    local incoming="$repo_root/.incoming.$job.$n"
    # shellcheck disable=SC2029 # expanded here on purpose
    ssh "$SPEEDISO_REPO_SSH" "mkdir -p '$incoming'"
    rsync -a "${paths[@]}" "$SPEEDISO_REPO_SSH:$incoming/"
    # shellcheck disable=SC2029 # expanded here on purpose
    ssh "$SPEEDISO_REPO_SSH" "$repo_bin publish --root '$repo_root' --job '$job' --build '$n' --keep '$keep' '$incoming'/* && rm -rf '$incoming'"
}

case ${1:-} in
number) build_number ;;
motd)
    [[ $# -eq 2 ]] || die "usage: build-job.sh motd ROOTFS"
    write_motd "$2"
    ;;
publish)
    [[ $# -eq 2 ]] || die "usage: build-job.sh publish OUTDIR"
    publish "$2"
    ;;
*) die "usage: build-job.sh number | motd ROOTFS | publish OUTDIR" ;;
esac
