#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# build-sample.sh - build a small, deterministic pair of sample root images.
#
#   images/build-sample.sh OUTDIR [--uncompressed] [--comp gzip|xz|lz4|zstd]
#
# Produces OUTDIR/sample-v1.sqfs and OUTDIR/sample-v2.sqfs: two busybox-based
# root filesystems (about 10 MB of file content each) where v2 is v1 after a
# typical release: binaries patched in place, text and config edits, files
# added and removed, VERSION_ID bumped, an xattr relabelled.  The images are
# the input for the chunking/delta tests and examples: they build offline in
# a few seconds, and every run produces byte-identical files (all content
# comes from fixed keys/seeds, times are pinned to 0, owners to root,
# permissions are set explicitly and mksquashfs runs in reproducible mode).
#
# Default compression is zstd with 128 KiB blocks; --uncompressed stores
# inodes, data, fragments and xattrs uncompressed (-noI -noD -noF -noX),
# which gives far smaller byte-level deltas.  --comp COMP compresses with COMP
# instead and names the pair sample-v1.COMP.sqfs / sample-v2.COMP.sqfs (with
# SAMPLE_SUFFIX=S set: sample-v1.S.sqfs, for variants of one compressor);
# SAMPLE_MKSQ_OPTS adds mksquashfs options (e.g. "-Xbcj x86" or "-Xhc").
#
# Needs: mksquashfs (squashfs-tools >= 4.4), busybox-static, openssl, attr
# (setfattr), mawk/gawk, coreutils; must run as root (security.* xattrs).
set -euo pipefail

usage() { echo "usage: $0 OUTDIR [--uncompressed] [--comp gzip|xz|lz4|zstd]" >&2; exit 2; }

OUTDIR=""
UNCOMPRESSED=0
COMP=""
want_comp=0
for arg in "$@"; do
    if [ "$want_comp" = 1 ]; then
        case "$arg" in gzip|xz|lz4|zstd) COMP=$arg ;; *) echo "unknown compressor: $arg" >&2; usage ;; esac
        want_comp=0
        continue
    fi
    case "$arg" in
        --uncompressed) UNCOMPRESSED=1 ;;
        --comp) want_comp=1 ;;
        --comp=*) COMP=${arg#--comp=}; case "$COMP" in gzip|xz|lz4|zstd) ;; *) usage ;; esac ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) [ -z "$OUTDIR" ] || usage; OUTDIR=$arg ;;
    esac
done
[ -n "$OUTDIR" ] && [ "$want_comp" = 0 ] || usage
NAME_SUFFIX=""
if [ -n "$COMP" ]; then NAME_SUFFIX=.${SAMPLE_SUFFIX:-$COMP}; fi

BUSYBOX=${BUSYBOX:-/bin/busybox}
for tool in mksquashfs openssl setfattr awk; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
[ -x "$BUSYBOX" ] || { echo "missing static busybox at $BUSYBOX (package busybox-static)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "must run as root (security.* xattrs)" >&2; exit 1; }

export LC_ALL=C TZ=UTC
umask 022

# Work directory.  The trees are built on a private tmpfs mounted for this
# run: tmpfs accepts security.* xattrs without SELinux on the host and user.*
# xattrs (Linux >= 6.6), and, unlike ext4, lists a file's xattrs in a fixed
# order.  mksquashfs stores xattrs in the order the source filesystem lists
# them, so building on ext4 gives a valid but differently laid out image.
# Without a usable tmpfs the work directory itself is used (a warning says
# that the bytes then depend on that filesystem).
xattr_ok() {
    local probe
    probe=$(mktemp -d -p "$1" probe.XXXXXX) || return 1
    if setfattr -n security.selinux -v "system_u:object_r:etc_t:s0" "$probe" 2>/dev/null &&
       setfattr -n user.probe -v 1 "$probe" 2>/dev/null; then
        rmdir "$probe"
        return 0
    fi
    rmdir "$probe"
    return 1
}
BASE=$(mktemp -d "${TMPDIR:-/tmp}/slotsync-sample.XXXXXX")
cleanup() {
    if mountpoint -q "$BASE/fs"; then umount "$BASE/fs"; fi
    rm -rf "$BASE"
}
trap cleanup EXIT
mkdir "$BASE/fs"
if mount -t tmpfs -o size=512m,mode=0755 slotsync-sample "$BASE/fs" 2>/dev/null &&
   xattr_ok "$BASE/fs"; then
    WORK=$BASE/fs
else
    if mountpoint -q "$BASE/fs"; then umount "$BASE/fs"; fi
    xattr_ok "$BASE" || { echo "no filesystem here accepts security.*/user.* xattrs" >&2; exit 1; }
    WORK=$BASE
    echo "warning: no tmpfs with xattr support; building on $(stat -f -c %T "$BASE")," \
         "image bytes depend on that filesystem's xattr order" >&2
fi

mkdir -p "$OUTDIR"

# ---------------------------------------------------------------- helpers
# rand FILE BYTES KEYHEX: deterministic pseudo-random data (AES-128-CTR
# keystream over zeros; a distinct key per file keeps files unrelated).
rand() {
    head -c "$2" /dev/zero |
        openssl enc -aes-128-ctr -nosalt -K "$3" -iv 000102030405060708090a0b0c0d0e0f > "$1"
}

# text FILE LINES SEED: deterministic, compressible English-like text
# (Park-Miller generator: exact in double precision, so any awk agrees).
text() {
    awk -v lines="$2" -v seed="$3" 'BEGIN {
        n = split("the a block chunk image update slot root system partition " \
                  "kernel device boot verify signature manifest delta write read " \
                  "flash storage rollback install version release service daemon " \
                  "network config file data index hash table stream buffer apply " \
                  "is are was will should must may can not and or of to in for with", w, " ")
        x = seed % 2147483647; if (x <= 0) x = 1
        for (l = 1; l <= lines; l++) {
            x = (x * 16807) % 2147483647; k = 4 + x % 12
            s = sprintf("%05d", l)
            for (i = 0; i < k; i++) { x = (x * 16807) % 2147483647; s = s " " w[1 + x % n] }
            print s "."
        }
    }' > "$1"
}

# ima FILE: a security.ima-style value (IMA_XATTR_DIGEST_NG, sha256, digest).
ima() {
    setfattr -n security.ima -v "0x0404$(sha256sum "$1" | cut -d' ' -f1)" "$1"
}

# edit FILE SED-ARGS...: edit in place keeping the inode, so xattrs survive
# (sed -i writes a new file and drops them).
edit() {
    local f=$1 t
    shift
    t=$(mktemp -p "$WORK")
    sed "$@" "$f" > "$t"
    cat "$t" > "$f"
    rm -f "$t"
}

label() { setfattr -n security.selinux -v "$1" "$2"; }

# overwrite FILE OFFSET BYTES KEYHEX: overwrite bytes in the middle of a file.
overwrite() {
    head -c "$3" /dev/zero |
        openssl enc -aes-128-ctr -nosalt -K "$4" -iv 0f0e0d0c0b0a09080706050403020100 |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# --------------------------------------------------------------- v1 tree
build_v1() {
    local r=$1 a
    mkdir -p "$r"
    chmod 0755 "$r"
    mkdir -p "$r"/{bin,sbin,dev,proc,sys,run,tmp,root,var/log,var/lib/appd,mnt,data} \
             "$r"/etc/{init.d,appd.d,network} \
             "$r"/usr/{bin,sbin,lib/firmware,share/doc/appd,share/doc/busybox,share/appd} \
             "$r"/lib/modules/6.1.0-slot/kernel/drivers
    chmod 1777 "$r/tmp"
    chmod 0700 "$r/root"

    install -m 0755 "$BUSYBOX" "$r/bin/busybox"
    for a in sh ash ls cat cp mv rm mkdir rmdir ln echo grep sed awk ps kill \
             sleep vi mount umount dmesg df du free top tar gzip gunzip find \
             xargs sort uniq head tail wc chmod chown date hostname sync env \
             true false test uname; do
        ln -s busybox "$r/bin/$a"
    done
    for a in init getty ifconfig ip route reboot poweroff halt mdev udhcpc \
             syslogd klogd switch_root pivot_root modprobe insmod lsmod; do
        ln -s ../bin/busybox "$r/sbin/$a"
    done

    cat > "$r/etc/os-release" <<'EOF'
NAME="Slotsync Sample OS"
ID=slotsync-sample
PRETTY_NAME="Slotsync Sample OS 1.0"
VERSION="1.0 (sample)"
VERSION_ID=1.0
HOME_URL="https://example.invalid/slotsync"
EOF
    cat > "$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
appd:x:100:100:application daemon:/var/lib/appd:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat > "$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
appd:x:100:
nogroup:x:65534:
EOF
    cat > "$r/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
appd:!:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
    chmod 0640 "$r/etc/shadow"
    echo "slotsync-sample" > "$r/etc/hostname"
    cat > "$r/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	slotsync-sample
EOF
    cat > "$r/etc/fstab" <<'EOF'
/dev/root	/	squashfs	ro	0 0
proc		/proc	proc	defaults	0 0
sysfs		/sys	sysfs	defaults	0 0
tmpfs		/run	tmpfs	mode=0755,nosuid,nodev	0 0
tmpfs		/tmp	tmpfs	mode=1777,nosuid,nodev	0 0
/dev/data	/data	ext4	defaults,noatime	0 2
EOF
    cat > "$r/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
EOF
    cat > "$r/etc/init.d/rcS" <<'EOF'
#!/bin/sh
mount -a
hostname -F /etc/hostname
syslogd && klogd
mdev -s
/usr/bin/appd -c /etc/appd.conf &
EOF
    chmod 0755 "$r/etc/init.d/rcS"
    cat > "$r/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF
    cat > "$r/etc/appd.conf" <<'EOF'
# appd configuration
[server]
listen = 0.0.0.0:8080
workers = 4
log_level = info

[update]
channel = stable
check_interval = 3600
EOF
    cat > "$r/etc/appd.d/10-sensors.conf" <<'EOF'
[sensors]
poll_ms = 500
devices = temp0 temp1 fan0
EOF

    # Binaries and firmware: incompressible pseudo-random content.
    rand "$r/usr/lib/libslotcore.so.1"      3145728 00112233445566778899aabbccddeeff
    rand "$r/usr/bin/appd"                  1572864 0102030405060708090a0b0c0d0e0f10
    rand "$r/usr/lib/firmware/wifi-fw.bin"  1048576 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf
    rand "$r/lib/modules/6.1.0-slot/kernel/drivers/gpio-slot.ko" 131072 b0b1b2b3b4b5b6b7b8b9babbbcbdbebf
    rand "$r/lib/modules/6.1.0-slot/kernel/drivers/spi-slot.ko"  196608 c0c1c2c3c4c5c6c7c8c9cacbcccdcecf
    rand "$r/lib/modules/6.1.0-slot/kernel/drivers/legacy-uart.ko" 65536 d0d1d2d3d4d5d6d7d8d9dadbdcdddedf
    chmod 0755 "$r/usr/bin/appd" "$r/usr/lib/libslotcore.so.1"
    ln -s libslotcore.so.1 "$r/usr/lib/libslotcore.so"

    # Documentation and data: compressible text.
    text "$r/usr/share/doc/appd/manual.txt"     20000 11
    text "$r/usr/share/doc/appd/changelog.txt"   3000 12
    text "$r/usr/share/doc/busybox/README"       1500 13
    text "$r/usr/share/doc/appd/legacy-api.txt"  2500 14
    text "$r/usr/share/appd/messages.txt"        8000 15

    # Security labels, IMA-style digests and user attributes.  Each file's
    # attributes are set in name order (see the work directory note above).
    label system_u:object_r:root_t:s0           "$r"
    label system_u:object_r:etc_t:s0            "$r/etc"
    label system_u:object_r:etc_t:s0            "$r/etc/os-release"
    label system_u:object_r:etc_t:s0            "$r/etc/appd.conf"
    label system_u:object_r:shadow_t:s0         "$r/etc/shadow"
    label system_u:object_r:initrc_exec_t:s0    "$r/etc/init.d/rcS"
    label system_u:object_r:modules_object_t:s0 "$r/lib/modules/6.1.0-slot/kernel/drivers/gpio-slot.ko"
    ima "$r/bin/busybox"
    label system_u:object_r:bin_t:s0            "$r/bin/busybox"
    ima "$r/usr/bin/appd"
    label system_u:object_r:bin_t:s0            "$r/usr/bin/appd"
    setfattr -n user.component -v appd          "$r/usr/bin/appd"
    setfattr -n user.version   -v 1.0.0         "$r/usr/bin/appd"
    ima "$r/usr/lib/libslotcore.so.1"
    label system_u:object_r:lib_t:s0            "$r/usr/lib/libslotcore.so.1"
    setfattr -n user.component -v slotcore      "$r/usr/lib/libslotcore.so.1"
    label system_u:object_r:lib_t:s0            "$r/usr/lib/firmware/wifi-fw.bin"
    setfattr -n user.checksum  -v "$(sha256sum "$r/usr/lib/firmware/wifi-fw.bin" | cut -c1-16)" \
        "$r/usr/lib/firmware/wifi-fw.bin"
}

# --------------------------------------------------------------- v2 tree
# v1 plus the changes of a typical release.
build_v2() {
    local r=$1
    cp -a "$2" "$r"

    edit "$r/etc/os-release" -e 's/^VERSION_ID=1.0$/VERSION_ID=1.1/' \
        -e 's/^VERSION="1.0 (sample)"$/VERSION="1.1 (sample)"/' \
        -e 's/^PRETTY_NAME=.*/PRETTY_NAME="Slotsync Sample OS 1.1"/'

    # Binaries patched in place (same size, a few regions rewritten).
    overwrite "$r/usr/lib/libslotcore.so.1" 1048576 4096 1111111111111111aaaaaaaaaaaaaaaa
    overwrite "$r/usr/lib/libslotcore.so.1" 2097000  300 2222222222222222bbbbbbbbbbbbbbbb
    # A binary that grew: 64 KiB inserted in the middle.
    head -c 786432 "$2/usr/bin/appd" > "$r/usr/bin/appd"
    rand "$WORK/insert.bin" 65536 4444444444444444dddddddddddddddd
    cat "$WORK/insert.bin" >> "$r/usr/bin/appd"
    tail -c +786433 "$2/usr/bin/appd" >> "$r/usr/bin/appd"
    rm -f "$WORK/insert.bin"
    overwrite "$r/usr/bin/appd"             700000 1500 3333333333333333cccccccccccccccc

    # Text and configuration edits.
    edit "$r/etc/appd.conf" -e 's/^workers = 4$/workers = 8/' \
        -e 's/^channel = stable$/channel = stable-1.1/'
    printf '\n[metrics]\nenabled = true\n' >> "$r/etc/appd.conf"
    edit "$r/usr/share/doc/appd/manual.txt" -e '/^10000 /s/$/ (revised in 1.1)/' -e '/^15000 /d'
    {
        echo "appd 1.1.0: faster apply, new inference library, removed legacy uart driver."
        cat "$2/usr/share/doc/appd/changelog.txt"
    } > "$r/usr/share/doc/appd/changelog.txt"

    # Added files, including a new multi-MB library.
    rand "$r/usr/lib/libslotml.so.1" 2097152 5555555555555555eeeeeeeeeeeeeeee
    chmod 0755 "$r/usr/lib/libslotml.so.1"
    ln -s libslotml.so.1 "$r/usr/lib/libslotml.so"
    cat > "$r/etc/appd.d/20-metrics.conf" <<'EOF'
[metrics]
endpoint = /metrics
interval_s = 15
EOF
    text "$r/usr/share/doc/appd/migration-1.1.txt" 1200 21

    # Removed files.
    rm -f "$r/lib/modules/6.1.0-slot/kernel/drivers/legacy-uart.ko" \
          "$r/usr/share/doc/appd/legacy-api.txt" \
          "$r/sbin/pivot_root"

    # Attributes: relabel one file, refresh digests of changed binaries,
    # label the new library (name order, as in v1).
    label system_u:object_r:appd_exec_t:s0 "$r/usr/bin/appd"
    setfattr -n user.version -v 1.1.0      "$r/usr/bin/appd"
    ima "$r/usr/bin/appd"
    ima "$r/usr/lib/libslotcore.so.1"
    ima "$r/usr/lib/libslotml.so.1"
    label system_u:object_r:lib_t:s0       "$r/usr/lib/libslotml.so.1"
    setfattr -n user.component -v slotml   "$r/usr/lib/libslotml.so.1"
}

# ---------------------------------------------------------------- images
MKSQ_OPTS=(-noappend -reproducible -mkfs-time 0 -all-time 0 -all-root -xattrs
           -b 131072 -comp "${COMP:-zstd}" -quiet -no-progress)
if [ -n "${SAMPLE_MKSQ_OPTS:-}" ]; then
    read -r -a extra <<<"$SAMPLE_MKSQ_OPTS"
    MKSQ_OPTS+=("${extra[@]}")
fi
if [ "$UNCOMPRESSED" = 1 ]; then
    MKSQ_OPTS+=(-noI -noD -noF -noX)
fi

build_v1 "$WORK/v1"
build_v2 "$WORK/v2" "$WORK/v1"

# Each image appears whole or not at all (written aside, then renamed), v2
# last: a reader that sees sample-v2.sqfs sees the finished pair, even while
# another build runs into the same folder.
for v in v1 v2; do
    out="$OUTDIR/sample-$v$NAME_SUFFIX.sqfs"
    rm -f "$out.tmp"
    mksquashfs "$WORK/$v" "$out.tmp" "${MKSQ_OPTS[@]}" >/dev/null
    mv -f "$out.tmp" "$out"
done

for v in v1 v2; do
    out="$OUTDIR/sample-$v$NAME_SUFFIX.sqfs"
    printf '%s\t%s bytes\n' "$out" "$(stat -c %s "$out")"
done
