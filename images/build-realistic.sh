#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# build-realistic.sh - build a real-world series of Debian root images.
#
#   images/build-realistic.sh OUTDIR [--refresh-cache]
#
# v1 is a Debian bookworm "minbase" root filesystem from debootstrap; v2 is the
# same tree after `apt-get upgrade` against bookworm, bookworm-updates and
# bookworm-security, i.e. a genuine security/stable update; v3 is v2 plus a
# feature release, FEATURE_PACKAGES installed with --no-install-recommends
# (9 new packages with their dependencies).  The series shows how delta
# updates behave on a real distribution release rather than on synthetic
# data.  Needs the Debian mirror, so it is not part of the default test run.
#
# Outputs, in OUTDIR:
#   debian-v{1,2,3}.sqfs                zstd, 128 KiB blocks
#   debian-v{1,2,3}.raw.sqfs            uncompressed (-noI -noD -noF -noX)
#   debian-v{1,2,3}.gzip.sqfs           gzip (mksquashfs's default compressor)
#   debian-v{1,2,3}.xz.sqfs             xz (as Yocto's squashfs-xz: -comp xz)
#   debian-v{1,2,3}.lz4.sqfs            lz4 -Xhc
#   debian-upgrade.txt                  packages changed by the upgrade (v1->v2)
#   debian-feature.txt                  packages added by the feature (v2->v3)
#   cache/bookworm-minbase-ARCH.tar.gz  debootstrap result, reused by later
#                                       runs (--refresh-cache rebuilds it)
#
# Before each mksquashfs the tree is stripped of what depends on the download
# rather than on the release (apt lists and caches, logs, *-old backups), and
# mksquashfs runs in reproducible mode with all times set to 0.  Ownership is
# kept as installed.
#
# Environment: SUITE (bookworm), ARCH (host), MIRROR and SECURITY_MIRROR (the
# Debian mirror and security mirror; default: those this machine's apt uses,
# scripts/debian-mirror.sh), TMPDIR (work tree, ~600 MB).
# Needs: root, debootstrap, squashfs-tools, tar, gzip.
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--refresh-cache]" >&2; exit 2; }

OUTDIR=""
REFRESH=0
for arg in "$@"; do
    case "$arg" in
        --refresh-cache) REFRESH=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) [ -z "$OUTDIR" ] || usage; OUTDIR=$arg ;;
    esac
done
[ -n "$OUTDIR" ] || usage

[ "$(id -u)" = 0 ] || { echo "must run as root (debootstrap, chroot)" >&2; exit 1; }
for tool in debootstrap mksquashfs tar chroot mount; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

SUITE=${SUITE:-bookworm}
ARCH=${ARCH:-$(dpkg --print-architecture)}
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${MIRROR:-$(bash "$HERE/../scripts/debian-mirror.sh" "$SUITE")}
SECURITY_MIRROR=${SECURITY_MIRROR:-$(bash "$HERE/../scripts/debian-mirror.sh" "$SUITE-security")}

# Feature release of v3, for a radio base station: PTP time synchronisation
# (ptp4l, phc2sys), NIC and PTP hardware clock settings, kernel module
# loading for drivers, reachability checks and the network service tables.
# On bookworm, with --no-install-recommends, apt adds these 5 and 4
# dependencies (libmnl0, libssl3, libkmod2, libcap2-bin): 9 packages.
FEATURE_PACKAGES=(linuxptp ethtool kmod iputils-ping netbase)

export LC_ALL=C TZ=UTC
umask 022

mkdir -p "$OUTDIR/cache"
OUTDIR=$(cd "$OUTDIR" && pwd)
CACHE_TAR=$OUTDIR/cache/$SUITE-minbase-$ARCH.tar.gz

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/slotsync-debian.XXXXXX")
ROOT=$WORK/root

# Mounts inside the chroot, unmounted (innermost first) on any exit.  The
# work tree is deleted only when nothing is mounted below it any more.
MOUNTED=()
chroot_mount() {          # chroot_mount FSTYPE DIR
    mkdir -p "$ROOT/$2"
    mount -t "$1" "slotsync-$1" "$ROOT/$2"
    MOUNTED+=("$ROOT/$2")
}
chroot_umount() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" || true
    done
    MOUNTED=()
}
cleanup() {
    chroot_umount
    if awk -v w="$WORK" 'index($2, w "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "error: filesystems still mounted under $WORK; not removing it" >&2
        return
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_root() {
    chroot "$ROOT" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C TZ=UTC \
        DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@"
}

# Package installs in the chroot run with the build host's resolver, /proc
# mounted and no services started; apt_end restores the image's resolv.conf
# and removes the rest again.
apt_begin() {
    cp -a "$ROOT/etc/resolv.conf" "$WORK/resolv.conf.image"
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"   # start no services
    chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
    chroot_mount proc proc
}
apt_end() {
    chroot_umount
    rm -f "$ROOT/usr/sbin/policy-rc.d"
    cp -a "$WORK/resolv.conf.image" "$ROOT/etc/resolv.conf"
}
apt_failed() {
    tail -n 30 "$WORK/apt.log" >&2
    exit 1
}
APT_INSTALL_OPTS=(-q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

# shellcheck disable=SC2016 # dpkg-query format, expanded by dpkg-query
DPKG_FMT='${Package} ${Version}\n'

# "package old-version new-version" for each package that differs between
# two sorted "package version" lists ('-' = not installed).
package_changes() {
    join -a1 -a2 -e '-' -o 0,1.2,2.2 "$1" "$2" | awk '$2 != $3'
}

# Remove what reflects the download or the build run, not the release.
clean_tree() {
    find "$ROOT/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf {} +
    rm -rf "$ROOT"/var/lib/apt/lists/partial/*
    rm -f "$ROOT"/var/cache/apt/*.bin
    rm -f "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/archives/partial/*
    rm -f "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old
    rm -f "$ROOT"/var/cache/ldconfig/aux-cache
    find "$ROOT/var/log" -type f -delete
    rm -rf "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/root/.bash_history
}

# One tree, five images: the same reproducible options and 128 KiB blocks,
# only the compression differs.
#   NAME.sqfs       zstd (-comp zstd, level 15)
#   NAME.raw.sqfs   uncompressed (-noI -noD -noF -noX)
#   NAME.gzip.sqfs  gzip, mksquashfs's default compressor with its default options
#   NAME.xz.sqfs    xz as Yocto's squashfs-xz image type makes it (image_types.bbclass:
#                   "-noappend -comp xz", no -X options: no BCJ filter, dictionary = block size)
#   NAME.lz4.sqfs   lz4 high compression (-comp lz4 -Xhc)
make_images() {           # make_images NAME
    local opts=(-noappend -reproducible -mkfs-time 0 -all-time 0 -xattrs
                -b 131072 -quiet -no-progress)
    rm -f "$OUTDIR/$1".{sqfs,raw.sqfs,gzip.sqfs,xz.sqfs,lz4.sqfs}
    mksquashfs "$ROOT" "$OUTDIR/$1.sqfs" "${opts[@]}" -comp zstd >/dev/null
    mksquashfs "$ROOT" "$OUTDIR/$1.raw.sqfs" "${opts[@]}" -comp zstd -noI -noD -noF -noX >/dev/null
    mksquashfs "$ROOT" "$OUTDIR/$1.gzip.sqfs" "${opts[@]}" -comp gzip >/dev/null
    mksquashfs "$ROOT" "$OUTDIR/$1.xz.sqfs" "${opts[@]}" -comp xz >/dev/null
    mksquashfs "$ROOT" "$OUTDIR/$1.lz4.sqfs" "${opts[@]}" -comp lz4 -Xhc >/dev/null
}

# ------------------------------------------------------------ v1: debootstrap
if [ "$REFRESH" = 1 ] || [ ! -s "$CACHE_TAR" ]; then
    echo "debootstrap --variant=minbase $SUITE ($ARCH) from $MIRROR"
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 30 "$WORK/debootstrap.log" >&2; exit 1; }
    clean_tree
    tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -cpzf "$CACHE_TAR.tmp" .
    mv "$CACHE_TAR.tmp" "$CACHE_TAR"
else
    echo "using cached debootstrap tree $CACHE_TAR"
    mkdir -p "$ROOT"
    tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpzf "$CACHE_TAR"
fi

# Release configuration, identical in v1, v2 and v3: package sources for
# updates, fixed host identity (debootstrap copies the build host's).
cat > "$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
echo "debian" > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
printf '# generated at boot\n' > "$ROOT/etc/resolv.conf"
chmod 0644 "$ROOT/etc/hostname" "$ROOT/etc/hosts" "$ROOT/etc/resolv.conf"

clean_tree
in_root dpkg-query -W -f="$DPKG_FMT" | sort > "$WORK/before.txt"
make_images debian-v1

# ------------------------------------------------------------ v2: upgrade
apt_begin
echo "apt-get update && apt-get -y upgrade in the chroot"
in_root apt-get -q update >"$WORK/apt.log" 2>&1 || apt_failed
in_root apt-get -s upgrade > "$WORK/simulate.txt"
in_root apt-get "${APT_INSTALL_OPTS[@]}" upgrade >>"$WORK/apt.log" 2>&1 || apt_failed
in_root dpkg-query -W -f="$DPKG_FMT" | sort > "$WORK/after.txt"
# v3 installs from the same package lists (no second apt-get update).
cp -a "$ROOT/var/lib/apt/lists" "$WORK/apt-lists"
apt_end

clean_tree
make_images debian-v2

# ------------------------------------------------------------ v3: feature release
rm -rf "$ROOT/var/lib/apt/lists"
cp -a "$WORK/apt-lists" "$ROOT/var/lib/apt/lists"
apt_begin
echo "apt-get install --no-install-recommends ${FEATURE_PACKAGES[*]} in the chroot"
in_root apt-get -s install --no-install-recommends "${FEATURE_PACKAGES[@]}" > "$WORK/simulate-feature.txt"
in_root apt-get "${APT_INSTALL_OPTS[@]}" install --no-install-recommends \
    "${FEATURE_PACKAGES[@]}" >>"$WORK/apt.log" 2>&1 || apt_failed
in_root dpkg-query -W -f="$DPKG_FMT" | sort > "$WORK/feature.txt"
apt_end

clean_tree
make_images debian-v3

# ------------------------------------------------------------ upgrade report
CHANGED=$(package_changes "$WORK/before.txt" "$WORK/after.txt")
COUNT=$(printf '%s' "$CHANGED" | grep -c . || true)
{
    echo "# Packages changed by apt-get upgrade ($SUITE, $SUITE-updates, $SUITE-security)"
    echo "# debian-v1 -> debian-v2: $COUNT packages"
    echo "# package old-version new-version ('-' = not installed)"
    [ -z "$CHANGED" ] || printf '%s\n' "$CHANGED"
    echo "#"
    echo "# apt-get -s upgrade:"
    grep -E '^(Inst|Remv) ' "$WORK/simulate.txt" | sed 's/^/#   /' || true
} > "$OUTDIR/debian-upgrade.txt"

echo "packages changed by the upgrade: $COUNT (see $OUTDIR/debian-upgrade.txt)"

# ------------------------------------------------------------ feature report
CHANGED=$(package_changes "$WORK/after.txt" "$WORK/feature.txt")
COUNT=$(printf '%s' "$CHANGED" | grep -c . || true)
ADDED=$(printf '%s' "$CHANGED" | awk '$2 == "-"' | grep -c . || true)
{
    echo "# Packages changed by apt-get install --no-install-recommends ${FEATURE_PACKAGES[*]}"
    echo "# debian-v2 -> debian-v3: $COUNT packages, $ADDED newly installed"
    echo "# package old-version new-version ('-' = not installed)"
    [ -z "$CHANGED" ] || printf '%s\n' "$CHANGED"
    echo "#"
    echo "# apt-get -s install --no-install-recommends ${FEATURE_PACKAGES[*]}:"
    grep -E '^(Inst|Remv) ' "$WORK/simulate-feature.txt" | sed 's/^/#   /' || true
} > "$OUTDIR/debian-feature.txt"

echo "packages changed by the feature release: $COUNT, $ADDED newly installed (see $OUTDIR/debian-feature.txt)"
for f in debian-v{1,2,3}.{sqfs,raw.sqfs,gzip.sqfs,xz.sqfs,lz4.sqfs}; do
    printf '%s\t%s bytes\n' "$OUTDIR/$f" "$(stat -c %s "$OUTDIR/$f")"
done
echo "done in ${SECONDS}s"
