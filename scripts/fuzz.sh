#!/bin/bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs each for
# FUZZ_SECONDS (default 60), starting from a corpus of real indexes. A crash
# keeps its input in build-fuzz/crash-* and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
B=build-fuzz
CC=clang-14 cmake -S . -B $B -DSLOTSYNC_FUZZ=ON -DSLOTSYNC_TESTS=OFF -DSLOTSYNC_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build $B -j"$(nproc)" --target fuzz_index fuzz_journal slotsync-gen >/dev/null

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
echo "fuzz_index: $SECONDS_EACH s"
(cd $B && ./tests/fuzz/fuzz_index -max_total_time="$SECONDS_EACH" -max_len=65536 -print_final_stats=1 corpus-index 2>&1 |
	grep -E "Done|stat::number_of_executed_units|ERROR|SUMMARY|crash-" ) || { echo "fuzz: FAILED"; exit 1; }
mkdir -p $B/corpus-journal
echo "fuzz_journal: $SECONDS_EACH s"
(cd $B && ./tests/fuzz/fuzz_journal -max_total_time="$SECONDS_EACH" -max_len=4096 -print_final_stats=1 corpus-journal 2>&1 |
	grep -E "Done|stat::number_of_executed_units|ERROR|SUMMARY|crash-" ) || { echo "fuzz: FAILED"; exit 1; }
echo "fuzz: passed"
