#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# make + extract round trips on the sample releases: seeds with and without an
# index, reproducible indexes, the same index whatever the thread count, dedup
# across releases.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN

$G make --store "$T/store" "$V1" "$T/v1.caibx" >"$T/make1.txt"
$G make --store "$T/store" "$V2" "$T/v2.caibx" >"$T/make2.txt"
check "make v1 reports every chunk new" grep -qE "make: ([0-9]+) chunks, \1 new" "$T/make1.txt"
new2=$(sed -n 's/.* chunks, \([0-9]*\) new.*/\1/p' "$T/make2.txt")
all2=$(sed -n 's/make: \([0-9]*\) chunks.*/\1/p' "$T/make2.txt")
check "make v2 stores only chunks v1 lacks ($new2 of $all2)" test "$new2" -lt "$all2" -a "$new2" -gt 0

$G extract --store "$T/store" "$T/v2.caibx" "$T/a.img" >/dev/null
check "extract from store alone is byte-exact" cmp -s "$V2" "$T/a.img"

$G extract --store "$T/store" --seed "$V1:$T/v1.caibx" "$T/v2.caibx" "$T/b.img" >"$T/ex.txt"
check "extract with an indexed seed is byte-exact" cmp -s "$V2" "$T/b.img"
seed_bytes=$(sed -n 's/.*bytes: \([0-9]*\) bytes.*from seed.*/\1/p' "$T/ex.txt")
check "the seed provided most of the image ($seed_bytes bytes)" [ "$seed_bytes" -gt $(($(stat -c %s "$V2") / 2)) ]

$G extract --store "$T/store" --seed "$V1" "$T/v2.caibx" "$T/c.img" >"$T/ex2.txt"
check "extract with a seed chunked on the fly is byte-exact" cmp -s "$V2" "$T/c.img"
seed2=$(sed -n 's/.*bytes: \([0-9]*\) bytes.*from seed.*/\1/p' "$T/ex2.txt")
check "on-the-fly seed finds the same chunks as the indexed one" [ "$seed2" = "$seed_bytes" ]

# A seed named by a stable device path, colons and all, with --seed-index.
cp "$V1" "$T/pci-0000:00:1f.2-ata-1"
$G extract --store "$T/store" --seed "$T/pci-0000:00:1f.2-ata-1" --seed-index "$T/v1.caibx" "$T/v2.caibx" "$T/k.img" \
	>"$T/ex3.txt" 2>&1
seed3=$(sed -n 's/.*bytes: \([0-9]*\) bytes.*from seed.*/\1/p' "$T/ex3.txt")
check "extract with a colon-named seed and --seed-index is byte-exact, the seed used ($seed3 bytes)" \
	bash -c "cmp -s '$V2' '$T/k.img' && [ '$seed3' = '$seed_bytes' ]"
$G extract --store "$T/store" --seed "$T/pci-0000:00:1f.2-ata-1" "$T/v2.caibx" "$T/k2.img" >/dev/null 2>&1
check "... and without its index" cmp -s "$V2" "$T/k2.img"
expect_fail "--seed-index with no --seed before it" "must follow a --seed" \
	$G extract --store "$T/store" --seed-index "$T/v1.caibx" "$T/v2.caibx" "$T/x.img"

# A store given as a URL is refused, and nothing is made in the working
# directory (it once became a folder "s3:" there); a folder of that name is
# reached as ./s3://...
expect_fail "make --store s3://... is refused: a store is a local folder" "is a URL, not a folder" \
	bash -c 'cd "$1" && exec "$2" make --store s3://bucket/store "$3" url.caibx' _ "$T" "$G" "$V1"
check "... and neither a folder s3: nor the index was made" bash -c "[ ! -e '$T/s3:' ] && [ ! -e '$T/url.caibx' ]"
expect_fail "delta --store s3://... is refused" "is a URL, not a folder" \
	$G delta --store s3://bucket/store --base "$T/v1.caibx" --base-image "$V1" "$T/v2.caibx" "$V2"
expect_fail "check --store https://... is refused" "is a URL, not a folder" $G check --store https://cdn.example/store
expect_fail "prune --store s3://... is refused" "is a URL, not a folder" \
	$G prune --store s3://bucket/store --keep "$T/v1.caibx"
(cd "$T" && $G make --store ./s3://bucket/store "$V1" url.caibx >/dev/null 2>&1)
check "a local folder of that name is reached as ./s3://..." test -d "$T/s3:/bucket/store"

# Chunks missing from the store but present in the seed: extract still works.
rm -rf "$T/store2"
$G make --store "$T/store2" "$V2" "$T/v2b.caibx" >/dev/null
check "the index does not depend on the store" cmp -s "$T/v2.caibx" "$T/v2b.caibx"
$G make --threads 1 "$V2" "$T/v2-t1.caibx" >/dev/null
$G make --threads 7 "$V2" "$T/v2-t7.caibx" >/dev/null
check "same index with 1 and 7 threads" cmp -s "$T/v2-t1.caibx" "$T/v2-t7.caibx"
check "same index with and without a store" cmp -s "$T/v2-t1.caibx" "$T/v2.caibx"

$G make --chunk-size 16K:64K:256K --store "$T/store3" "$V2" "$T/v2-64k.caibx" >/dev/null
$G extract --store "$T/store3" "$T/v2-64k.caibx" "$T/d.img" >/dev/null
check "non-default chunk sizes round-trip" cmp -s "$V2" "$T/d.img"
$G make --digest sha512-256 --store "$T/store4" "$V2" "$T/v2-512.caibx" >/dev/null
$G extract --store "$T/store4" "$T/v2-512.caibx" "$T/e.img" >/dev/null
check "SHA-512/256 indexes round-trip" cmp -s "$V2" "$T/e.img"
"$SLOTSYNC_BIN" index-info "$T/v2-512.caibx" >"$T/info.txt"
check "index-info names the digest" grep -q "SHA-512/256" "$T/info.txt"

# An empty image gives an empty index and extracts to an empty file.
: >"$T/empty.img"
$G make --store "$T/store" "$T/empty.img" "$T/empty.caibx" >/dev/null
$G extract --store "$T/store" "$T/empty.caibx" "$T/empty.out" >/dev/null
check "empty image round-trips" cmp -s "$T/empty.img" "$T/empty.out"

check "store check passes" $G check --store "$T/store" --index "$T/v2.caibx"
finish
