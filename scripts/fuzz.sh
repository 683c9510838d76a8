#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 30, two targets at a time; SLOTSYNC_LONG=1 in scripts/test.sh: 1800), starting from a corpus of real indexes. A crash
# keeps its input in build-fuzz/crash-* and fails the run.  --build-only:
# build the targets and stop.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
B=build-fuzz
CC=clang-14 cmake -S . -B $B -DSLOTSYNC_FUZZ=ON -DSLOTSYNC_TESTS=OFF -DSLOTSYNC_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $B -j"$(nproc)" --target fuzz_index fuzz_index_diff fuzz_journal fuzz_manifest fuzz_delta fuzz_bootstate slotsync-gen slotsync-bootctl >/dev/null
# --build-only: the targets built, nothing run (scripts/test.sh builds them early)
[ "${1:-}" = --build-only ] && exit 0

# seed corpus: indexes made by slotsync-gen and by casync
corpus=$B/corpus-index
mkdir -p $corpus
if [ ! -e $corpus/.ready ]; then
	tmp=$(mktemp -d)
	head -c 3000000 /dev/urandom >"$tmp/img"
	$B/slotsync-gen make --chunk-size 1K:4K:16K "$tmp/img" $corpus/ours.caibx >/dev/null
	head -c 200000 "$tmp/img" >"$tmp/small"
	$B/slotsync-gen make --chunk-size 1K:4K:16K --digest sha512-256 "$tmp/small" $corpus/ours512.caibx >/dev/null
	if command -v casync >/dev/null; then
		casync make --store="$tmp/store" $corpus/casync.caibx "$tmp/small" >/dev/null
	fi
	: >"$tmp/empty"
	$B/slotsync-gen make "$tmp/empty" $corpus/empty.caibx >/dev/null
	rm -rf "$tmp"
	touch $corpus/.ready
fi
# seed corpus: diff contents (copy, new, copy) against the target's fixed base
mkdir -p $B/corpus-index-diff
python3 - $B/corpus-index-diff <<'PY'
import hashlib, os, struct, sys
d = sys.argv[1]
head = b"SSIDXD1\0" + bytes(32) + hashlib.sha256(b"new").digest() + struct.pack("<QQQQQI", 0, 64, 256, 1024, 4, 3)
ops = b"\0" + struct.pack("<II", 0, 2) + b"\1" + struct.pack("<I", 1) + struct.pack("<I", 100) + bytes(32) + b"\0" + struct.pack("<II", 10, 1)
open(os.path.join(d, "ops"), "wb").write(b"\1" + head + ops)
PY
mkdir -p $B/corpus-journal
# seed corpus: a real manifest, pointer and envelope, each behind its selector byte
mkdir -p $B/corpus-manifest
if [ ! -e $B/corpus-manifest/.ready ]; then
	printf '\000{"format": 1, "version": "2.0", "compatible": "radio-x86", "security_version": 3, "created": "2027-01-15T08:00:00Z", "expires": "2028-01-01T00:00:00Z", "image": {"size": 3145728, "sha256": "%s"}, "index": {"sha256": "%s"}, "stores": ["https://u/store"], "verity_root_hash": "ab12", "hooks": {"pre-install": "pre", "post-install": "post"}, "downgrade_allowed_to": "2.0"}' \
		"$(printf '%064d' 1)" "$(printf '%064d' 2)" >$B/corpus-manifest/manifest
	printf '\001{"format": 1, "version": 5, "expires": "2028-01-01T00:00:00Z", "bundle_url": "https://u/b", "bundle_sha256": "%s", "bundle_size": 9000, "compatible": "radio-x86"}' \
		"$(printf '%064d' 3)" >$B/corpus-manifest/pointer
	printf '\002SLOTSYNCBNDL\001\000\000\000\002\000\000\000\000\000\000\000\002\000\000\000\000\000\000\000\001\000\000\000\000\000\000\000{}ZSIG' >$B/corpus-manifest/envelope
	touch $B/corpus-manifest/.ready
fi
# a release with dm-verity (a slot image of 3 MiB: 3 MiB - 4 KiB of data, then the tree)
[ -e $B/corpus-manifest/manifest-verity ] ||
	printf '\000{"format": 1, "version": "2.0", "compatible": "radio-x86", "security_version": 3, "created": "2027-01-15T08:00:00Z", "image": {"size": 3145728, "sha256": "%s"}, "index": {"sha256": "%s"}, "stores": ["https://u/store"], "verity_root_hash": "%s", "verity": {"root_hash": "%s", "salt": "%s", "algorithm": "sha256", "data_size": 3141632, "hash_offset": 3141632, "data_block_size": 4096, "hash_block_size": 4096}}' \
		"$(printf '%064d' 1)" "$(printf '%064d' 2)" "$(printf '%064d' 4)" "$(printf '%064d' 4)" "$(printf '%064d' 5)" \
		>$B/corpus-manifest/manifest-verity
# seed corpus: real storage of each backend, written by slotsync-bootctl
C=$B/corpus-bootstate
if [ ! -e $C/.ready ]; then
	mkdir -p $C
	tmp=$(mktemp -d)
	$B/slotsync-bootctl --backend file --env "$tmp/state" init >/dev/null
	$B/slotsync-bootctl --backend file --env "$tmp/state" switch B >/dev/null
	$B/slotsync-bootctl --backend file --env "$tmp/state" --booted B mark-good >/dev/null
	{ printf '\000'; cat "$tmp/state"; } >$C/file
	grub-editenv "$tmp/grubenv" create
	$B/slotsync-bootctl --backend grub --env "$tmp/grubenv" init >/dev/null
	$B/slotsync-bootctl --backend grub --env "$tmp/grubenv" switch B >/dev/null
	{ printf '\001'; cat "$tmp/grubenv"; } >$C/grub
	head -c 512 /dev/zero >"$tmp/bb"
	printf 'backend = barebox\nenv = %s\nbarebox-magic = 0x4d433230\n' "$tmp/bb" >"$tmp/bb.conf"
	$B/slotsync-bootctl --config "$tmp/bb.conf" init >/dev/null
	$B/slotsync-bootctl --config "$tmp/bb.conf" switch B >/dev/null
	{ printf '\002'; cat "$tmp/bb"; } >$C/barebox
	printf 'BOOT_ORDER=B A\nBOOT_B_LEFT=3\nBOOT_A_OK=1\n' >"$tmp/u.txt"
	mkenvimage -r -s 0x400 -o "$tmp/u1" "$tmp/u.txt"
	{ printf '\003'; cat "$tmp/u1" "$tmp/u1"; } >$C/uboot
	{ printf '\004'; cat "$tmp/bb.conf"; } >$C/config
	rm -rf "$tmp"
	touch $C/.ready
fi
# seed corpus: a delta index made by slotsync-gen, a reference holding zstd
# frames, and records (bytes, then a frame of the fuzzer's reference content)
D=$B/corpus-delta
if [ ! -e $D/.ready ]; then
	mkdir -p $D
	tmp=$(mktemp -d)
	head -c 400000 /dev/urandom >"$tmp/a"
	{ head -c 100000 "$tmp/a"; head -c 5000 /dev/urandom; tail -c 300000 "$tmp/a"; } >"$tmp/b"
	$B/slotsync-gen make --no-progress --chunk-size 1K:4K:16K --store "$tmp/s" "$tmp/a" "$tmp/a.caibx" >/dev/null
	$B/slotsync-gen make --no-progress --chunk-size 1K:4K:16K --store "$tmp/s" "$tmp/b" "$tmp/b.caibx" >/dev/null
	$B/slotsync-gen delta --store "$tmp/s" --base "$tmp/a.caibx" --base-image "$tmp/a" "$tmp/b.caibx" "$tmp/b" >/dev/null
	{ printf '\000'; cat "$tmp"/s/deltas/*/*.sdix; } >$D/index
	{ printf '\001abc'; head -c 3000 /dev/zero | zstd -q -c; printf 'def'; seq 1 2000 | zstd -q -19 -c; } >$D/expand
	printf '\002\003\000\005\000\000\000hello\001\017\010\000\000\000\000\000\000\000\004\000\000\000\004\000\000\000abcd' >$D/records
	# the same index as serialized (SSDELTA2); a BLOCKS object: an empty map,
	# then a bytes record and a block record
	{ printf '\004'; zstd -q -d -c "$tmp"/s/deltas/*/*.sdix; } >$D/index-raw
	printf '\003\004\004\000\000\000\000\000\000\005\000\000\000hello\002\000\010\000\000\000\000\000\000\000\004\000\000\000\004\000\000\000abcd' >$D/blocks
	rm -rf "$tmp"
	touch $D/.ready
fi
# a BLOCKS object with residual records: one alignment, 10 bytes of records in
# one block predicted by nothing (a bytes record, "hello")
[ -e $D/blocks-residual ] ||
	printf '\005\003\001\000\000\000\000\012\000\000\000\377\000\005\000\000\000hello' >$D/blocks-residual

# a BLOCKS object of the deflate profile (second byte 3): an empty map, a
# bytes record and a deflate record (one block length, 2, of its 4 bytes)
[ -e $D/blocks-deflate ] ||
	printf '\003\003\004\000\000\000\000\000\000\005\000\000\000hello\003\000\010\000\000\000\000\000\000\000\004\000\000\000\004\000\000\000\001\000\000\000\002\000\000\000abcd' >$D/blocks-deflate

# records as an xz stream: a bytes record coded here (ZSTD_FRAMES, second
# byte even; BLOCKS of the gzip profile, odd), and the same records as an .xz
# stream sent after the magic
[ -e $D/records-xz ] ||
	printf '\006\002\000\005\000\000\000hello' >$D/records-xz
[ -e $D/records-xz-blocks ] ||
	printf '\006\003\000\005\000\000\000hello' >$D/records-xz-blocks
[ -e $D/records-xz-raw ] ||
	printf '\000\005\000\000\000hello' | xz --format=xz --check=none -c | tail -c +7 |
		{ printf '\007'; cat; } >$D/records-xz-raw

# a BLOCKS object with an inner deflate profile (lz4, the stream's right
# inflated size): a nested block record made of a bytes record, and one made
# of a bytes record and a deflate record
[ -e $D/blocks-nested ] ||
	printf '\010\002\200\004\000\006\000\000\000\000\000\000\000\006\000\000\000\005\000\000\000\000\005\000\000\000hello' >$D/blocks-nested
[ -e $D/blocks-nested-deflate ] ||
	printf '\010\002\200\004\000\014\000\000\000\000\000\000\000\014\000\000\000\013\000\000\000\000\005\000\000\000hello\003\001\006\000\000\000\000\000\000\000\006\000\000\000\004\000\000\000\000\000\000\000abcd' >$D/blocks-nested-deflate

# ...and in zstd blocks (level 3, the variant)
[ -e $D/blocks-nested-zstd ] ||
	printf '\010\003\200\004\003\006\000\000\000\000\000\000\000\006\000\000\000\005\000\000\000\000\005\000\000\000hello' >$D/blocks-nested-zstd

# the targets, two at a time (one per core): NAME:MAX_LEN:CORPUS
run_target() {
	local name=${1%%:*} rest=${1#*:}
	(cd $B && ./tests/fuzz/$name -max_total_time="$SECONDS_EACH" -max_len="${rest%%:*}" \
		-print_final_stats=1 "${rest#*:}") >"$B/$name.log" 2>&1
}
set -- \
	fuzz_index:65536:corpus-index \
	fuzz_index_diff:16384:corpus-index-diff \
	fuzz_journal:4096:corpus-journal \
	fuzz_manifest:8192:corpus-manifest \
	fuzz_bootstate:4096:corpus-bootstate \
	fuzz_delta:65536:corpus-delta
failed=0
while [ $# -gt 0 ]; do
	pids=() names=()
	for t in "$1" "${2:-}"; do
		[ -n "$t" ] || continue
		echo "${t%%:*}: $SECONDS_EACH s"
		run_target "$t" &
		pids+=($!) names+=("${t%%:*}")
	done
	shift $(( $# >= 2 ? 2 : 1 ))
	for i in "${!pids[@]}"; do
		st=0
		wait "${pids[$i]}" || st=$?
		grep -E "Done|stat::number_of_executed_units|ERROR|SUMMARY|crash-" "$B/${names[$i]}.log" | sed "s/^/${names[$i]}: /" || true
		[ "$st" = 0 ] || { echo "fuzz: ${names[$i]} FAILED (exit $st; its output: $B/${names[$i]}.log)"; failed=1; }
	done
done
[ "$failed" = 0 ] || { echo "fuzz: FAILED"; exit 1; }
echo "fuzz: passed"
