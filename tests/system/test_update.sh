#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real boot, end to end, in qemu: GRUB (docs/boot/grub.cfg) → the chosen
# slot's own kernel and initramfs (its boot volume) → the initramfs unlocks the
# slot through the TPM → squashfs root → systemd, whose slotsync agent updates
# the device.  Each release is a slot group (root and boot volume), so a slot
# boots the kernel of the release it holds.  One device lives through:
#   1. the factory installs v1 into slot A; boot v1 from A → the agent installs
#      v2 into B → reboot → GRUB boots B → health checks pass → marked good →
#      B stays across two more reboots;
#   2. v3, whose health check fails → installed into A → reboot → A is tried,
#      fails its check, is marked bad → GRUB boots B again, B's data as it was;
#      the agent reports v3 as failed and does not install it again;
#   3. v4, whose kernel crashes early in every boot → installed into A → A is
#      tried, never marked good, until its tries run out → GRUB boots B again;
#      the agent reports v4 as failed and does not install it again;
#   4. a downgrade to v1 that the release does not allow is refused; v1 signed
#      as allowed installs, boots and is marked good;
#   5. power loss: the VM is killed at a random instant of an install
#      (SLOTSYNC_SYSTEM_POWERLOSS_TRIALS, 10; 100 with SLOTSYNC_LONG=1); every
#      time the next boot comes up on a good slot, the install resumes to
#      completion, and the new slot boots byte-exact.
# The first boot of what an install wrote into a slot hashes the plaintext of
# its slot (systest-slotsum) and the test compares it with the image it
# released into that slot, and the slot's boot volume (not encrypted: read from
# the disk once the VM is off) with the boot volume it released; every boot's
# initramfs names the release whose boot volume it came from, and the test
# checks it is the slot's.  The serial console
# of every boot is kept (sys-*.log); a summary of the boots ends the output.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
cd "$T"
start=$(date +%s)
ARTIFACTS=${SLOTSYNC_SYSTEM_ARTIFACTS:-$SLOTSYNC_BUILD_DIR/system-logs}
rm -rf "$ARTIFACTS"
mkdir -p "$ARTIFACTS"
CLEANUP+=("cp $T/sys-*.log '$ARTIFACTS/' 2>/dev/null")
TRIALS=${SLOTSYNC_SYSTEM_POWERLOSS_TRIALS:-$([ "${SLOTSYNC_LONG:-0}" = 1 ] && echo 100 || echo 10)}
SEED=${SLOTSYNC_SYSTEM_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
echo "# power-loss trials: $TRIALS, seed $SEED (SLOTSYNC_SYSTEM_SEED)"

# ---- releases, bundles, the channel ----------------------------------------------
signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
for v in 1.0 2.0 3.0 4.0; do
	case $v in 3.0) kind=failing ;; 4.0) kind=crashing ;; *) kind= ;; esac
	sys_release $v $kind || { not_ok "release $v could not be built"; finish; }
done
ok "releases 1.0, 2.0, 3.0 (its radio check fails), 4.0 (its kernel crashes): Debian roots with systemd and slotsync ($(du -m release-2.0.sqfs | cut -f1) MB squashfs each), and boot volumes with their kernel and initramfs ($(du -m boot-2.0.img | cut -f1) MB ext2 each)"
mkdir -p updates
# every release carries its dm-verity tree (after the image, in the slot) and
# its root hash in the signed manifest; release-V.slot is what lands on a slot
for v in 1.0 2.0 3.0 4.0; do
	$G verity release-$v.sqfs release-$v.slot >/dev/null
	$G bundle --no-progress --store updates/store --image release-$v.sqfs --image boot=boot-$v.img --verity --version $v \
		--compatible slotsync-vm --security-version 1 "${SIGN[@]}" updates/v$v.bundle >/dev/null
done
# a downgrade to 1.0 that its release allows
$G bundle --no-progress --store updates/store --image release-1.0.sqfs --image boot=boot-1.0.img --verity --version 1.0 --compatible slotsync-vm \
	--security-version 1 --allow-downgrade-to 1.0 "${SIGN[@]}" updates/v1.0-downgrade.bundle >/dev/null
$G make --no-progress --store updates/store release-1.0.slot updates/v1.caibx >/dev/null
$G verity --json release-1.0.sqfs release-1.0.slot | python3 -c 'import json,sys; print(json.load(sys.stdin)["root_hash"])' >updates/v1.roothash
sha1=$(sha256sum updates/v1.0.bundle | cut -d' ' -f1)
printf '{"A": {"status": "good", "version": "1.0", "bundle_sha256": "%s", "security_version": 1, "installed": 0}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
	"$sha1" >updates/slots.json
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
# what the host put into each slot: the guest hashes its slot's first bytes
# (the image's size, from updates/slotsum) and the test compares.  Hashing
# costs a TCG guest 5 s, so it is asked for (HASH: the slots to hash) on the
# first boot of what an install wrote into a slot, not again after.
declare -A IMG=([A]=release-1.0.sqfs [B]=)
# the boot volume of the release in slot S, and its release
bootrel() { local v=${IMG[$1]#release-}; echo "${v%.sqfs}"; }
bootimg() { echo "boot-$(bootrel "$1").img"; }
HASH=A
updates_disk() {
	: >updates/slotsum
	for s in $HASH; do [ -n "${IMG[$s]}" ] && echo "$s $(stat -c %s "${IMG[$s]%.sqfs}.slot")" >>updates/slotsum; done
	sys_updates_disk
}
publish() { # publish POINTER_VERSION BUNDLE ACTION
	$G channel --bundle-url "$2.bundle" --bundle "updates/$2.bundle" --version "$1" --expires "$EXPIRES" \
		"${SIGN[@]}" updates/stable.pointer >/dev/null
	echo "$3" >updates/action
	updates_disk
}

# ---- the disk, the factory ---------------------------------------------------------
sys_disk || { not_ok "the disk could not be built"; finish; }
# where each slot's boot volume starts in the disk (partitions 7 and 8)
declare -A BOOTVOL_OFF
for s in A B; do
	BOOTVOL_OFF[$s]=$(sys_part_offset "$([ $s = A ] && echo 7 || echo 8)")
done
publish 1 v1.0 stay
sys_boot factory
check "the factory formats slots and data partitions (LUKS2, TPM-sealed) and installs v1 into A" \
	grep -q "SYSTEST factory-done" sys-factory.log
grep -q "SYSTEST factory-done" sys-factory.log || { grep -a SYSTEST sys-factory.log >&2; finish; }

N=0
SUMMARY=""
# boot [KILL_AFTER]: one power-on (killed KILL_AFTER seconds into an install);
# sets SLOT (what the initramfs opened), GOT ("SLOT VERSION" from the report,
# which a boot that fails its health checks or crashes never reaches), LOG,
# status-$N.json (the status after the agent's first poll), and adds a line to
# the summary: slot, what GRUB saw (good, or tries left), release, good after
boot() {
	N=$((N + 1))
	sys_boot "$N" "${1:-}"
	LOG=sys-$N.txt
	tr -d '\r' <"sys-$N.log" >"$LOG"
	SLOT=$(sed -n 's/^SYSTEST initramfs slot \([AB]\).*/\1/p' "$LOG" | head -n1)
	GOT=$(sed -n 's/^SYSTEST booted //p' "$LOG" | head -n1)
	console_status "$LOG" >"status-$N.json"
	SUMMARY+=$(python3 - "$N" "$LOG" "status-$N.json" "${1:+$SYS_KILLED}" "${1:-}" "$([ -e "sys-$N-hung.log" ] && echo yes)" <<'PY'
import json, re, sys
n, log, path, killed, after, hung = sys.argv[1:7]
text = open(log, errors="replace").read()
s = json.load(open(path))
g = re.search(r"^SYSTEST grub slot=([AB]) A_OK=(\d?) A_TRY=(\d?) B_OK=(\d?) B_TRY=(\d?)", text, re.M)
slot, grub = "?", "?"
if g:
    slot = g.group(1)
    ok, tries = (g.group(2), g.group(3)) if slot == "A" else (g.group(4), g.group(5))
    grub = "good" if ok == "1" else f"trial, {tries or 0} tries left"
rel, after_boot = "-", "no report"
b = re.search(r"^SYSTEST booted [AB] (\S+)", text, re.M)
kernel = re.search(r"^SYSTEST initramfs slot [AB] boot-image (\S+)", text, re.M)
if s and s.get("booted") in ("A", "B"):
    x = s["slots"][s["booted"]]
    rel, after_boot = x.get("version") or "?", "good" if x["good"] else "not good"
elif b:
    rel = b.group(1)
notes = []
if hung == "yes":
    notes.append("powered on twice: the first hung in the kernel")
if "SYSTEST crashing" in text:
    notes.append("kernel crashed")
m = re.search(r"failed its health checks", text)
if m:
    notes.append("health check failed: marked bad")
m = re.search(r"resuming the install of (\S+) at step (\S+)", text)
if m:
    notes.append(f"resumed {m.group(1)} at {m.group(2)}")
m = re.search(r"installed (\S+) into slot ([AB]); reboot due", text)
if m:
    notes.append(f"installed {m.group(1)} into {m.group(2)}")
m = re.search(r"does not allow a downgrade", text)
if m:
    notes.append("downgrade refused")
if killed == "yes":
    notes.append(f"power cut {after} s into an install")
print(f"   boot {n:>3}: slot {slot} (GRUB: {grub}), kernel of {kernel.group(1) if kernel else '?'}, release {rel}, {after_boot}"
      + (f"; {'; '.join(notes)}" if notes else ""))
PY
)$'\n'
}
st() { python3 -c "import json; s=json.load(open('status-$N.json')); v=($1); print(v)" 2>&1; }
# slotsum_ok: the booted slot's plaintext (hashed by the guest) and its boot
# volume (partition 7 or 8 of the disk, read here: the VM is off) are the
# images the host put there
slotsum_ok() {
	local want b off
	b=$(bootimg "$SLOT")
	off=${BOOTVOL_OFF[$SLOT]}
	want="$SLOT $(stat -c %s "${IMG[$SLOT]%.sqfs}.slot") $(sha256sum "${IMG[$SLOT]%.sqfs}.slot" | cut -d' ' -f1)"
	grep -aq "^SYSTEST slotsum $want\$" "$LOG" &&
		test "$(tail -c +$((off + 1)) disk.img | head -c "$(stat -c %s "$b")" | sha256sum)" = "$(sha256sum <"$b")"
}
# expect SLOT VERSION: the boot came up on SLOT, from SLOT's boot volume (the
# kernel and initramfs of the release in it), running VERSION, its slot group
# byte-exact when it was to be hashed (from the report; a boot that never
# reaches the report: the slot and its kernel only)
expect() {
	local kernel
	kernel=$(sed -n "s/^SYSTEST initramfs slot $1 boot-image \([^ ]*\).*/\1/p" "$LOG" | head -n1)
	if [ -n "$GOT" ] && [[ " $HASH " == *" $1 "* ]]; then
		local exact=no
		slotsum_ok && exact=yes
		check "boot $N: slot $1 with its own kernel ($kernel), release $2 ($GOT), its root and boot volume byte-exact ($exact)" \
			test "$GOT $kernel $exact" = "$1 $2 $(bootrel "$1") yes"
	elif [ -n "$GOT" ]; then
		check "boot $N: slot $1 with its own kernel ($kernel), release $2 ($GOT)" test "$GOT $kernel" = "$1 $2 $(bootrel "$1")"
	else
		check "boot $N: slot $1 with its own kernel ($kernel) (release $2: no report)" test "$SLOT $kernel" = "$1 $(bootrel "$1")"
	fi
}

# ---- story 1: v1 → v2 -------------------------------------------------------------
publish 2 v2.0 update
boot
expect A 1.0
check "the agent installed v2 into slot B and asked for the reboot" grep -aq 'installed 2.0 into slot B; reboot due' "$LOG"
# install_s LOG: the length of the install a boot made, from the agent's own
# log (the kernel's timestamps of "installing" and "reboot due"; nothing if
# it did not make one whole).  The power cuts of story 5 fall at random
# instants inside the latest whole install: its length follows how fast this
# shared machine runs the VM at the time (15-23 s seen in one run)
install_s() {
	awk 'function t() { return match($0, /\[ *[0-9]+\.[0-9]+\]/) ? substr($0, RSTART + 1, RLENGTH - 2) + 0 : -1 }
		/channel pointer [0-9]+: installing/ && a == "" { a = t() }
		/reboot due/ && a != "" && b == "" { b = t() }
		END { if (a != "" && b != "" && a >= 0 && b >= a) printf "%.1f", b - a }' "$1"
}
INSTALL_S=$(install_s "$LOG")
IMG[B]=release-2.0.sqfs
HASH=B
publish 2 v2.0 stay
boot
expect B 2.0
HASH=
updates_disk
check "B passed its health checks and is marked good" test "$(st "s['slots']['B']['good'], s['install']['step']")" = "(True, 'done')"
check "B's data partition is a copy of A's" grep -aq "SYSTEST data factory data" "$LOG"
boot
expect B 2.0
boot
expect B 2.0
check "B stays across two more reboots, good" test "$(st "s['booted'], s['slots']['B']['good']")" = "('B', True)"

# ---- story 2: v3 fails its health check --------------------------------------------
publish 3 v3.0 update
boot
expect B 2.0
check "the agent installed v3 into slot A" grep -aq "installed 3.0 into slot A" "$LOG"
IMG[A]=release-3.0.sqfs
HASH=A
publish 3 v3.0 stay
boot
expect A 3.0
check "A was tried and failed its health check: marked bad" grep -aq '20-radio-link failed' "$LOG"
check "A's slot was byte-exact all the same" slotsum_ok
HASH=
updates_disk
boot
expect B 2.0
check "B's data partition is as it was" grep -aq "SYSTEST data factory data" "$LOG"
check "the agent reports v3 as failed and does not install it again" \
	test "$(st "[f['version'] for f in s['failed_releases']], 'not installed again' in s['agent']['result']")" = "(['3.0'], True)"

# ---- story 3: v4 crashes; its tries run out ----------------------------------------
publish 4 v4.0 update
boot
expect B 2.0
check "the agent installed v4 into slot A" grep -aq "installed 4.0 into slot A" "$LOG"
IMG[A]=release-4.0.sqfs
publish 4 v4.0 stay
boot
expect A 4.0
check "A was tried (GRUB: one try left) and its kernel crashed" \
	bash -c "grep -aq '^SYSTEST grub slot=A A_OK=0\\? A_TRY=1 ' $LOG && grep -aq 'SYSTEST crashing' $LOG"
boot
expect A 4.0
check "A was tried again (GRUB: no try left) and crashed again" \
	bash -c "grep -aq '^SYSTEST grub slot=A A_OK=0\\? A_TRY=0 ' $LOG && grep -aq 'SYSTEST crashing' $LOG"
boot
expect B 2.0
check "its tries ran out: GRUB passes over A (no try left) and boots B" grep -aq '^SYSTEST grub slot=B A_OK=0\? A_TRY=0 B_OK=1' "$LOG"
check "B's data partition is as it was" grep -aq "SYSTEST data factory data" "$LOG"
check "the agent reports v4 as failed (the bootloader fell back) and does not install it again" \
	test "$(st "[f['version'] for f in s['failed_releases']], 'fell back' in s['failed_releases'][-1]['reason'], 'not installed again' in s['agent']['result']")" = "(['3.0', '4.0'], True, True)"

# ---- story 4: downgrades -----------------------------------------------------------
publish 5 v1.0 stay
boot
expect B 2.0
check "a downgrade to 1.0 that its release does not allow is refused" \
	bash -c "python3 -c \"import json; s=json.load(open('status-$N.json')); print(s['agent'])\" | grep -q 'does not allow a downgrade'"
check "... and slot A was not touched" test "$(st "s['slots']['A']['version'], s['slots']['A']['status']")" = "('4.0', 'bad')"
publish 6 v1.0-downgrade update
boot
expect B 2.0
check "a downgrade to 1.0 signed as allowed installs into slot A" grep -aq "installed 1.0 into slot A" "$LOG"
s_=$(install_s "$LOG")
[ -z "$s_" ] || INSTALL_S=$s_
IMG[A]=release-1.0.sqfs
HASH=A
publish 6 v1.0-downgrade stay
boot
expect A 1.0
check "A runs 1.0 again, good, with B's data" test "$(st "s['booted'], s['slots']['A']['good'], s['slots']['A']['version']")" = "('A', True, '1.0')"
check "... B's data partition copied to A" grep -aq "SYSTEST data factory data" "$LOG"

# ---- story 5: power loss during installs -------------------------------------------
# Each trial: a release (alternately the 1.0 and 2.0 images, so the slot's old
# content never matches) is published; the boot that starts its install loses
# power at a random instant of it; the next boot must come up on a good slot
# and finish the install (or, if the cut came after the switch, the new slot
# must boot and be marked good); the boot after that runs the new slot, whose
# plaintext is hashed against the image.
[ -n "$INSTALL_S" ] || { not_ok "no install time could be read from boots 1 and $((N - 1))"; INSTALL_S=15; }
echo "# the latest install took $INSTALL_S s in this VM: power cuts fall in [0, $INSTALL_S) s after it starts"
good=A
ver=1.0 # what slot $good runs
cuts=0
k=0
declare -A STEPS=()
while [ $cuts -lt "$TRIALS" ] && [ $k -lt $((TRIALS + 5)) ]; do
	k=$((k + 1))
	tgt=$([ $good = A ] && echo B || echo A)
	rel=$([ "${IMG[$tgt]}" = release-1.0.sqfs ] && echo 2.0 || echo 1.0)
	img=release-$rel.sqfs
	$G bundle --no-progress --store updates/store --image "$img" --image "boot=boot-$rel.img" --verity --version "5.$k" --compatible slotsync-vm \
		--security-version 1 "${SIGN[@]}" "updates/p5.$k.bundle" >/dev/null
	# the slot an install just wrote boots for the first time: hash it
	HASH=
	if [ $k -gt 1 ]; then HASH=$good; fi
	publish $((6 + k)) "p5.$k" powerloss
	cut=$(python3 -c "import random; random.seed($SEED * 1000 + $k); print(f'{random.uniform(0, $INSTALL_S):.1f}')")
	boot "$cut"
	if [ -n "$HASH" ]; then
		check "power-loss trial $k: the boot before the cut came up on slot $good, byte-exact" \
			bash -c "test '$SLOT' = $good && $( slotsum_ok && echo true || echo false )"
	else
		check "power-loss trial $k: the boot before the cut came up on slot $good" test "$SLOT" = "$good"
	fi
	if [ "$SYS_KILLED" = no-install ]; then
		not_ok "power-loss trial $k: the agent never started the install of 5.$k"
		continue
	elif [ "$SYS_KILLED" != yes ]; then
		s_=$(install_s "$LOG")
		echo "# trial $k: no cut: the install finished within $cut s (not counted)${s_:+; it took $s_ s: the next cuts fall in [0, $s_) s}"
		[ -z "$s_" ] || INSTALL_S=$s_
		IMG[$tgt]=$img
		good=$tgt
		ver=5.$k
		continue
	fi
	cuts=$((cuts + 1))
	IMG[$tgt]=$img
	HASH=$tgt # hashed if the cut came after the switch and the new slot boots now
	updates_disk
	boot
	if [ "$SLOT" = "$good" ]; then
		step=$(sed -n "s/.*resuming the install of 5.$k at step \([a-z-]*\).*/\1/p" "$LOG" | head -n1)
		how="resumed the install at step ${step:-?}"
		if [ -z "$step" ] && grep -a 'slotsync\[' "sys-$((N - 1)).txt" | tail -n1 | grep -q "installing .*/p5.$k.bundle"; then
			# the cut came right as the install began, before it did or said
			# anything more (the boot cut's last word is "installing"): nothing
			# recorded to resume, it starts over (and must finish)
			step=before-first-step
			how="started the install over (the cut came before its first step was recorded)"
		fi
		STEPS[${step:-none}]=$(( ${STEPS[${step:-none}]:-0} + 1 ))
		# the mark-good made before the cut must hold: GRUB sees the slot good
		check "power-loss trial $k: cut at $cut s; the next boot came up on slot $good, good for GRUB, $how and finished it" \
			bash -c "test -n '$step' && grep -aq '^SYSTEST grub slot=$good .*${good}_OK=1' $LOG && grep -aq 'installed 5.$k into slot $tgt; reboot due' $LOG"
	else
		STEPS[after-switch]=$(( ${STEPS[after-switch]:-0} + 1 ))
		check "power-loss trial $k: cut at $cut s, after the switch; the next boot ran the new slot $tgt, byte-exact, marked good" \
			test "$SLOT $(slotsum_ok && echo exact) $(st "s['slots']['$tgt']['good'], s['slots']['$tgt']['version'], s['install']['step']")" = \
			"$tgt exact (True, '5.$k', 'done')"
	fi
	good=$tgt
	ver=5.$k
done
echo stay >updates/action
HASH=$good
updates_disk
boot
check "after $cuts power cuts: slot $good runs $ver, byte-exact, good" \
	test "$SLOT $(slotsum_ok && echo exact) $(st "s['booted'], s['slots']['$good']['good'], s['slots']['$good']['version']")" = \
	"$good exact ('$good', True, '$ver')"
check "$TRIALS power cuts, each during an install" test "$cuts" -ge "$TRIALS"
steps=""
for x in "${!STEPS[@]}"; do steps+=" $x: ${STEPS[$x]},"; done
echo "# power cuts by the step they interrupted:${steps%,}"

# the emulated machine (TCG) has been seen to hang in its kernel, before the
# initramfs had loaded the modules, about once in some hundred boots (sys_boot
# powers it on again); more than that is no longer chance
check "the VM hung in its kernel, before slotsync ran, in at most 2 of $N boots ($SYS_HUNG)" test "$SYS_HUNG" -le 2
echo "# boots:"
printf '%s' "$SUMMARY"
echo "# system suite: $N boots, $cuts power cuts, $(( $(date +%s) - start )) s wall time, $(( SYS_ON_MS / 1000 )) s of it with the VM on"
finish
