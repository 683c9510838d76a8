#!/bin/bash
# A real boot, end to end, in qemu: GRUB (docs/boot/grub.cfg) → kernel →
# initramfs that unlocks the slot through the TPM → squashfs root → systemd,
# whose slotsync agent updates the device.  Stories:
#   - the factory installs v1 into slot A; boot v1 from A → the agent installs
#     v2 into B → reboot → GRUB boots B → health checks pass → marked good →
#     B stays across two more reboots;
#   - v3, whose health check fails → installed into A → reboot → A is tried,
#     never marked good → GRUB boots B again, B's data as it was; the agent
#     reports v3 as failed and does not install it again.
# The serial console of every boot is kept (sys-*.log), and a summary of the
# boots is printed at the end.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../vm/lib.sh"
source "$(dirname "$0")/lib.sh"
G=$SLOTSYNC_GEN
cd "$T"
start=$(date +%s)
ARTIFACTS=${SLOTSYNC_SYSTEM_ARTIFACTS:-$SLOTSYNC_BUILD_DIR/system-logs}
mkdir -p "$ARTIFACTS"
CLEANUP+=("cp $T/sys-*.log '$ARTIFACTS/' 2>/dev/null")

# ---- releases, bundles, the channel ----------------------------------------------
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >sign.ext
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=ca \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ci -keyout signer.key -out signer.csr 2>/dev/null
openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile sign.ext -out signer.pem 2>/dev/null
SIGN=(--signer-cert signer.pem --signer-key signer.key)
for v in 1.0 2.0 3.0; do
	if [ $v = 3.0 ]; then sys_release $v failing; else sys_release $v; fi || { not_ok "release $v could not be built"; finish; }
done
ok "releases 1.0, 2.0, 3.0 (its radio check fails): Debian roots with systemd and slotsync ($(du -m release-2.0.sqfs | cut -f1) MB squashfs each)"
mkdir -p updates
for v in 1.0 2.0 3.0; do
	$G bundle --no-progress --store updates/store --image release-$v.sqfs --version $v --compatible slotsync-vm \
		--security-version 1 "${SIGN[@]}" updates/v$v.bundle >/dev/null
done
$G make --no-progress --store updates/store release-1.0.sqfs updates/v1.caibx >/dev/null
sha1=$(sha256sum updates/v1.0.bundle | cut -d' ' -f1)
printf '{"A": {"status": "good", "version": "1.0", "bundle_sha256": "%s", "security_version": 1, "installed": 0}, "B": {"status": "", "version": "", "bundle_sha256": "", "security_version": 0, "installed": 0}}\n' \
	"$sha1" >updates/slots.json
EXPIRES=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
publish() { # publish POINTER_VERSION RELEASE ACTION
	$G channel --bundle-url "v$2.bundle" --bundle "updates/v$2.bundle" --version "$1" --expires "$EXPIRES" \
		"${SIGN[@]}" updates/stable.pointer >/dev/null
	echo "$3" >updates/action
	sys_updates_disk
}

# ---- the disk, the factory ---------------------------------------------------------
sys_disk || { not_ok "the disk could not be built"; finish; }
publish 1 1.0 stay
sys_boot factory
check "the factory formats slots and data partitions (LUKS2, TPM-sealed) and installs v1 into A" \
	grep -q "SYSTEST factory-done" sys-factory.log
grep -q "SYSTEST factory-done" sys-factory.log || { grep -a SYSTEST sys-factory.log >&2; finish; }

N=0
SUMMARY=""
# boot EXPECTED_SLOT EXPECTED_VERSION: one power-on; checks what came up (the
# slot from the initramfs; the release from the report, which a boot that
# fails its health checks never reaches: the agent reboots it before)
boot() {
	N=$((N + 1))
	sys_boot "$N"
	tr -d '\r' <"sys-$N.log" >"sys-$N.txt"
	local slot got st
	slot=$(sed -n 's/^SYSTEST initramfs slot \([AB]\).*/\1/p' "sys-$N.txt" | head -n1)
	got=$(sed -n 's/^SYSTEST booted //p' "sys-$N.txt" | head -n1)
	st=$(sed -n 's/^SYSTEST status //p' "sys-$N.txt" | head -n1)
	echo "${st:-null}" >"status-$N.json"
	SUMMARY+=$(python3 - "$N" "$slot" "$got" "status-$N.json" <<'PY'
import json, sys
n, slot, got, path = sys.argv[1:5]
s = json.load(open(path))
if s:
    x = s["slots"][s["booted"]]
    print(f"   boot {n:>2}: slot {slot}, release {got.split()[-1]}, tries left {x['tries']}, "
          f"{'good' if x['good'] else 'not good'}; install: {(s['install'] or {}).get('step', '-')}")
else:
    print(f"   boot {n:>2}: slot {slot or '?'}, no report (rebooted by the agent before it)")
PY
)$'\n'
	if [ -n "$got" ]; then
		check "boot $N: slot $1, release $2 ($got)" test "$got" = "$1 $2"
	else
		check "boot $N: slot $1 (release $2: rebooted before its report)" test "$slot" = "$1"
	fi
}
st() { python3 -c "import json; s=json.load(open('status-$N.json')); v=($1); print(v)" 2>&1; }

# ---- story 1: v1 → v2 -------------------------------------------------------------
publish 2 2.0 update
boot A 1.0
check "the agent installed v2 into slot B and asked for the reboot" \
	bash -c "grep -aq 'installed 2.0 into slot B; reboot due' sys-$N.txt"
publish 2 2.0 stay
boot B 2.0
check "B passed its health checks and is marked good" test "$(st "s['slots']['B']['good'], s['install']['step']")" = "(True, 'done')"
check "B's data partition is a copy of A's" grep -aq "SYSTEST data factory data" "sys-$N.txt"
boot B 2.0
boot B 2.0
check "B stays across two more reboots, good" test "$(st "s['booted'], s['slots']['B']['good']")" = "('B', True)"

# ---- story 2: v3 fails its health check ------------------------------------------------
publish 3 3.0 update
boot B 2.0
check "the agent installed v3 into slot A" grep -aq "installed 3.0 into slot A" "sys-$N.txt"
publish 3 3.0 stay
boot A 3.0
check "A was tried and failed its health check: marked bad" bash -c "grep -aq '20-radio-link failed' sys-$N.txt"
boot B 2.0
check "GRUB boots B again" test "$(st "s['booted']")" = B
check "B's data partition is as it was" grep -aq "SYSTEST data factory data" "sys-$N.txt"
check "the agent reports v3 as failed and does not install it again" \
	test "$(st "[f['version'] for f in s['failed_releases']], 'not installed again' in s['agent']['result']")" = "(['3.0'], True)"

echo "# boots:"
printf '%s' "$SUMMARY"
echo "# system suite (update stories): $(( $(date +%s) - start )) s wall time"
finish
