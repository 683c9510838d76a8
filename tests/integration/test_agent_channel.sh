#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The channel wins over a stale install.  (a) The agent is killed while it
# installs v2 (pointer 5); the channel then names v3 (pointer 6): the next
# agent --once drops v2's install and installs v3 (slot B byte-exact v3), and
# v2 is never switched to.  (b) A release whose chunks are deleted from the
# store while its install is unfinished and the pointer still names it: each
# run says the chunks are missing and exits 3 (resumable), until the fetcher's
# number of attempts (8 runs) ends the install as failed for good (exit 1,
# status and failed releases say why); the agent then installs it no more.
# (c) With the channel unreachable, an unfinished install resumes as before.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"

signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p www/store www/store-b
# v3: v2 with its first MiB replaced
random_file head.bin 1 v3
cp "$V2" v3.img
dd if=head.bin of=v3.img conv=notrunc status=none
V3=$T/v3.img
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible chan-test "${SIGN[@]}" www/v2.bundle >/dev/null
$G bundle --no-progress --store www/store --image "$V3" --version 3.0 --compatible chan-test "${SIGN[@]}" www/v3.bundle >/dev/null
$G bundle --no-progress --store www/store-b --image "$V2" --version 2.0 --compatible chan-test "${SIGN[@]}" www/v2b.bundle >/dev/null
future=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
pointer() { # pointer VERSION BUNDLE OUT
	$G channel --bundle-url "$2" --bundle "www/$2" --version "$1" --expires "$future" "${SIGN[@]}" "$3" >/dev/null
}
start_nginx srv "$T/www"

device() { # device DIR POINTER STORE [EXTRA]
	device_fixture "$1" chan-test "$1/boot.state" "channel = $NGINX_URL/$2
store = $NGINX_URL/$3
ca-file = $T/test-ca.pem
reboot-command = touch $1/rebooted
${4:-}"
}
step_of() { python3 -c "import json; print(json.load(open('$1/state/install.json'))['$2'])" 2>/dev/null; }
points_at_b() {
	$SLOTSYNC_BOOTCTL --backend file --env "$1/boot.state" status --json |
		python3 -c "import json,sys; s=json.load(sys.stdin)['slots']; sys.exit(0 if s['B']['priority'] > s['A']['priority'] else 1)"
}
export -f points_at_b
# kill_in_assemble DIR: runs agent --once and SIGKILLs it once its install writes the slot
kill_in_assemble() {
	$S agent --config "$1/system.conf" --once 2>"$1/agent-killed.log" &
	local pid=$! i
	for i in $(seq 400); do
		[ "$(step_of "$1" step)" = assemble ] && [ "$(step_of "$1" bytes_done)" != 0 ] && break
		sleep 0.05
	done
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null || true
}

# ---- (a) a newer pointer names another bundle: the stale install is dropped ----
D=$T/a
pointer 5 v2.bundle www/stable.pointer
device "$D" stable.pointer store "max-rate = 200k"
kill_in_assemble "$D"
step=$(step_of "$D" step)
check "the agent was killed while it installed v2 (install at step $step)" test "$step" = assemble
check "(nothing switched to slot B)" bash -c "! points_at_b '$D'"
pointer 6 v3.bundle www/stable.pointer
sed -i '/^max-rate/d' "$D/system.conf"
rc=0
$S agent --config "$D/system.conf" --once 2>"$D/agent.log" || rc=$?
check "pointer 6 names v3: the next agent --once installs it (exit $rc)" test $rc -eq 0
check "(it dropped the unfinished install of v2 first)" grep -q "dropping the unfinished install of 2.0" "$D/agent.log"
check "(slot B is v3 byte for byte)" cmp -s -n "$(stat -c %s "$V3")" "$D/slot-b.img" "$V3"
check "(the boot state points at B, which holds v3: v2 is never booted)" \
	bash -c "points_at_b '$D' && [ \"\$(python3 -c \"import json; print(json.load(open('$D/state/slots.json'))['B']['version'])\")\" = 3.0 ]"
check "(the install record is v3's, waiting for its reboot)" \
	bash -c "[ '$(step_of "$D" version)' = 3.0 ] && test -e '$D/rebooted'"

# ---- (b) the chunks of the release the pointer names are deleted mid-install -----
D=$T/b
pointer 7 v2b.bundle www/b.pointer
device "$D" b.pointer store-b "max-rate = 200k"
kill_in_assemble "$D"
check "the agent was killed while it installed v2 from store-b (at step $(step_of "$D" step))" test "$(step_of "$D" step)" = assemble
find www/store-b -type f -name '*.cacnk' -delete
sed -i '/^max-rate/d' "$D/system.conf"
codes=""
for i in $(seq 8); do
	rc=0
	$S agent --config "$D/system.conf" --once 2>"$D/run$i.log" || rc=$?
	codes+="$rc "
done
check "runs 1 to 7 find the chunks missing and exit 3 (resumable), run 8 ends it for good (exit 1): $codes" \
	test "$codes" = "3 3 3 3 3 3 3 1 "
check "(run 1 said what is missing)" grep -q "not found (HTTP 404)" "$D/run1.log"
check "(run 8 says the chunks are missing and the release cannot be installed)" \
	grep -q "chunks missing from the store in 8 runs in a row; version 2.0 cannot be installed" "$D/run8.log"
check "(the install record is failed, and says why)" \
	bash -c "[ '$(step_of "$D" step)' = failed ] && grep -q 'HTTP 404' '$D/state/install.json'"
$S status --config "$D/system.conf" >"$D/status.txt"
check "(slotsync status lists the release as failed)" grep -q "^failed:  2.0: .*missing from the store" "$D/status.txt"
: >"$NGINX_LOG"
rc=0
$S agent --config "$D/system.conf" --once 2>"$D/run9.log" || rc=$?
check "the next cycle moves on: no install (exit $rc), no chunk asked for" \
	bash -c "[ $rc -eq 0 ] && ! grep -q 'store-b/' '$NGINX_LOG' && grep -q 'failed here before' '$D/run9.log'"

# ---- (c) the channel cannot be reached: the unfinished install resumes ----------
D=$T/c
pointer 8 v2.bundle www/c.pointer
device "$D" c.pointer store "max-rate = 200k"
kill_in_assemble "$D"
check "the agent was killed while it installed v2 (at step $(step_of "$D" step))" test "$(step_of "$D" step)" = assemble
sed -i -e '/^max-rate/d' -e "s|^channel = .*|channel = https://127.0.0.1:$(free_port)/c.pointer|" "$D/system.conf"
rc=0
$S agent --config "$D/system.conf" --once 2>"$D/agent.log" || rc=$?
check "with the channel unreachable, agent --once resumes the install (exit $rc)" \
	bash -c "[ $rc -eq 0 ] && grep -q 'resuming the install of 2.0' '$D/agent.log'"
check "(slot B is v2 byte for byte, and the boot state points at it)" \
	bash -c "cmp -s -n $(stat -c %s "$V2") '$D/slot-b.img' '$V2' && points_at_b '$D'"
finish
