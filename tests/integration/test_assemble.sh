#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync assemble against a real nginx over HTTP/2 + TLS: byte-exact results,
# one connection for every chunk, seeds, dry runs, JSON, journals, block devices,
# chunks that occur several times fetched once.
source "$(dirname "$0")/lib.sh"
sample_images
G=$SLOTSYNC_GEN
S=$SLOTSYNC_BIN
$G make --store "$T/www/store" "$V1" "$T/v1.caibx" >/dev/null
$G make --store "$T/www/store" "$V2" "$T/v2.caibx" >/dev/null
start_nginx main "$T/www"
URL=$NGINX_URL/store
A=(--store "$URL" --ca-file "$T/test-ca.pem")

# --- dry run: the plan, nothing written, nothing fetched
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --dry-run "$T/v2.caibx" "$T/dry.img" >"$T/dry.txt"
check "dry run prints the plan" grep -qE "^plan: [0-9]+ chunks .* from the network: [0-9]+ chunks \([0-9]+ bytes" "$T/dry.txt"
check "dry run writes no target" test ! -e "$T/dry.img" -a ! -e "$T/dry.img.journal"
# (a seed with its index is a base, but no --delta-index names a delta index:
# the store is not asked for one)
check "dry run fetches nothing: no request at all, not even for a delta index" \
	test "$(wc -l <"$NGINX_LOG")" = 0
: >"$NGINX_LOG"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --dry-run --json "$T/v2.caibx" "$T/dry.img" >"$T/dry.json"
dry_chunks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks_to_fetch"])' "$T/dry.json")

# --- with a seed: byte-exact, the plan's chunks fetched, all over one HTTP/2 connection
: >"$NGINX_LOG"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/a.img" >"$T/a.json"
grep '\.cacnk$' "$NGINX_LOG" >"$T/chunks.log"
check "nothing but chunks was asked for (no delta index: none was named)" \
	test "$(grep -vc '\.cacnk$' "$NGINX_LOG")" = 0
check "assemble with a seed is byte-exact" cmp -s "$V2" "$T/a.img"
py() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
check "json has the fields" test "$(py "$T/a.json" '",".join(str(k in d) for k in ["chunks_total","chunks_from_seed","chunks_fetched","bytes_fetched","bytes_written","seconds"])')" = "True,True,True,True,True,True"
check "json says verified" test "$(py "$T/a.json" 'd["verified"]')" = True
fetched=$(py "$T/a.json" 'd["chunks_fetched"]')
check "fetched exactly the chunks the dry run announced ($fetched = $dry_chunks)" test "$fetched" = "$dry_chunks"
check "chunk requests in the server log = chunks fetched" test "$(wc -l <"$T/chunks.log")" = "$fetched"
check "every request was HTTP/2" test "$(awk '$1 != "HTTP/2.0"' "$NGINX_LOG" | wc -l)" = 0
check "all chunks came over one TCP connection" test "$(awk '{print $2}' "$T/chunks.log" | sort -u | wc -l)" = 1
check "every chunk response was 200" test "$(awk '$3 != 200' "$T/chunks.log" | wc -l)" = 0
# every byte received counts
log_bytes=$(awk '{s += $4} END {print s}' "$NGINX_LOG")
check "bytes_fetched matches what the server sent ($log_bytes)" test "$(py "$T/a.json" 'd["bytes_fetched"]')" = "$log_bytes"

# --- running it again: the journal proves everything durable; nothing fetched
: >"$NGINX_LOG"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --json "$T/v2.caibx" "$T/a.img" >"$T/again.json"
check "a finished assemble run again fetches nothing" test ! -s "$NGINX_LOG"
check "... and verifies again" test "$(py "$T/again.json" 'd["verified"]')" = True

# --- a seed without an index, chunked on the fly
$S assemble "${A[@]}" --seed "$V1" "$T/v2.caibx" "$T/b.img" >/dev/null
check "assemble with an unindexed seed is byte-exact" cmp -s "$V2" "$T/b.img"

# --- no seed: everything over the network
$S assemble "${A[@]}" "$T/v2.caibx" "$T/c.img" >/dev/null
check "assemble with no seed is byte-exact" cmp -s "$V2" "$T/c.img"

# --- a seed that changed since it was indexed: the bad chunks are fetched, counted
cp "$V1" "$T/v1-changed.img"
# damage a chunk that v1 and v2 share: a chunk of v2 that the seed would provide
off=$(python3 - "$T/v1.caibx" "$T/v2.caibx" <<'PY'
import sys
def items(p):
    b = open(p, 'rb').read()
    out, prev = [], 0
    for i in range(64, len(b) - 40, 40):
        end = int.from_bytes(b[i:i+8], 'little'); out.append((prev, end, b[i+8:i+40])); prev = end
    return out
v2 = {cid for _, _, cid in items(sys.argv[2])}
for start, end, cid in items(sys.argv[1]):
    if cid in v2 and end - start > 1000:
        print(start + 100); break
PY
)
printf 'DAMAGED' | dd of="$T/v1-changed.img" bs=1 seek="$off" conv=notrunc 2>/dev/null
sha_before=$(sha256sum <"$T/v1-changed.img")
$S assemble "${A[@]}" --seed "$T/v1-changed.img:$T/v1.caibx" --json "$T/v2.caibx" "$T/d.img" >"$T/d.json" 2>"$T/d.err"
check "a changed seed still gives a byte-exact target" cmp -s "$V2" "$T/d.img"
check "the damaged seed chunk was counted" test "$(py "$T/d.json" 'd["seed_chunks_rejected"]')" -ge 1
check "... and reported" grep -q "failed its SHA-256 check" "$T/d.err"
check "the seed was not written" test "$(sha256sum <"$T/v1-changed.img")" = "$sha_before"

# --- a journal that belongs to another index or target
$G make "$V1" "$T/v1only.caibx" >/dev/null
expect_fail "a journal of another index is refused" "belongs to another index" \
	$S assemble "${A[@]}" --journal "$T/a.img.journal" "$T/v1only.caibx" "$T/a.img"
cp "$T/a.img" "$T/e.img"
expect_fail "a journal of another target is refused" "belongs to another target" \
	$S assemble "${A[@]}" --journal "$T/a.img.journal" "$T/v2.caibx" "$T/e.img"
$S assemble "${A[@]}" --journal "$T/a.img.journal" --reset-journal "$T/v1only.caibx" "$T/a.img" >/dev/null
check "--reset-journal starts anew" cmp -s "$V1" "$T/a.img"
printf 'garbage' >"$T/garbage.journal"
expect_fail "a file that is not a journal is refused" "not a slotsync journal" \
	$S assemble "${A[@]}" --journal "$T/garbage.journal" "$T/v2.caibx" "$T/f.img"

# --- a target whose content was damaged after it was journaled: verification catches it
printf 'XXXX' | dd of="$T/c.img" bs=1 seek=5000 conv=notrunc 2>/dev/null
expect_fail "a damaged target fails verification" "does not match the index" \
	$S assemble "${A[@]}" "$T/v2.caibx" "$T/c.img"
$S assemble "${A[@]}" "$T/v2.caibx" "$T/c.img" >/dev/null
check "the next run rewrites the damaged chunk" cmp -s "$V2" "$T/c.img"

# --- a block device (loop) as the target
truncate -s 16M "$T/disk.img"
if loop=$(losetup -f --show "$T/disk.img" 2>/dev/null) && [ -b "$loop" ]; then
	CLEANUP+=("losetup -d $loop")
	expect_fail "a block device needs --journal" "give --journal" $S assemble "${A[@]}" "$T/v2.caibx" "$loop"
	$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --journal "$T/loop.journal" "$T/v2.caibx" "$loop" >/dev/null
	check "assemble onto a loop device is byte-exact" cmp -s -n "$(stat -c %s "$V2")" "$V2" "$loop"
	truncate -s 1M "$T/small.img"
	small=$(losetup -f --show "$T/small.img")
	CLEANUP+=("losetup -d $small")
	expect_fail "a block device too small for the image is refused" "the image needs" \
		$S assemble "${A[@]}" --journal "$T/small.journal" "$T/v2.caibx" "$small"
else
	not_ok "no loop device available"
fi

# --- a chunk that occurs many times in the image is fetched once
random_file "$T/blk" 1 rep
{ for _ in $(seq 12); do cat "$T/blk"; done; } >"$T/rep.img"
$G make --store "$T/www/store" "$T/rep.img" "$T/rep.caibx" >/dev/null
: >"$NGINX_LOG"
$S assemble "${A[@]}" --json "$T/rep.caibx" "$T/rep.out" >"$T/rep.json"
check "repeated chunks: byte-exact" cmp -s "$T/rep.img" "$T/rep.out"
uniq_ids=$(python3 - "$T/rep.caibx" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
print(len({b[i+8:i+40] for i in range(64, len(b) - 40, 40)}))
PY
)
total=$(py "$T/rep.json" 'd["chunks_total"]')
check "repeated chunks fetched once: $(wc -l <"$NGINX_LOG") requests for $uniq_ids distinct of $total chunks" \
	test "$(wc -l <"$NGINX_LOG")" = "$uniq_ids" -a "$uniq_ids" -lt "$total"

# --- --max-rate caps the bandwidth over all streams
rm -f "$T/c.img" "$T/c.img.journal"
$S assemble "${A[@]}" --seed "$V1:$T/v1.caibx" --max-rate 1000000 --json "$T/v2.caibx" "$T/c.img" >"$T/rate.json"
rate_bytes=$(py "$T/rate.json" 'd["bytes_fetched"]')
rate_secs=$(py "$T/rate.json" 'int(d["seconds"] * 1000)')
check "--max-rate 1000000: $rate_bytes bytes took $rate_secs ms (at most about 1 MB/s)" \
	test $((rate_bytes * 1000 / (rate_secs + 1))) -le 1150000
check "--max-rate result is byte-exact" cmp -s "$V2" "$T/c.img"

# --- bad arguments
expect_fail "missing TARGET" "needs INDEX and TARGET" $S assemble "${A[@]}" "$T/v2.caibx"
# --- a seed named by a stable device path, colons and all
cp "$V1" "$T/pci-0000:00:1f.2-ata-1"
$S assemble "${A[@]}" --seed "$T/pci-0000:00:1f.2-ata-1" "$T/v2.caibx" "$T/colon1.img" >"$T/colon1.out" 2>&1
check "a seed whose path has colons, without its index: byte-exact" cmp -s "$V2" "$T/colon1.img"
$S assemble "${A[@]}" --seed "$T/pci-0000:00:1f.2-ata-1" --seed-index "$T/v1.caibx" --json "$T/v2.caibx" "$T/colon2.img" \
	>"$T/colon2.json" 2>/dev/null
n=$(py "$T/colon2.json" 'd["chunks_from_seed"]' 2>/dev/null || echo 0)
check "... with --seed-index: byte-exact, $n chunks from the seed" bash -c "cmp -s '$V2' '$T/colon2.img' && [ '$n' -gt 0 ]"
$S assemble "${A[@]}" --seed "$T/pci-0000:00:1f.2-ata-1:$T/v1.caibx" "$T/v2.caibx" "$T/colon3.img" >/dev/null 2>&1
check "... as IMAGE:INDEX (INDEX an existing .caibx): byte-exact" cmp -s "$V2" "$T/colon3.img"
expect_fail "--seed-index with no --seed before it" "must follow a --seed" \
	$S assemble "${A[@]}" --seed-index "$T/v1.caibx" "$T/v2.caibx" "$T/x.img"

# --- the store's URL: a scheme always, plain http only on purpose
expect_fail "a store URL without its scheme" "no scheme" \
	$S assemble --store "${URL#https://}" --ca-file "$T/test-ca.pem" "$T/v2.caibx" "$T/x.img"
expect_fail "a plain http store without --allow-plain-http" "plain http:// is refused" \
	$S assemble --store "http://127.0.0.1:9/store" "$T/v2.caibx" "$T/x.img"
check "(nothing written)" test ! -e "$T/x.img"

expect_fail "bad --concurrency" "--concurrency" $S assemble "${A[@]}" --concurrency 0 "$T/v2.caibx" "$T/x.img"
expect_fail "client cert without key" "go together" $S assemble "${A[@]}" --client-cert "$T/test-ca.pem" "$T/v2.caibx" "$T/x.img"
expect_fail "no store for chunks that must be fetched" "no store URL" $S assemble "$T/v2.caibx" "$T/x.img"
expect_fail "an index that is not one" "wrong magic" $S assemble "${A[@]}" "$V1" "$T/x.img"
finish
