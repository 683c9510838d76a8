#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Permanent failures are told from resumable ones, early and by exit status
# (0 done, 1 failed for good, 2 usage, 3 interrupted and resumable, 4 busy):
# a slot too small for the image is refused in verify before anything is
# written (exit 1, no resume hint, and the agent does not try the bundle
# again); boot-tries the bootloader cannot count is a configuration error; an
# install or assemble cut by the network exits 3, and the same command then
# finishes it.  Every --help of slotsync lists the exit codes.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"

signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p www/store
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible exit-test "${SIGN[@]}" www/v2.bundle >/dev/null
future=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
$G channel --bundle-url v2.bundle --bundle www/v2.bundle --version 5 --expires "$future" "${SIGN[@]}" www/stable.pointer >/dev/null
start_nginx srv "$T/www"
SIZE=$(stat -c %s "$V2")

device() { # device DIR [EXTRA [update] LINES]
	device_fixture "$1" exit-test "$1/boot.state" "channel = $NGINX_URL/stable.pointer
store = $NGINX_URL/store
ca-file = $T/test-ca.pem
reboot-command = touch $1/rebooted
${2:-}"
}
jget() { python3 -c "import json; print(json.load(open('$1'))$2)" 2>/dev/null; }
run() { # run OUT command...: stdout+stderr to OUT, prints the exit status
	local rc=0
	"${@:2}" >"$1" 2>&1 || rc=$?
	echo $rc
}

# ---- every --help lists the exit codes ------------------------------------------
for verb in "" install status agent validate mark-good assemble index-info verify state slot-format migrate-data; do
	check "slotsync $verb --help lists the exit codes" \
		bash -c "$S $verb --help | grep -q '3 interrupted and resumable (run the same command' && $S $verb --help | grep -q '1 failed for good'"
done

# ---- boot-tries beyond what GRUB counts: a configuration error -----------------------
D=$T/grub
device "$D"
grub-editenv "$D/grubenv" create 2>/dev/null || truncate -s 1024 "$D/grubenv"
sed -i -e 's/^backend = file/backend = grub/' -e "s|^env = .*|env = $D/grubenv|" -e 's/^\[system\]/[system]\nboot-tries = 50/' "$D/system.conf"
cp "$D/grubenv" "$D/grubenv.orig"
rc=$(run "$D/out" $S install --config "$D/system.conf" www/v2.bundle)
check "boot-tries = 50 with GRUB: refused when the configuration is read (exit $rc), naming the key and the limit" \
	bash -c "[ $rc -eq 1 ] && grep -q 'boot-tries = 50 in \[system\] is more than the grub backend counts (at most 9)' '$D/out'"
check "(nothing was written)" bash -c "[ ! -e '$D/state/install.json' ] && cmp -s '$D/grubenv' '$D/grubenv.orig'"
expect_fail "(the agent does not start with it)" "boot-tries = 50 in [system] is more than the grub backend counts" $S agent --config "$D/system.conf" --once

# ---- a slot too small: refused in verify, before anything is written -----------------
D=$T/small
device "$D"
truncate -s 4M "$D/small.img"
printf 'untouched slot' | dd of="$D/small.img" conv=notrunc status=none
cp "$D/small.img" "$D/small.orig"
LOOP=$(losetup -f --show "$D/small.img")
CLEANUP+=("losetup -d $LOOP 2>/dev/null")
sed -i "s|^device = $D/slot-b.img|device = $LOOP|" "$D/system.conf"
rc=$(run "$D/out" $S install --config "$D/system.conf" www/v2.bundle)
check "a 4 MiB slot for a $SIZE-byte image: refused in verify (exit $rc: $(head -c 300 "$D/out" | tr '\n' ' '))" \
	bash -c "[ $rc -eq 1 ] && grep -q '^slotsync install: verify: slot B ($LOOP) holds 4194304 bytes, the image of version 2.0 needs $SIZE' '$D/out'"
check "(no resume hint: it says the failure is for good)" \
	bash -c "! grep -qi 'resume' '$D/out' && grep -q 'failed for good: running it again fails the same way' '$D/out'"
check "(the slot is untouched, nothing switched)" \
	bash -c "cmp -s '$D/small.img' '$D/small.orig' && [ '$($SLOTSYNC_BOOTCTL --backend file --env "$D/boot.state" status --json | jget /dev/stdin "['slots']['B']['priority']")' = 0 ]"
check "(the install record says failed, at verify)" \
	bash -c "[ '$(jget "$D/state/install.json" "['step']")' = failed ] && grep -q 'does not fit' '$D/state/install.json'"
# the agent: fails once for good, then does not try the same bundle again
rm -rf "$D/state"/*
rc=$(run "$D/agent1.out" $S agent --config "$D/system.conf" --once)
check "agent --once with a pointer to it: failed for good (exit $rc)" bash -c "[ $rc -eq 1 ] && grep -q 'does not fit' '$D/agent1.out'"
: >"$NGINX_LOG"
rc=$(run "$D/agent2.out" $S agent --config "$D/system.conf" --once)
check "the next agent cycle does not try that bundle again (exit $rc, no bundle download)" \
	bash -c "[ $rc -eq 0 ] && grep -q 'failed for good' '$D/agent2.out' && ! grep -q 'v2.bundle' '$NGINX_LOG'"
check "(the slot is still untouched)" cmp -s "$D/small.img" "$D/small.orig"
losetup -d "$LOOP"

# ---- interrupted by the network: exit 3, and the same command finishes it -------------
D=$T/net
device "$D"
dead=https://127.0.0.1:$(free_port)
rc=$(run "$D/out" $S install --config "$D/system.conf" "$dead/v2.bundle")
check "the bundle's server is down: exit 3 (resumable), told to run it again (exit $rc)" \
	bash -c "[ $rc -eq 3 ] && grep -q 'run the same command again' '$D/out'"
# the store loses its chunks mid-way (an upload not finished, a CDN purge)
mv www/store www/store.away
mkdir -p www/store
rc=$(run "$D/out" $S install --config "$D/system.conf" www/v2.bundle)
check "the store lacks the chunks: the install stops at assemble with exit 3 and the resume hint (exit $rc)" \
	bash -c "[ $rc -eq 3 ] && grep -q 'the install stopped at step assemble; run the same command again to resume it' '$D/out'"
rm -rf www/store
mv www/store.away www/store
rc=$(run "$D/out" $S install --config "$D/system.conf" www/v2.bundle)
check "the chunks are back: the same command finishes the install (exit $rc)" \
	bash -c "[ $rc -eq 0 ] && cmp -s -n $SIZE '$D/slot-b.img' '$V2'"
# assemble alone: a store that cannot be reached exits 3, then resumes
$G make --store www/store "$V2" v2.caibx >/dev/null
rc=$(run "$D/asm.out" $S assemble --store "$dead/store" --max-attempts 2 --journal "$D/asm.journal" --ca-file "$T/test-ca.pem" \
	--seed "$V1" v2.caibx "$D/asm.img")
check "assemble from a store that cannot be reached: exit 3, with the resume hint (exit $rc)" \
	bash -c "[ $rc -eq 3 ] && grep -q 'run the same command again to resume it' '$D/asm.out'"
rc=$(run "$D/asm.out" $S assemble --store "$NGINX_URL/store" --journal "$D/asm.journal" --ca-file "$T/test-ca.pem" \
	--seed "$V1" v2.caibx "$D/asm.img")
check "(with the store back, it finishes: exit $rc, byte-exact)" bash -c "[ $rc -eq 0 ] && cmp -s '$D/asm.img' '$V2'"
rc=$(run "$D/asm.out" $S assemble --store "$NGINX_URL/store" v2.caibx)
check "assemble with a missing argument: usage error, exit 2 (exit $rc)" test "$rc" -eq 2
finish
