#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A device built without liblzma (scripts/build-configs.sh runs this with the
# minimal configuration's slotsync) and a delta index whose objects code new
# content as xz (made by a slotsync-gen with liblzma): those objects are left
# out before the download, their chunks fetched instead, the image
# byte-exact, and the result says why.
#   bash tests/integration/delta_without_xz.sh SLOTSYNC_GEN SLOTSYNC
set -euo pipefail
GEN=$1
DEV=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "delta_without_xz: $*" >&2; exit 1; }

python3 - "$T" <<'PY'
import os, random, sys
out = sys.argv[1]
r = random.Random(5)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 10))) for _ in range(4000)]
def text(seed, n):
    rr = random.Random(seed)
    return "\n".join(" ".join(rr.choice(words) for _ in range(rr.randrange(3, 14))) for _ in range(n // 50)) + "\n"
for v in ("v1", "v2"):
    for i in range(8):
        p = os.path.join(out, v, f"doc/f{i}")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").write(text(i, 60000))
    if v == "v2":
        # a program the release adds: machine code like nothing in the base
        os.makedirs(os.path.join(out, v, "bin"), exist_ok=True)
        open(os.path.join(out, v, "bin/new"), "wb").write(open("/bin/bash", "rb").read())
PY
for v in v1 v2; do
	mksquashfs "$T/$v" "$T/$v.sqfs" -noappend -reproducible -mkfs-time 0 -all-time 0 -all-root -no-xattrs -quiet \
		-no-progress -comp zstd >/dev/null
	"$GEN" make --no-progress --store "$T/store" "$T/$v.sqfs" "$T/$v.caibx" >/dev/null
done
"$GEN" delta --store "$T/store" --base "$T/v1.caibx" --base-image "$T/v1.sqfs" "$T/v2.caibx" "$T/v2.sqfs" >"$T/gen.txt"
grep -q "[1-9][0-9]* with xz records" "$T/gen.txt" || fail "no object with xz records: $(head -n1 "$T/gen.txt")"
SDIX=$T/store/$(sed -n "s|^delta: index $T/store/||p" "$T/gen.txt")
"$DEV" assemble -q --store "$T/store" --seed "$T/v1.sqfs:$T/v1.caibx" --delta-index "$SDIX" --json "$T/v2.caibx" \
	"$T/out.img" >"$T/d.json"
cmp -s "$T/v2.sqfs" "$T/out.img" || fail "the image is not byte-exact"
python3 - "$T/d.json" <<'PY' || fail "$(cat "$T/d.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["delta_objects_skipped"] > 0, "no object left out"
assert "liblzma" in d["delta_note"], "the note does not say why"
assert d["delta_objects_failed"] == 0, "an object was fetched and failed"
print(f"== a device without liblzma: {d['delta_objects_skipped']} objects with xz records left out "
      f"({d['delta_note']}), their chunks fetched, byte-exact")
PY
