#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A whole arm64 device on a real U-Boot boot (tests/system-uboot/lib.sh,
# lib-system.sh): Debian's U-Boot runs boot.scr (docs/boot/uboot-boot.cmd),
# which counts the boots RAUC's way and boots the chosen slot's own kernel and
# initramfs from its boot volume; the initramfs unlocks the slot's root
# (LUKS2, its key sealed by the TPM: swtpm as qemu's tpm-tis-device) with the
# cross-built slotsync; systemd starts slotsync's agent, which updates the
# slot group (root and boot image) from a signed channel.  One device lives
# through (after the factory's own boot formatted slot A and installed v1):
#   1. factory v1 in A → the agent installs v2 (root and boot image) into B
#      → reboot → U-Boot boots B's kernel → health checks pass → B is good;
#   2. v3, whose health check fails → installed into A → A is tried, marked
#      bad → U-Boot boots B's kernel and root again; the agent reports v3
#      failed and does not install it again;
#   3. v4, whose kernel panics (its initramfs's init exits) → installed into
#      A → BOOT_A_LEFT counts down in U-Boot at each panic → U-Boot falls back
#      to B by itself → the agent reports v4 failed, never installs it again;
#   4. power loss at random instants of installs
#      (SLOTSYNC_UBOOT_POWERLOSS_TRIALS, 5; 25 with SLOTSYNC_LONG=1): every
#      next boot comes up on a good slot, the install resumes, and the slot
#      group it wrote is byte-exact.
# The host checks each boot volume byte for byte on the disk after the install
# that wrote it; the guest hashes its root's plaintext at every boot
# (systest-slotsum) and the host compares.  Every boot's console is kept
# (ub-u*.log), and a summary ends the output: slot, U-Boot's counts, release,
# and the seconds from power-on to the kernel, the initramfs and the agent's
# first log line.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib-system.sh"
ub_require
command -v swtpm >/dev/null || { echo "SKIP: swtpm is missing (Debian: swtpm)"; exit 77; }
G=$SLOTSYNC_GEN
cd "$T"
start=$(date +%s)
ARTIFACTS=${SLOTSYNC_SYSTEM_ARTIFACTS:-${SLOTSYNC_BUILD_DIR:-$T}/system-uboot-logs}
TRIALS=${SLOTSYNC_UBOOT_POWERLOSS_TRIALS:-$([ "${SLOTSYNC_LONG:-0}" = 1 ] && echo 25 || echo 5)}
SEED=${SLOTSYNC_SYSTEM_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
echo "# power-loss trials: $TRIALS, seed $SEED (SLOTSYNC_SYSTEM_SEED)"

ub_arm64 || { not_ok "the arm64 cross build failed"; finish; }
missing=$(BUILD_DIR=$UB_ARM64 bash "$SLOTSYNC_SOURCE_DIR/scripts/cross-build.sh" --runtime-packages |
	while read -r p; do [[ ",$UB_PKGS," == *",$p,"* ]] || [ "$p" = libc6 ] || echo "$p"; done)
check "the arm64 root has every library the cross-built slotsync needs (missing: ${missing:-none})" test -z "$missing"
ub_setup || { not_ok "the kernel or the arm64 root could not be set up"; finish; }
echo "# setup (arm64 build, kernel, root: cached) $(($(date +%s) - start)) s"

# ---- releases: a root and a boot image each -------------------------------------
signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
for v in 1.0 2.0 3.0 4.0; do
	kind=
	[ $v = 3.0 ] && kind=failing
	ub_sys_release $v $kind || { not_ok "release $v could not be built"; finish; }
	kind=
	[ $v = 4.0 ] && kind=broken
	ub_sys_boot_image $v $kind || { not_ok "the boot image of $v could not be built"; finish; }
done
ok "releases 1.0, 2.0, 3.0 (its radio check fails), 4.0 (its kernel panics): arm64 roots with systemd and slotsync ($(du -m release-2.0.sqfs | cut -f1) MB squashfs), boot images with kernel and initramfs ($(du -m boot-2.0.img | cut -f1) MB)"
mkdir -p updates
bundle() { # bundle VERSION ROOT_RELEASE BOOT_RELEASE
	$G bundle --no-progress --store updates/store --image "release-$2.sqfs" --image "boot=boot-$3.img" --version "$1" \
		--compatible slotsync-arm64-virt --security-version 1 "${SIGN[@]}" "updates/v$1.bundle" >/dev/null
}
for v in 1.0 2.0 3.0 4.0; do bundle $v $v $v; done
$G make --no-progress --store updates/store release-1.0.sqfs updates/v1.0.caibx >/dev/null
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
publish() { # publish POINTER_VERSION BUNDLE_VERSION ACTION
	$G channel --bundle-url "v$2.bundle" --bundle "updates/v$2.bundle" --version "$1" --expires "$EXPIRES" \
		"${SIGN[@]}" updates/stable.pointer >/dev/null
	echo "$3" >updates/action
	updates_disk
}
# the updates disk, with the size of what each slot in HASH should hold: the
# guest hashes that much of its root's plaintext when it boots that slot
# (hashing costs the emulated machine seconds: asked for at the first boot of
# what an install wrote, not again after)
HASH=
updates_disk() {
	: >updates/slotsum
	for s in $HASH; do [ -n "${HAS[$s]:-}" ] && echo "$s $(stat -c %s "release-${HAS[$s]}.sqfs")" >>updates/slotsum; done
	ub_updates_disk
}
ub_sys_disk 1.0 || { not_ok "the disk could not be built"; finish; }
echo "# releases, bundles, disk: $(($(date +%s) - start)) s"
declare -A HAS=([A]=1.0 [B]=)
publish 1 1.0 stay
ub_sys_factory 1.0 || true
check "the factory's boot formats slot A (LUKS2, its key sealed by the TPM) and installs v1 into it" \
	grep -aq "SYSTEST factory-done" ub-factory.log
grep -aq "SYSTEST factory-done" ub-factory.log || { grep -a SYSTEST ub-factory.log | tail -n 5 >&2; finish; }

N=0
SUMMARY=""
# boot [KILL_AFTER]: one power-on, one boot (a reset ends it); sets LOG,
# SLOT (what U-Boot booted), BIMG (the boot image's release, from its
# initramfs), GOT ("SLOT VERSION" from the report), status-$N.json
boot() {
	N=$((N + 1))
	UB_TPM=1 UB_NO_REBOOT=1 UB_KILL_AFTER=${1:-} ub_power_on "u$N" 400
	LOG=$T/ub-u$N.log
	SLOT=$(sed -n 's/.*slotsync: booting slot \([AB]\).*/\1/p' "$LOG" | head -n1)
	BIMG=$(sed -n 's/.*SYSTEST initramfs.* boot-image \([0-9.]*\).*/\1/p' "$LOG" | head -n1)
	GOT=$(sed -n 's/^[0-9.]* SYSTEST booted //p' "$LOG" | head -n1)
	console_status "$LOG" >"status-$N.json"
	SUMMARY+=$(python3 - "$N" "$LOG" "status-$N.json" "${1:+$UB_KILLED}" "${1:-}" "$(ub_sys_boots "u$N")" <<'PY'
import json, re, sys
n, log, path, killed, after, times = sys.argv[1:7]
# the console without the report's status (its failed releases would match)
text = "".join(l for l in open(log, errors="replace") if "SYSTEST status" not in l)
s = json.load(open(path))
slot, kern, initrd, agent = times.split()
u = re.search(r"slotsync: booting slot ([AB]) \((\d+) boots left after this one; order ([AB ]+)\)", text)
ub = f"{u.group(2)} left, order {u.group(3)}" if u else "?"
b = re.search(r"SYSTEST initramfs.* boot-image (\S+)", text)
rel, after_boot = "-", "no report"
if s and s.get("booted") in ("A", "B"):
    x = s["slots"][s["booted"]]
    rel, after_boot = x.get("version") or "?", "good" if x["good"] else "not good"
notes = []
if "Kernel panic" in text:
    notes.append("kernel panic")
if re.search(r"failed its health checks", text):
    notes.append("health check failed: marked bad")
m = re.search(r"resuming the install of (\S+) at step (\S+)", text)
if m:
    notes.append(f"resumed {m.group(1)} at {m.group(2)}")
m = re.search(r"installed (\S+) into slot ([AB]); reboot due", text)
if m:
    notes.append(f"installed {m.group(1)} into {m.group(2)}")
if killed == "yes":
    notes.append(f"power cut {after} s into an install")
print(f"#   {n:>3}  {slot:<4} {ub:<22} {b.group(1) if b else '-':<6} {rel:<6} {after_boot:<10} {kern:>6} {initrd:>6} {agent:>6}"
      + (f"  {'; '.join(notes)}" if notes else ""))
PY
)$'\n'
}
st() { python3 -c "import json; s=json.load(open('status-$N.json')); v=($1); print(v)" 2>&1; }
log_has() { grep -aq -- "$1" "$LOG"; }
# boot_exact SLOT RELEASE: the slot's boot volume holds exactly RELEASE's boot
# image (on the disk, after the power-on)
boot_exact() {
	local b=3
	[ "$1" = B ] && b=4
	[ "$(ub_part_sum $b "$(stat -c %s "boot-$2.img")")" = "$(sha256sum <"boot-$2.img" | cut -d' ' -f1)" ]
}
# root_exact: the booted slot's root (its plaintext, hashed in the guest)
# holds exactly the root of the release the host installed there
root_exact() {
	local img=release-${HAS[$SLOT]}.sqfs
	grep -aq "SYSTEST slotsum $SLOT $(stat -c %s "$img") $(sha256sum <"$img" | cut -d' ' -f1)\$" "$LOG"
}

# ---- story 1: v1 → v2, a new kernel and a new root ------------------------------
publish 2 2.0 update
boot
check "boot $N: U-Boot boots A's kernel (boot image 1.0), A runs 1.0 ($GOT)" test "$SLOT $BIMG $GOT" = "A 1.0 A 1.0"
check "A's initramfs unlocked A's root through the TPM" log_has 'SYSTEST initramfs unlocked slot A: /dev/mapper/slotsync-A'
check "the agent installed v2 (root and boot image) into slot B and asked for the reboot" log_has 'installed 2.0 into slot B; reboot due'
check "slot B's boot volume is v2's boot image, byte for byte" boot_exact B 2.0
HAS[B]=2.0
HASH=B
# install_s LOG: the seconds from the start of an install to its "reboot due"
install_s() {
	awk '/channel pointer [0-9]+: installing/ && !a { a = $1 } /reboot due/ && a && !b { b = $1 } END { if (a && b) printf "%.1f", b - a }' "$1"
}
INSTALL_S=$(install_s "$LOG")
publish 2 2.0 stay
boot
check "boot $N: U-Boot boots B's own kernel (boot image 2.0), B runs 2.0 ($GOT)" test "$SLOT $BIMG $GOT" = "B 2.0 B 2.0"
check "B's root, newly formatted with its own TPM-sealed key, is v2's root, byte for byte" root_exact
check "B passed its health checks and is marked good" test "$(st "s['slots']['B']['good'], s['install']['step']")" = "(True, 'done')"
check "U-Boot's environment: B first, good, its boots given back" log_has 'SYSTEST env BOOT_ORDER=B A BOOT_A_LEFT=[0-9] BOOT_B_LEFT=2 BOOT_A_OK=1 BOOT_B_OK=1'
HASH=

# ---- story 2: v3 fails its health check --------------------------------------------
publish 3 3.0 update
boot
check "boot $N: B stays (its kernel, its root: $GOT)" test "$SLOT $BIMG $GOT" = "B 2.0 B 2.0"
check "the agent installed v3 into slot A" log_has 'installed 3.0 into slot A'
check "slot A's boot volume is v3's boot image" boot_exact A 3.0
HAS[A]=3.0
HASH=A
publish 3 3.0 stay
boot
check "boot $N: U-Boot tries A's new kernel (boot image 3.0), A's root is v3's" bash -c "test '$SLOT $BIMG' = 'A 3.0' && $(root_exact && echo true || echo false)"
check "A failed its health check: marked bad" log_has '20-radio-link failed'
HASH=
updates_disk
boot
check "boot $N: U-Boot boots B's kernel and B's root again ($GOT)" test "$SLOT $BIMG $GOT" = "B 2.0 B 2.0"
check "the agent reports v3 as failed and does not install it again" \
	test "$(st "[f['version'] for f in s['failed_releases']], 'not installed again' in s['agent']['result']")" = "(['3.0'], True)"

# ---- story 3: v4's kernel panics; U-Boot falls back by itself ----------------------
publish 4 4.0 update
boot
check "boot $N: B installs v4 into slot A" bash -c "test '$SLOT' = B && grep -aq 'installed 4.0 into slot A' '$LOG'"
# the power cuts of story 4 fall within an install's length: this one's
s_=$(install_s "$LOG")
[ -z "$s_" ] || INSTALL_S=$s_
check "slot A's boot volume is v4's boot image" boot_exact A 4.0
HAS[A]=4.0
publish 4 4.0 stay
panics=0
for i in 1 2 3; do
	boot
	[ "$SLOT" = A ] || break
	check "boot $N: U-Boot boots A's new kernel, which panics (boot image 4.0)" \
		bash -c "test '$BIMG' = 4.0 && grep -aq 'Kernel panic' '$LOG'"
	panics=$((panics + 1))
	check "U-Boot took one of A's boots before the kernel ($((2 - panics)) left)" log_has "slotsync: booting slot A ($((2 - panics)) boots left"
done
check "boot $N: after $panics panics (boot-tries = 2), U-Boot falls back to B by itself ($GOT)" \
	test "$panics $SLOT $BIMG $GOT" = "2 B 2.0 B 2.0"
check "the agent takes A out of BOOT_ORDER and gives B its boots back (what U-Boot does if every count runs out)" \
	log_has 'SYSTEST env BOOT_ORDER=B BOOT_A_LEFT=0 BOOT_B_LEFT=2 BOOT_A_OK=0 BOOT_B_OK=1'
check "the agent reports v4 as failed (the bootloader fell back) and does not install it again" \
	test "$(st "[f['version'] for f in s['failed_releases']], 'fell back' in s['failed_releases'][-1]['reason'], 'not installed again' in s['agent']['result']")" = "(['3.0', '4.0'], True, True)"

# ---- story 4: power loss during installs -------------------------------------------
# A release (alternately 1.0's and 2.0's images, so the slot's old content
# never matches) is published; every boot that starts or resumes its install
# loses power at a random instant of it, until the install finishes before
# its cut (then the next release is published) or TRIALS cuts are done.  Every
# boot must come up on a good slot: the one before, or the new one if the cut
# came after the switch.  Then one boot finishes what is left; the new slot's
# boot volume is checked on the disk and its root hashed at its first boot.
[ -n "$INSTALL_S" ] || { not_ok "no install time could be read from boot 1"; INSTALL_S=30; }
echo "# an install takes about $INSTALL_S s in this VM: power cuts fall in [0, $INSTALL_S) s after it starts or resumes"
good=B
cuts=0
k=0
pending=
CUTS=""
# done_install [booted]: the install of 5.$k into $tgt finished (and
# switched); the new slot's first boot hashes its root (unless it "booted"
# already, hashed: a cut after the switch)
FIRST=
done_install() {
	check "5.$k: slot $tgt's boot volume is 5.$k's boot image, byte for byte" boot_exact $tgt $img
	good=$tgt
	pending=
	FIRST=$tgt
	[ -z "${1:-}" ] || FIRST=
}
tries=0
while [ $cuts -lt "$TRIALS" ] && [ $tries -lt $((TRIALS * 2 + 4)) ]; do
	tries=$((tries + 1))
	if [ -z "$pending" ]; then
		k=$((k + 1))
		tgt=$([ $good = A ] && echo B || echo A)
		img=$([ "${HAS[$tgt]}" = 1.0 ] && echo 2.0 || echo 1.0)
		bundle "5.$k" $img $img
		HAS[$tgt]=$img
		pending=5.$k
	fi
	# the slot being written boots only after the switch: its first boot
	HASH="$tgt $FIRST"
	publish $((4 + k)) "5.$k" powerloss
	cut=$(python3 -c "import random; random.seed($SEED * 1000 + $tries); print(f'{random.uniform(0, $INSTALL_S):.1f}')")
	boot "$cut"
	if [ "$SLOT" = "$tgt" ]; then
		# the cut before came after the switch: the new slot boots, is
		# validated and has nothing to install
		check "power cut $cuts came after the switch: the next boot runs the new slot $tgt, its root byte-exact" \
			bash -c "test '$SLOT' = $tgt && $(root_exact && echo true || echo false)"
		CUTS="${CUTS%;} (after the switch);"
		done_install booted
		continue
	fi
	how=$(sed -n "s/.*resuming the install of 5.$k at step \([a-z-]*\).*/resumed at \1/p" "$LOG" | head -n1)
	[ -n "$how" ] || ! log_has "channel pointer [0-9]*: installing" || how=started
	if [ -n "$FIRST" ]; then
		check "boot $N: the new slot $good's first boot, its root byte-exact" root_exact
		FIRST=
	fi
	check "boot $N: came up on the good slot $good and ${how:-did nothing} with the install of 5.$k" \
		bash -c "test '$SLOT' = $good && test -n '$how'"
	if [ "$UB_KILLED" = yes ]; then
		cuts=$((cuts + 1))
		CUTS+=" $cut s ($how);"
	elif [ "$UB_KILLED" = ended ]; then
		check "boot $N: the install of 5.$k finished before the cut at $cut s" log_has "installed 5.$k into slot $tgt; reboot due"
		# the cuts follow the length of the latest whole install
		s_=$(install_s "$LOG")
		if [ "$how" = started ] && [ -n "$s_" ]; then
			INSTALL_S=$s_
			echo "# the install of 5.$k took $INSTALL_S s: the next cuts fall in [0, $INSTALL_S) s"
		fi
		done_install
	else
		not_ok "boot $N: the agent neither started nor resumed the install of 5.$k"
		break
	fi
done
echo stay >updates/action
if [ -n "$pending" ]; then
	HASH="$tgt"
	updates_disk
	boot
	if [ "$SLOT" = "$tgt" ]; then
		check "the last cut came after the switch: the new slot $tgt runs, its root byte-exact" root_exact
		CUTS="${CUTS%;} (after the switch);"
		done_install booted
	else
		how=$(sed -n "s/.*resuming the install of 5.$k at step \([a-z-]*\).*/resumed at \1/p" "$LOG" | head -n1)
		# a cut before the install recorded its first step: this boot starts it again
		[ -n "$how" ] || ! log_has "channel pointer [0-9]*: installing" || how=started
		check "boot $N: came up on the good slot $good, ${how:-did nothing} with the install of 5.$k and finished it" \
			bash -c "test '$SLOT' = $good && test -n '$how' && grep -aq 'installed 5.$k into slot $tgt; reboot due' '$LOG'"
		done_install
	fi
fi
HASH=$good
updates_disk
boot
check "after $cuts power cuts: U-Boot boots slot $good's kernel, whose root is 5.$k's, byte-exact, good" \
	test "$SLOT $BIMG $(root_exact && echo exact) $(st "s['booted'], s['slots']['$good']['good'], s['slots']['$good']['version']")" = \
	"$good ${HAS[$good]} exact ('$good', True, '5.$k')"
check "$TRIALS power cuts, each during an install ($cuts)" test "$cuts" -ge "$TRIALS"
echo "# power cuts (instant after the install started or resumed; what that boot did):${CUTS%;}"

echo "# boots: slot, U-Boot (boots left after this one, order), boot image, release, after the boot; seconds from power-on to the kernel, the initramfs, the agent's first line"
printf '#   %3s  %-4s %-22s %-6s %-6s %-10s %6s %6s %6s\n' boot slot U-Boot image rel after kernel initrd agent
printf '%s' "$SUMMARY"
echo "# system-uboot update: $N boots, $cuts power cuts, $(($(date +%s) - start)) s wall time"
finish
