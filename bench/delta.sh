#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Delta objects against the peers, on the realistic pairs of images/
# (build-realistic.sh): security = v1 -> v2 (apt-get upgrade), feature = v2 -> v3
# (9 packages added), each as uncompressed and as zstd squashfs.
#
# For every pair, bytes a device downloads to go from the old image to the new:
#   slotsync chunks   the compressed chunks the old image lacks (16 KiB average)
#   slotsync delta    delta index + delta objects + chunks no object covers
#   index             the caibx index of the new release, part of its signed
#                     bundle, fetched in both slotsync cases, listed apart
#   casync            casync make --chunk-size=16384 on both, chunks of new not in old
#   xdelta3 -9, zstd -19 --long --patch-from, bsdiff   their patch files
# and the cost of making and applying them: wall time and peak RSS of
# slotsync-gen delta (all cores) and of bsdiff; of the device's slotsync
# assemble with the old image as its seed (over HTTP from 127.0.0.1, the
# target a file) and of bspatch.
#
#   bash bench/delta.sh            prints a markdown table (docs/benchmarks.md)
set -euo pipefail
source "$(dirname "$0")/common.sh"
realistic_images
[ -s "$IMAGES/debian-v3.raw.sqfs" ] || bash "$ROOT/images/build-realistic.sh" "$IMAGES" >&2
W=$(mktemp -d "${TMPDIR:-/var/tmp}/slotsync-bench-delta.XXXXXX")
trap 'rm -rf "$W"' EXIT
SLOTSYNC=${SLOTSYNC:-$ROOT/build/slotsync}

# peak RSS (MiB) and wall seconds of a command: "SECONDS MIB"
measure() {
	/usr/bin/time -f '%e %M' -o "$W/time" "$@" >"$W/out" 2>&1 || { cat "$W/out" >&2; return 1; }
	awk '{printf "%.1f %.0f\n", $1, $2 / 1024}' "$W/time"
}

# bytes of the chunk files (casync's store layout, ours too) of the chunks of
# NEW.caibx that OLD.caibx lacks
casync_bytes() {
	python3 - "$1" "$2" "$3" <<'PY'
import os, sys
def ids(p):
    b = open(p, "rb").read()
    items = b[64:len(b) - 40]
    return [items[i + 8:i + 40].hex() for i in range(0, len(items), 40)]
old, new, store = sys.argv[1:4]
have = set(ids(old))
seen, total = set(), 0
for h in ids(new):
    if h in have or h in seen:
        continue
    seen.add(h)
    total += os.path.getsize(f"{store}/{h[:4]}/{h}.cacnk")
print(total)
PY
}

echo "# delta objects vs peers"
machine_facts
echo
PORT=18931
python3 -m http.server $PORT --bind 127.0.0.1 --directory "$W" >/dev/null 2>&1 &
HTTP_PID=$!
trap 'kill $HTTP_PID 2>/dev/null; rm -rf "$W"' EXIT
printf '| pair | image | slotsync chunks | slotsync delta | index | casync | xdelta3 -9 | zstd --patch-from | bsdiff | slotsync-gen delta: s, MiB | bsdiff: s, MiB | slotsync apply: s, MiB | bspatch: s, MiB |\n'
printf '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for kind in raw zstd; do
	ext=$([ $kind = raw ] && echo .raw.sqfs || echo .sqfs)
	for pair in "security 1 2" "feature 2 3"; do
		set -- $pair
		name=$1 old=$IMAGES/debian-v$2$ext new=$IMAGES/debian-v$3$ext
		rm -rf "$W/store" "$W/cstore"
		"$GEN" make --no-progress --store "$W/store" "$old" "$W/old.caibx" >/dev/null
		"$GEN" make --no-progress --store "$W/store" "$new" "$W/new.caibx" >/dev/null
		# the chunks a device lacks: compressed sizes of new chunks not in old
		plain=$(casync_bytes "$W/old.caibx" "$W/new.caibx" "$W/store")
		bundle=$(stat -c %s "$W/new.caibx")
		gen=$(measure "$GEN" delta --store "$W/store" --base "$W/old.caibx" --base-image "$old" "$W/new.caibx" "$new")
		delta=$(sed -n 's/.*download \([0-9]*\) bytes.*/\1/p' "$W/out")
		casync make --chunk-size=16384 --store="$W/cstore" "$W/cold.caibx" "$old" >/dev/null
		casync make --chunk-size=16384 --store="$W/cstore" "$W/cnew.caibx" "$new" >/dev/null
		cas=$(casync_bytes "$W/cold.caibx" "$W/cnew.caibx" "$W/cstore")
		xdelta3 -9 -f -e -s "$old" "$new" "$W/p.xd3"
		zstd -19 --long=27 -q -f --patch-from="$old" "$new" -o "$W/p.zst" 2>/dev/null
		rm -f "$W/t.img" "$W/t.img.journal"
		sdix=deltas/$(sha256sum "$W/old.caibx" | cut -c1-64)/$(sha256sum "$W/new.caibx" | cut -c1-64).sdix
		app=$(measure "$SLOTSYNC" assemble --store "http://127.0.0.1:$PORT/store" --allow-plain-http \
			--delta-index "http://127.0.0.1:$PORT/store/$sdix" --seed "$old" --seed-index "$W/old.caibx" \
			"$W/new.caibx" "$W/t.img")
		cmp -s "$new" "$W/t.img" || { echo "slotsync assemble: the result differs" >&2; exit 1; }
		bs=$(measure bsdiff "$old" "$new" "$W/p.bsdiff")
		bp=$(measure bspatch "$old" "$W/t2.img" "$W/p.bsdiff")
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$kind" "$plain" "$delta" "$bundle" \
			"$cas" "$(stat -c %s "$W/p.xd3")" "$(stat -c %s "$W/p.zst")" "$(stat -c %s "$W/p.bsdiff")" "${gen/ /, }" \
			"${bs/ /, }" "${app/ /, }" "${bp/ /, }"
	done
done
