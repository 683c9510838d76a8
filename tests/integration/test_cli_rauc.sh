#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The commands a RAUC user expects, on a device made of files: mark-good,
# mark-bad and mark-active of any slot (booted, other, A, B), info BUNDLE with
# the configuration's keyring, a bad bundle told under the user's own path
# (its copy in the state folder removed), and an agent that leaves a manual
# install waiting for its reboot alone instead of failing on it.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"

signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p www
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible rauc-test "${SIGN[@]}" \
	--delta-from "$V1.caibx:$V1" www/v2.bundle >/dev/null 2>&1 ||
	$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible rauc-test "${SIGN[@]}" www/v2.bundle >/dev/null
$G bundle --no-progress --store www/store --image "$V2" --version 2.1 --compatible rauc-test "${SIGN[@]}" www/v21.bundle >/dev/null
future=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
start_nginx srv "$T/www"
device() { # device DIR [EXTRA [update] LINES]
	device_fixture "$1" rauc-test "$1/boot.state" "store = $NGINX_URL/store
ca-file = $T/test-ca.pem
reboot-command = never
${2:-}"
}
boot() { $SLOTSYNC_BOOTCTL --backend file --env "$1/boot.state" status; }

# ---- info BUNDLE --------------------------------------------------------------
device "$T/dev"
C="--config $T/dev/system.conf"
$S info $C www/v2.bundle >info.txt 2>info.err || true
check "info prints the manifest (version, compatible, image size)" \
	bash -c "grep -Eq '^version +2.0$' info.txt && grep -Eq '^compatible +rauc-test$' info.txt &&
		 grep -Eq '^image_size +$(stat -c %s "$V2")$' info.txt"
$S info $C --json www/v2.bundle >info.json
check "info --json is one object with the same" \
	python3 -c "import json; j = json.load(open('info.json')); assert j['version'] == '2.0' and j['image_size'] == $(stat -c %s "$V2") and isinstance(j['deltas'], list)"
head -c 300 www/v2.bundle >bad.bundle
expect_fail "info on a truncated bundle: exit 1 with the reason, under its path" "slotsync info: bad.bundle: " \
	$S info $C bad.bundle
mkdir -p other && (cd other && signing_ca . && $G bundle --no-progress --store s --image "$V2" --version 9 \
	--compatible rauc-test --signer-cert signer.pem --signer-key signer.key x.bundle >/dev/null)
expect_fail "info on a bundle signed outside the keyring: refused" "other/x.bundle" $S info $C other/x.bundle

# ---- a bad bundle: told under the user's path, its copy removed -----------------
expect_fail "install of a bad bundle names the user's path" "$T/bad.bundle" $S install $C --no-progress "$T/bad.bundle"
check "(not the copy in the state folder)" bash -c "! grep -q '$T/dev/state/install.bundle' '$T/err.txt'"
check "(and the copy is removed)" test ! -e "$T/dev/state/install.bundle"

# ---- mark-good / mark-bad / mark-active ------------------------------------------
# boot_is DIR SLOT "priority P, tries N, good|not good" ... : the boot state of each slot named
boot_is() {
	local d=$1; shift
	while [ $# -gt 0 ]; do
		boot "$d" | grep -qx "slot $1: $2" || { boot "$d" | sed 's/^/  # /'; return 1; }
		shift 2
	done
}
check "mark-active other: slot B boots next, with tries to try it; A stays the fallback" \
	bash -c "$S mark-active $C other"
check "(state)" boot_is "$T/dev" B "priority 2, tries 3, not good" A "priority 1, tries 0, good"
$S mark-bad $C B
check "mark-bad B: B is never booted, A boots" boot_is "$T/dev" B "priority 0, tries 0, not good" A "priority 2, tries 0, good"
$S mark-good $C B
check "mark-good B: B is good again, A still first" boot_is "$T/dev" B "priority 1, tries 3, good" A "priority 2, tries 0, good"
$S mark-active $C B
check "mark-active B (good): first, still good" boot_is "$T/dev" B "priority 2, tries 3, good" A "priority 1, tries 0, good"
$S mark-bad $C
check "mark-bad (default: the booted slot A)" boot_is "$T/dev" A "priority 0, tries 0, not good" B "priority 2, tries 3, good"
$S mark-good $C booted
$S mark-active $C A
check "mark-good booted, mark-active A: A first and good" boot_is "$T/dev" A "priority 2, tries 3, good" B "priority 1, tries 3, good"
expect_fail "mark-good C: refused, naming the slot" 'no slot "C"' $S mark-good $C C
expect_fail "mark-good A B: a usage error" "Usage: slotsync mark-good" $S mark-good $C A B

# ---- the agent after a manual install that waits for its reboot -----------------
device "$T/man" "channel = $NGINX_URL/stable.pointer"
sed -i "s|^reboot-command = never|reboot-command = touch $T/man/rebooted|" "$T/man/system.conf"
$G channel --bundle-url v21.bundle --bundle www/v21.bundle --version 2 --expires "$future" "${SIGN[@]}" \
	www/stable.pointer >/dev/null
check "a manual install of v2.0 waits for its reboot" \
	bash -c "$S install --config '$T/man/system.conf' --no-progress www/v2.bundle | grep -q 'reboot to run it'"
rc=0
$S agent --config "$T/man/system.conf" --once >agent.out 2>agent.err || rc=$?
check "the agent, with a pointer to another release, leaves it for the reboot (exit $rc: $(tail -1 agent.err))" \
	bash -c "[ $rc -eq 0 ] && ! grep -q 'unfinished at step' agent.err"
check "(it waits for the reboot its operator chooses: the agent did not reboot)" test ! -e "$T/man/rebooted"
check "(and says so in its status)" grep -q "waits for a reboot" "$T/man/state/agent.json"
check "(slot B still holds v2.0, and it is the one booted next)" \
	bash -c "cmp -s -n $(stat -c %s "$V2") '$T/man/slot-b.img' '$V2' &&
		 $SLOTSYNC_BOOTCTL --backend file --env '$T/man/boot.state' simulate-boot | grep -q B"

# ---- D-Bus: Mark, Info, GetSlotStatus, Compatible ------------------------------------
# a private bus that anyone may reach (its socket in a folder open to all), so
# that a caller who is not root can be refused by the agent itself
mkdir -m 0777 "$T/pub"
chmod 0711 "$T"
cat >bus.conf <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$T/pub/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
dbus-daemon --config-file="$T/bus.conf" --nofork --nopidfile 2>"$T/dbus.err" &
CLEANUP+=("kill $! 2>/dev/null")
for _ in $(seq 100); do [ -S "$T/pub/bus" ] && break; sleep 0.05; done
BUS=unix:path=$T/pub/bus
device "$T/bus" "channel = $NGINX_URL/none.pointer
poll-interval = 1h
poll-jitter = 1h"
$S agent --config "$T/bus/system.conf" --dbus "$BUS" 2>"$T/agent-bus.log" &
AGENT=$!
CLEANUP+=("kill $AGENT 2>/dev/null")
B=(busctl --address="$BUS" --timeout=10)
OBJ=(org.slotsync.Installer1 /org/slotsync/Installer1 org.slotsync.Installer1)
for _ in $(seq 100); do "${B[@]}" --timeout=1 status org.slotsync.Installer1 >/dev/null 2>&1 && break; sleep 0.05; done
unquote() { python3 -c 'import sys; s = sys.stdin.read().strip(); assert s.startswith("s \""), s; print(s[3:-1].encode().decode("unicode_escape"))'; }
check "Compatible is the configuration's: $("${B[@]}" get-property "${OBJ[@]}" Compatible 2>&1)" \
	test "$("${B[@]}" get-property "${OBJ[@]}" Compatible 2>&1)" = 's "rauc-test"'
"${B[@]}" call "${OBJ[@]}" GetSlotStatus 2>&1 | unquote >slots.json || true
check "GetSlotStatus: both slots, their devices and boot state" python3 -c "
import json; s = json.load(open('slots.json'))
assert s['A']['device'].endswith('/bus/slot-a.img') and s['B']['device'].endswith('/bus/slot-b.img'), s
assert s['A']['booted'] is True and 'priority' in s['B'], s"
"${B[@]}" call "${OBJ[@]}" Info s "$T/www/v2.bundle" 2>&1 | unquote >info-bus.json || true
check "Info: the bundle's manifest as JSON" python3 -c "
import json; j = json.load(open('info-bus.json')); assert j['version'] == '2.0' and j['compatible'] == 'rauc-test', j"
expect_fail "Info of a bad bundle: an error with the reason" "bundle is truncated" "${B[@]}" call "${OBJ[@]}" Info s "$T/bad.bundle"
"${B[@]}" call "${OBJ[@]}" Mark ss active other >mark.out 2>&1 || true
check "Mark active other by root: B boots next ($(cat mark.out))" \
	bash -c "$SLOTSYNC_BOOTCTL --backend file --env '$T/bus/boot.state' status | grep -q '^next: B'"
expect_fail "Mark with a state that is none: refused" 'no state "great"' "${B[@]}" call "${OBJ[@]}" Mark ss great A
nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups busctl --address="$BUS" --timeout=10 "$@"; }
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	expect_fail "Mark by a caller who is not root: refused by the agent (the bus lets anyone call)" "Access denied" nobody call "${OBJ[@]}" Mark ss bad A
	check "(the boot state is unchanged)" bash -c "$SLOTSYNC_BOOTCTL --backend file --env '$T/bus/boot.state' status | grep -qx 'slot A: priority 1, tries 0, good'"
fi
kill -TERM $AGENT
wait $AGENT || true

finish
