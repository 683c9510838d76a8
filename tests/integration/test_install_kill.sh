#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync install cut at every step: SIGKILL at random instants, and stops
# at random write/fsync/rename calls of its state (the process ends there as
# a kill would end it), in every step from verify to switch
# (SLOTSYNC_INSTALL_KILL_TRIALS, default 50; the long mode runs 500).  After
# each cut: the boot state never points at a slot that is not byte-exact; the
# same command run again always ends installed and switched, exactly once
# (the boot state written once); a second install while one runs is refused,
# and --abort drops an unfinished one cleanly.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
PC=${SLOTSYNC_POWERCUT:?}
# the power-cut shim goes before the sanitizer runtime in an ASan build
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
TRIALS=${SLOTSYNC_INSTALL_KILL_TRIALS:-50}
sample_images
cd "$T"

# a signing CA, a bundle of v2 with hooks that take a moment, the store on nginx
signing_ca
printf '#!/bin/sh\nsleep 0.2\necho "$SLOTSYNC_HOOK $SLOTSYNC_VERSION $SLOTSYNC_TARGET_SLOT" >>"$SLOTSYNC_STATE_DIR/../hooks.log"\n' >pre-check
printf '#!/bin/sh\nsleep 0.2\necho "$SLOTSYNC_HOOK $SLOTSYNC_VERSION $SLOTSYNC_TARGET_SLOT" >>"$SLOTSYNC_STATE_DIR/../hooks.log"\n' >post-report
chmod 755 pre-check post-report
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible kill-test \
	--hook-pre-install pre-check --hook-post-install post-report --signer-cert signer.pem --signer-key signer.key v2.bundle >/dev/null
start_nginx store "$T/www"
SIZE=$(stat -c %s "$V2")

# fresh DIR: a device running v1 from slot A, slot B empty
fresh() {
	device_fixture "$1" kill-test "$1/state/boot.state" "store = $NGINX_URL/store
ca-file = $T/test-ca.pem
max-rate = 4M"
}

# one uncut run: how long, and how many state writes it makes
D=$T/dev
fresh "$D"
t0=$(date +%s.%N)
if POWERCUT_DIR="$D/state" POWERCUT_COUNT="$T/count" LD_PRELOAD="$PC" $S install --config "$D/system.conf" v2.bundle >"$T/full.out" 2>&1; then
	ok "an uncut install: $(cat "$T/full.out")"
else
	not_ok "an uncut install failed: $(cat "$T/full.out")"
	finish
fi
FULL=$(echo "$(date +%s.%N) - $t0" | bc)
CALLS=$(cat "$T/count")
check "(slot B is v2 byte for byte, the boot state written once)" \
	bash -c "cmp -s -n $SIZE '$D/slot-b.img' '$V2' && [ $(boot_writes "$D") = 1 ]"
echo "# an uncut install takes $FULL s and $CALLS state writes/fsyncs/renames"

fails=0 unverified=0 cut_in=""
SWEPT=$((TRIALS * 2 / 3)) j=0
for i in $(seq 1 "$TRIALS"); do
	fresh "$D"
	rc=0
	if [ $((i % 3)) != 0 ] && [ $j -lt $SWEPT ]; then
		# two trials in three stop at a call of the state's I/O, swept over the
		# whole run with a random offset: every step makes some, so every
		# step is cut
		stride=$(( (CALLS + SWEPT - 1) / SWEPT ))
		k=$((1 + j * CALLS / SWEPT + RANDOM % stride))
		[ $k -le $CALLS ] || k=$CALLS
		j=$((j + 1))
		POWERCUT_DIR="$D/state" POWERCUT_AT=$k POWERCUT_MODE=keep LD_PRELOAD="$PC" \
			$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 || rc=$?
		how="stopped at state call $k"
	else
		# SIGKILL at a random instant of the run
		$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 &
		pid=$!
		sleep "$(echo "scale=3; $FULL * $((RANDOM % 1000)) / 1000" | bc)"
		kill -9 $pid 2>/dev/null || true
		wait $pid 2>/dev/null || rc=$?
		how="SIGKILL"
	fi
	# no journal yet: the cut came before the bundle was verified
	step=$(python3 -c "import json; print(json.load(open('$D/state/install.json'))['step'])" 2>/dev/null || echo verify)
	cut_in+=" $step"
	if points_at_b "$D" 2>/dev/null && ! cmp -s -n "$SIZE" "$D/slot-b.img" "$V2"; then
		not_ok "trial $i ($how, at step $step): the boot state points at slot B, which is not byte-exact"
		unverified=$((unverified + 1))
	fi
	if ! $S install --config "$D/system.conf" v2.bundle >"$T/rerun.out" 2>&1; then
		not_ok "trial $i ($how, at step $step): the rerun failed: $(cat "$T/rerun.out")"
		fails=$((fails + 1))
		continue
	fi
	if ! cmp -s -n "$SIZE" "$D/slot-b.img" "$V2" || ! points_at_b "$D" || [ "$(boot_writes "$D")" != 1 ] ||
		[ "$(python3 -c "import json; print(json.load(open('$D/state/install.json'))['step'])")" != reboot ]; then
		not_ok "trial $i ($how, at step $step): after the rerun: boot state written $(boot_writes "$D") times, install.json $(cat "$D/state/install.json" | tr -d '\n' | head -c 300)"
		fails=$((fails + 1))
	fi
done
steps=$(echo "$cut_in" | tr ' ' '\n' | grep . | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')
echo "# cuts left the journal at: $steps"
check "$TRIALS cuts (SIGKILL, or a stop at a state write) then the same command: always installed and switched exactly once" \
	test $fails -eq 0
check "after every cut the boot state points only at a byte-exact slot" test $unverified -eq 0
for s in verify pre-install assemble post-install switch; do
	check "cuts landed in step $s" bash -c "echo '$cut_in' | tr ' ' '\n' | grep -qx $s"
done

# the installed state is final: running it again switches nothing
$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1
check "installing the same bundle again after it switched writes no boot state" test "$(boot_writes "$D")" = 1
check "the hooks ran with their environment" grep -q "^pre-install 2.0 B$" "$D/hooks.log"

# one install at a time
fresh "$D"
$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$D/state/install.json" ] && break; sleep 0.02; done
expect_fail "a second install while one runs is refused" "another install is running" \
	$S install --config "$D/system.conf" v2.bundle
wait $pid
# an unfinished install of another bundle: refused, then dropped with --abort
fresh "$D"
$G bundle --no-progress --store www/store --image "$V1" --version 1.5 --compatible kill-test \
	--signer-cert signer.pem --signer-key signer.key v15.bundle >/dev/null
POWERCUT_DIR="$D/state" POWERCUT_AT=$((CALLS / 2)) POWERCUT_MODE=keep LD_PRELOAD="$PC" \
	$S install --config "$D/system.conf" v2.bundle >/dev/null 2>&1 || true
expect_fail "another bundle while an install is unfinished is refused" "is unfinished at step" \
	$S install --config "$D/system.conf" v15.bundle
rc=0
$S install --config "$D/system.conf" v15.bundle >/dev/null 2>&1 || rc=$?
check "(exit 4: busy, neither failed for good nor resumable)" test $rc -eq 4
check "--abort drops it and installs the other" $S install --config "$D/system.conf" --abort v15.bundle
check "(slot B is v1.5, the boot state written once)" \
	bash -c "cmp -s -n $(stat -c %s "$V1") '$D/slot-b.img' '$V1' && [ $(boot_writes "$D") = 1 ]"
# a failing hook stops the install, nothing switched
fresh "$D"
printf '#!/bin/sh\necho "this device is not ready" >&2\nexit 4\n' >pre-check
$G bundle --no-progress --store www/store --image "$V2" --version 2.1 --compatible kill-test \
	--hook-pre-install pre-check --signer-cert signer.pem --signer-key signer.key v21.bundle >/dev/null
expect_fail "a failing pre-install hook stops the install" "pre-install hook pre-check failed (exit 4)" \
	$S install --config "$D/system.conf" v21.bundle
check "(nothing switched, slot A untouched)" \
	bash -c "[ $(boot_writes "$D") = 0 ] && cmp -s '$D/slot-a.img' '$V1'"
expect_fail "(and the release is not tried again)" "failed on this device before" \
	$S install --config "$D/system.conf" v21.bundle
rc=0
$S install --config "$D/system.conf" v21.bundle >"$T/out.txt" 2>&1 || rc=$?
check "(exit 1, failed for good, with no resume hint)" bash -c "[ $rc -eq 1 ] && ! grep -q resume '$T/out.txt'"
finish
