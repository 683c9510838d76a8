#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What a release costs the published store, and what installing it costs a
# device, for an image of MIB MiB (default 256):
#  - the images: a MIB MiB ext4 root filesystem made (mkfs.ext4 -d, fixed UUID,
#    hash seed and time) from the Debian tree of the realistic series, v1 from
#    debian-v1, v2 from debian-v2 (a real security/stable upgrade,
#    debian-upgrade.txt) and v3 from debian-v3 (v2 and 9 new packages with
#    their dependencies; images/build-realistic.sh), the rest of each
#    filesystem free;
#  - the build server's cycle for each release, as docs/publishing.md gives it:
#    make (the index kept as the next release's base), bundle --packs --detach-index
#    (v2: --delta-from v1), channel, publish --to a folder; each step timed, and
#    the files and bytes each release adds to the published folder, per kind;
#    v3 with delta files from both releases before it, as a fleet that still
#    runs both needs;
#  - devices install from that folder through nginx (HTTP/2 + TLS on
#    127.0.0.1) with slotsync install URL, file-backed slots: a full install
#    (the running slot holds nothing of the release and no index: factory, or a
#    slot far behind: pack objects; and the same from chunk files, slotsync
#    assemble --no-delta) and a delta install (the running slot holds v1 and its
#    index), and a delta install of v3 (the running slot holds v2); from
#    nginx's access log, the requests and bytes of each, per kind.
#   nice -n 19 bash bench/store-cost.sh [DIR]   (default /var/tmp/slotsync-bench-store-cost)
source "$(dirname "$0")/common.sh"
SLOTSYNC=${SLOTSYNC:-$ROOT/build/slotsync}
BOOTCTL=${BOOTCTL:-$ROOT/build/slotsync-bootctl}
MIB=${MIB:-256}
DIR=${1:-/var/tmp/slotsync-bench-store-cost}
realistic_images
export SLOTSYNC_GEN=$GEN SLOTSYNC_BIN=$SLOTSYNC SLOTSYNC_BOOTCTL=$BOOTCTL SLOTSYNC_SOURCE_DIR=$ROOT
source "$ROOT/tests/integration/lib.sh"
rm -rf "$DIR"
mkdir -p "$DIR/www"
CLEANUP+=("rm -rf '$DIR/tree1' '$DIR/tree2' '$DIR/tree3'")
machine_facts
echo "command: nice -n 19 bash bench/store-cost.sh (MIB=$MIB)"

# ---- the images -----------------------------------------------------------------
for v in 1 2 3; do
	unsquashfs -q -no-progress -d "$DIR/tree$v" "$IMAGES/debian-v$v.raw.sqfs" >/dev/null
	E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -b 4096 -U 6f1d2b3c-0000-4000-8000-00000000000$v \
		-E hash_seed=6f1d2b3c-0000-4000-8000-000000000000,lazy_itable_init=0,lazy_journal_init=0,nodiscard \
		-d "$DIR/tree$v" "$DIR/v$v.img" "${MIB}M" >/dev/null
	rm -rf "$DIR/tree$v"
done
used=$(du -sm --apparent-size "$IMAGES/debian-v2.raw.sqfs" | cut -f1)
echo "images: $MIB MiB ext4 of about $used MiB of files; v1 -> v2 = debian-v1 -> debian-v2, an upgrade ($(wc -l <"$IMAGES/debian-upgrade.txt") lines of debian-upgrade.txt); v2 -> v3 = debian-v3, a feature release ($(wc -l <"$IMAGES/debian-feature.txt") lines of debian-feature.txt)"

signing_ca "$DIR"
SIGN=(--signer-cert "$DIR/signer.pem" --signer-key "$DIR/signer.key")
start_nginx store "$DIR/www"
URL=$NGINX_URL
LOG=$NGINX_LOG

timed() { # timed LABEL CMD...: runs CMD, prints "LABEL: N.N s"
	local what=$1 t0
	shift
	t0=$(date +%s.%N)
	"$@" >"$DIR/out.txt" 2>&1 || { cat "$DIR/out.txt" >&2; return 1; }
	echo "  $what: $(echo "$(date +%s.%N) - $t0" | bc -l | xargs printf '%.1f') s"
}
kinds() { # kinds FILE-LIST: "N files, B bytes" in all, then per kind
	python3 - "$1" <<'PY'
import os, sys
kinds = {}
for p in open(sys.argv[1]).read().split():
    k = "index" if p.endswith(".caibx") else os.path.splitext(p)[1].lstrip(".") or os.path.basename(p)
    n, b = kinds.get(k, (0, 0))
    kinds[k] = (n + 1, b + os.path.getsize(p))
n = sum(v[0] for v in kinds.values()); b = sum(v[1] for v in kinds.values())
print(f"{n} files, {b} bytes ({b / 1048576:.1f} MiB):",
      ", ".join(f"{k} {v[0]} ({v[1]} bytes)" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1][1])))
PY
}

# ---- the build server: two releases -------------------------------------------------
B=$DIR/build
mkdir -p "$B"
release() { # release N [BASE]...
	local n=$1 b
	shift
	local delta=()
	for b in "$@"; do delta+=(--delta-from "$B/v$b.caibx:$DIR/v$b.img"); done
	echo "release $n${1:+ (delta from $*)}:"
	find "$DIR/www" -type f | sort >"$DIR/before.txt"
	touch "$DIR/mark"
	timed "make" "$GEN" make --no-progress --store "$B/store" "$DIR/v$n.img" "$B/v$n.caibx"
	timed "bundle --packs --detach-index${1:+ --delta-from x$#}" "$GEN" bundle --no-progress --store "$B/store" \
		--store-url "$URL/store" --image "$DIR/v$n.img" --version "$n.0" --compatible bench "${delta[@]}" \
		--packs --detach-index "${SIGN[@]}" "$B/v$n.bundle"
	timed "channel" "$GEN" channel --bundle-url "v$n.bundle" --bundle "$B/v$n.bundle" --version "$n" \
		--expires @4000000000 --compatible bench "${SIGN[@]}" "$B/channel"
	timed "publish --to DIR" "$GEN" publish --store "$B/store" --bundle "$B/v$n.bundle" --pointer "$B/channel" \
		--to "$DIR/www"
	find "$DIR/www" -type f | sort >"$DIR/after.txt"
	comm -13 "$DIR/before.txt" "$DIR/after.txt" >"$DIR/added.txt"
	echo "  added to the published folder: $(kinds "$DIR/added.txt")"
	find "$DIR/www" -type f -newer "$DIR/mark" | sort | comm -23 - "$DIR/added.txt" >"$DIR/rewritten.txt"
	[ ! -s "$DIR/rewritten.txt" ] || echo "  rewritten in place: $(kinds "$DIR/rewritten.txt")"
}
release 1
release 2 1
find "$DIR/www" -type f >"$DIR/all.txt"
echo "published folder after two releases: $(kinds "$DIR/all.txt")"
release 3 1 2
find "$DIR/www" -type f >"$DIR/all.txt"
echo "published folder after three releases: $(kinds "$DIR/all.txt")"

# ---- two devices install v2 through nginx ------------------------------------------------
device() { # device DIR SLOT-A-IMAGE [BASE-INDEX]
	local d=$1
	mkdir -p "$d/state"
	cp "$2" "$d/slot-a.img"
	truncate -s "${MIB}M" "$d/slot-b.img"
	echo "slotsync.slot=A" >"$d/cmdline"
	cat >"$d/system.conf" <<CONF
[system]
compatible = bench
state-dir = $d/state
keyring = $DIR/ca.pem
[boot]
backend = file
env = $d/state/boot.state
cmdline = $d/cmdline
[update]
store = $URL/store
ca-file = $T/test-ca.pem
[slot.A]
device = $d/slot-a.img
[slot.B]
device = $d/slot-b.img
CONF
	"$BOOTCTL" --backend file --env "$d/state/boot.state" init >/dev/null
	echo '{"A": {"status": "good", "version": "1.0"}}' >"$d/state/slots.json"
	[ -z "${3:-}" ] || cp "$3" "$d/state/slot-A.caibx"
}
requests() { # requests: from nginx's log, requests and body bytes in all and per kind
	awk '{ u = $5; k = u; sub(/.*\./, "", k); if (u ~ /\.caibx$/) k = "index"
	       n[k]++; b[k] += $4; N++; B += $4; if ($3 != 200) bad++ }
	     END { printf "%d requests, %d bytes (%.1f MiB)", N, B, B / 1048576
	           for (k in n) printf "; %s %d (%d bytes)", k, n[k], b[k]
	           if (bad) printf "; %d not 200", bad
	           printf "\n" }' "$LOG"
}
install_v() { # install_v N LABEL DIR: install release N
	local n=$1
	shift
	: >"$LOG"
	timed "$1: slotsync install $URL/v$n.bundle" "$SLOTSYNC" install --no-progress --config "$2/system.conf" "$URL/v$n.bundle"
	cmp -s "$DIR/v$n.img" <(head -c "$(stat -c %s "$DIR/v$n.img")" "$2/slot-b.img") ||
		{ echo "$1: slot B is not v$n" >&2; exit 1; }
	echo "  $1, byte-exact: $(requests)"
}
head -c "${MIB}M" /dev/urandom >"$DIR/foreign.img"
device "$DIR/full" "$DIR/foreign.img"
rm -f "$DIR/foreign.img"
install_v 2 "full install (the running slot holds nothing of v2, no index)" "$DIR/full"
rm -rf "$DIR/full"
# the same without the packs: one request per chunk file
: >"$LOG"
timed "full install from chunk files: slotsync assemble --no-delta" "$SLOTSYNC" assemble -q \
	--store "$URL/store" --ca-file "$T/test-ca.pem" --no-delta "$B/v2.caibx" "$DIR/chunks.img"
cmp -s "$DIR/v2.img" "$DIR/chunks.img" || { echo "assemble --no-delta: not v2" >&2; exit 1; }
rm -f "$DIR/chunks.img" "$DIR/chunks.img.journal"
echo "  full install from chunk files, byte-exact: $(requests)"
device "$DIR/delta" "$DIR/v1.img" "$B/v1.caibx"
install_v 2 "delta install (the running slot holds v1 and its index)" "$DIR/delta"
rm -rf "$DIR/delta"
device "$DIR/delta3" "$DIR/v2.img" "$B/v2.caibx"
install_v 3 "delta install of v3 (the running slot holds v2 and its index)" "$DIR/delta3"
rm -rf "$DIR/delta3"
