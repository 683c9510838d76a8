#!/bin/bash
# The main job on its embedded default: install, build, then play a release
# update end to end on the sample images:
#   1. build sample root images v1 and v2 (images/build-sample.sh)
#   2. slotsync-gen make: chunk both into one store, one index each
#   3. slotsync-gen extract: rebuild v2 from v1 (the seed a device already has)
#      plus the store, and show how many bytes came from each
#   4. prove the result byte-exact
# WORK (default: out/demo) keeps the images, store and indexes for a look.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh
GEN=$PWD/build/slotsync-gen
WORK=${WORK:-$PWD/out/demo}
rm -rf "$WORK"
mkdir -p "$WORK"

echo
echo "== 1. sample releases"
bash images/build-sample.sh "$WORK" >/dev/null
ls -l "$WORK"/sample-v1.sqfs "$WORK"/sample-v2.sqfs | awk '{print "   " $9 ": " $5 " bytes"}'

echo "== 2. slotsync-gen make (one store for both releases)"
"$GEN" make --store "$WORK/store" "$WORK/sample-v1.sqfs" "$WORK/v1.caibx" | sed 's/^/   v1 /'
"$GEN" make --store "$WORK/store" "$WORK/sample-v2.sqfs" "$WORK/v2.caibx" | sed 's/^/   v2 /'

echo "== 3. rebuild v2 on a device that runs v1"
"$GEN" extract --store "$WORK/store" --seed "$WORK/sample-v1.sqfs:$WORK/v1.caibx" \
	"$WORK/v2.caibx" "$WORK/v2-rebuilt.sqfs" | tee "$WORK/extract.txt" | sed 's/^/   /'

echo "== 4. check"
cmp "$WORK/sample-v2.sqfs" "$WORK/v2-rebuilt.sqfs"
"$GEN" check --store "$WORK/store" --index "$WORK/v2.caibx" | sed 's/^/   /'
seed=$(sed -n 's/.*bytes: \([0-9]*\) bytes .* from seed.*/\1/p' "$WORK/extract.txt")
store=$(sed -n 's/.* \([0-9]*\) bytes ([0-9.]*%) from store.*/\1/p' "$WORK/extract.txt")
echo
echo "v2 rebuilt byte-exact: $seed bytes from the seed (v1), $store bytes from the store."
echo "Everything is in $WORK."
