#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Interoperability with Debian's casync, both ways:
#  - casync extract rebuilds images from our index and store (SHA-256 and
#    SHA-512/256 indexes);
#  - slotsync-gen extract rebuilds images from casync's index and store (its
#    default SHA-512/256 and --digest=sha256), with and without a seed.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
command -v casync >/dev/null || { echo "casync missing (scripts/install-deps.sh installs it)"; exit 1; }

# ours -> casync
$G make --store "$T/ours" "$V1" "$T/v1.caibx" >/dev/null
$G make --store "$T/ours" "$V2" "$T/v2.caibx" >/dev/null
casync extract --store="$T/ours" "$T/v2.caibx" "$T/c1.img"
check "casync extract of our SHA-256 index and store equals the image" cmp -s "$V2" "$T/c1.img"
casync extract --store="$T/ours" --seed="$V1" "$T/v2.caibx" "$T/c1s.img"
check "casync extract --seed of our index equals the image" cmp -s "$V2" "$T/c1s.img"
$G make --digest sha512-256 --store "$T/ours512" "$V2" "$T/v2-512.caibx" >/dev/null
casync extract --store="$T/ours512" "$T/v2-512.caibx" "$T/c2.img"
check "casync extract of our SHA-512/256 index equals the image" cmp -s "$V2" "$T/c2.img"
random_file "$T/rnd.img" 24 interop
$G make --store "$T/ours" "$T/rnd.img" "$T/rnd.caibx" >/dev/null
casync extract --store="$T/ours" "$T/rnd.caibx" "$T/c3.img"
check "casync extract of a 24 MiB random image equals it" cmp -s "$T/rnd.img" "$T/c3.img"

# casync -> ours
casync make --store="$T/theirs" "$T/cv1.caibx" "$V1" >/dev/null
casync make --store="$T/theirs" "$T/cv2.caibx" "$V2" >/dev/null
$G extract --store "$T/theirs" "$T/cv2.caibx" "$T/o1.img" >/dev/null
check "our extract of casync's default (SHA-512/256) index and store equals the image" cmp -s "$V2" "$T/o1.img"
$G extract --store "$T/theirs" --seed "$V1:$T/cv1.caibx" "$T/cv2.caibx" "$T/o2.img" >"$T/o2.txt"
check "our extract with a casync-indexed seed equals the image" cmp -s "$V2" "$T/o2.img"
seed_bytes=$(sed -n 's/.*bytes: \([0-9]*\) bytes.*from seed.*/\1/p' "$T/o2.txt")
check "the casync-indexed seed was used ($seed_bytes bytes)" test "$seed_bytes" -gt 0
casync make --digest=sha256 --store="$T/theirs256" "$T/cv2-256.caibx" "$V2" >/dev/null
$G extract --store "$T/theirs256" "$T/cv2-256.caibx" "$T/o3.img" >/dev/null
check "our extract of casync's --digest=sha256 index equals the image" cmp -s "$V2" "$T/o3.img"
casync make --store="$T/theirs" "$T/crnd.caibx" "$T/rnd.img" >/dev/null
$G extract --store "$T/theirs" "$T/crnd.caibx" "$T/o4.img" >/dev/null
check "our extract of casync's index of a random image equals it" cmp -s "$T/rnd.img" "$T/o4.img"
check "our store check accepts casync's store" $G check --store "$T/theirs" --index "$T/cv2.caibx"
"$SLOTSYNC_BIN" index-info "$T/cv2.caibx" >"$T/info.txt"
check "index-info reads casync's index" grep -q "SHA-512/256" "$T/info.txt"
finish
