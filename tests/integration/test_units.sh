#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The systemd units and the D-Bus policy, as `cmake --install` puts them:
#  - systemd-analyze verify has nothing to say about any unit (and does about
#    a misspelt key, a missing program, an ordering cycle); enabled as their
#    [Install] sections say, they join a boot without an ordering cycle;
#  - the policy, on a bus with the distribution's system bus rules: root owns
#    the name and may install, anyone else may only read;
# and the agent's D-Bus installer interface on a private bus the test starts
# (dbus-daemon), driven with busctl: introspection, properties and their
# changes, Status, Poll, Install with its Completed signal, Busy while one
# runs, a clean stop on SIGTERM.
: "${SLOTSYNC_BUILD_DIR:?set by ctest}"
# by hand from the source tree: the build's slotsync-gen
export SLOTSYNC_GEN=${SLOTSYNC_GEN:-$SLOTSYNC_BUILD_DIR/slotsync-gen}
source "$(dirname "$0")/lib.sh"
S=$(realpath "$SLOTSYNC_BIN")
G=$(realpath "$SLOTSYNC_GEN")
BUILD=$(realpath "$SLOTSYNC_BUILD_DIR")
cd "$T"
matches() { [[ $1 =~ $2 ]]; } # matches STRING REGEX

# ---- the units, installed ----------------------------------------------------------
R=$T/root
UD=$R/usr/lib/systemd/system
UNITS=(slotsync-agent.service slotsync-mark-good.service slotsync-poll.service slotsync-poll.timer)
POLICY=$R/usr/share/dbus-1/system.d/org.slotsync.Installer1.conf
cmake --install "$BUILD" --prefix "$R/usr" >install.out 2>&1 || cat install.out >&2
check "cmake --install puts the units into lib/systemd/system, the D-Bus policy into share/dbus-1/system.d" \
	bash -c "cd '$UD' && ls ${UNITS[*]} >/dev/null && test -f '$POLICY'"
# ExecStart= names the program where the configured prefix has it
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
bindir=$(sed -n 's/^CMAKE_INSTALL_BINDIR:PATH=//p' "$BUILD/CMakeCache.txt")
case $bindir in /*) ;; *) bindir=$prefix/$bindir ;; esac
exec_dir=$(sed -n 's|^ExecStart=\(/.*\)/slotsync agent --dbus system$|\1|p' "$UD/slotsync-agent.service" 2>/dev/null || true)
check "the units run $bindir/slotsync, every @VARIABLE@ filled in" \
	bash -c "[ '$exec_dir' = '$bindir' ] && ! grep -n '@[A-Za-z_]*@' '$UD'/slotsync-*"
# systemd-analyze verify wants the programs to be there: the installed ones
[ -n "$exec_dir" ] && sed -i "s|^\(Exec[A-Za-z]*=\)$exec_dir/|\1$R/usr/bin/|" "$UD"/slotsync-*.service
W=$R/etc/systemd/system
# verify OUT [DIR] UNIT...: systemd-analyze verify with the installed and
# enabled units (DIR, when a folder, first); its complaints in OUT, and true
# if it has none
verify() {
	local out=$1 path=$W:$UD:
	shift
	if [ -d "$1" ]; then path=$1:$path; shift; fi
	SYSTEMD_UNIT_PATH=$path systemd-analyze verify "$@" >"$out" 2>&1 && [ ! -s "$out" ]
}
for u in "${UNITS[@]}"; do
	if verify "verify-$u.out" "$UD/$u"; then
		ok "systemd-analyze verify $u: nothing to say"
	else
		not_ok "systemd-analyze verify $u: $(cat "verify-$u.out")"
	fi
done
# boots WHAT UNIT...: with the units enabled so far, a boot (the start of
# multi-user.target and timers.target) starts exactly UNIT... of ours, and
# nothing is said about them (an ordering cycle, say)
boots() {
	local what=$1 want got
	shift
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
	verify boot.out multi-user.target timers.target || true
	got=$(SYSTEMD_LOG_LEVEL=debug SYSTEMD_UNIT_PATH=$W:$UD: systemd-analyze verify multi-user.target timers.target 2>&1 |
		sed -n 's/^slotsync-.*: Installed new job \(slotsync-[^/]*\)\/start as .*/\1/p' | sort -u | tr '\n' ' ')
	if [ "$got" = "$want" ] && ! grep -q slotsync boot.out; then
		ok "$what: starts ${got% }; nothing said about them"
	else
		not_ok "$what: starts ${got% } (not ${want% }); $(grep slotsync boot.out)"
	fi
}
systemctl --root="$R" enable slotsync-agent.service >enable.out 2>&1 || true
check "enabled, the agent is wanted by multi-user.target" test -L "$W/multi-user.target.wants/slotsync-agent.service"
boots "a device with the agent boots" slotsync-agent.service
systemctl --root="$R" disable slotsync-agent.service >>enable.out 2>&1 || true
systemctl --root="$R" enable slotsync-mark-good.service slotsync-poll.timer >>enable.out 2>&1 || true
check "enabled, the validation is wanted by multi-user.target, the timer by timers.target" \
	test -L "$W/multi-user.target.wants/slotsync-mark-good.service" -a -L "$W/timers.target.wants/slotsync-poll.timer"
boots "a device without the agent boots" slotsync-mark-good.service slotsync-poll.timer
# ... and systemd-analyze would say so
mkdir -p bad cycle
sed 's/^ProtectHome=/ProtectHomme=/' "$UD/slotsync-agent.service" >bad/slotsync-agent.service
verify bad.out bad/slotsync-agent.service || true
check "(systemd-analyze verify names a misspelt key)" grep -q "Unknown key.*'ProtectHomme'" bad.out
sed "s|^ExecStart=[^ ]*|ExecStart=$R/usr/bin/slotsync-missing|" "$UD/slotsync-poll.service" >bad/slotsync-poll.service
verify bad.out bad/slotsync-poll.service || true
check "(and a program that is not there)" grep -q "slotsync-missing" bad.out
sed '/^After=multi-user.target/a Before=basic.target' "$UD/slotsync-mark-good.service" >cycle/slotsync-mark-good.service
verify cycle.out "$T/cycle" multi-user.target || true
check "(and the ordering cycle of a validation both after multi-user.target and before basic.target)" \
	bash -c "grep -q 'ordering cycle' cycle.out && grep -q slotsync-mark-good cycle.out"

# ---- the agent on a private bus ------------------------------------------------------
sample_images
signing_ca
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible bus-test \
	--signer-cert signer.pem --signer-key signer.key "$T/v2.bundle" >/dev/null
start_nginx bus "$T/www"
cat >bus.conf <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$T/bus</listen>
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
for _ in $(seq 100); do [ -S "$T/bus" ] && break; sleep 0.05; done
BUS=unix:path=$T/bus
# device DIR: a device in $T/DIR (slot images, boot state, its state, its
# system.conf) whose agent sits idle for an hour unless asked
device() {
	device_fixture "$T/$1" bus-test "$T/$1/boot.state" "channel = $NGINX_URL/none.pointer
store = $NGINX_URL/store
ca-file = $T/test-ca.pem
max-rate = 2M
poll-interval = 1h
poll-jitter = 1h
reboot-command = never"
}
device dev
$S agent --config "$T/dev/system.conf" --dbus "$BUS" 2>"$T/agent.log" &
AGENT=$!
CLEANUP+=("kill $AGENT 2>/dev/null")
B=(busctl --address="$BUS" --timeout=10)
OBJ=(org.slotsync.Installer1 /org/slotsync/Installer1 org.slotsync.Installer1)
for _ in $(seq 100); do "${B[@]}" status org.slotsync.Installer1 >/dev/null 2>&1 && break; sleep 0.05; done
prop() { "${B[@]}" get-property "${OBJ[@]}" "$1" 2>&1; }
check "the agent owns org.slotsync.Installer1 on the bus" bash -c "${B[*]} list | grep -q '^org.slotsync.Installer1 '"
"${B[@]}" introspect "${OBJ[@]}" >introspect.out 2>&1 || true
check "introspection: Install(s), Poll(), Status() -> s, the properties and the Completed(is) signal" \
	bash -c "grep -qE '^\.Install +method +s +- ' introspect.out && grep -qE '^\.Poll +method +- +- ' introspect.out &&
		grep -qE '^\.Status +method +- +s ' introspect.out && grep -qE '^\.Completed +signal +is ' introspect.out"
check "BootedSlot is const; Operation, LastError and Progress (stttt) emit their changes" \
	bash -c "grep -qE '^\.BootedSlot +property +s .* const$' introspect.out &&
		grep -qE '^\.Operation +property +s .* emits-change$' introspect.out &&
		grep -qE '^\.LastError +property +s .* emits-change$' introspect.out &&
		grep -qE '^\.Progress +property +\(stttt\) .* emits-change$' introspect.out"
check "Operation is idle: $(prop Operation)" test "$(prop Operation)" = 's "idle"'
check "BootedSlot is A, as the kernel command line says: $(prop BootedSlot)" test "$(prop BootedSlot)" = 's "A"'
check "Progress: nothing yet: $(prop Progress)" matches "$(prop Progress)" '^\(stttt\) "[a-z-]+" 0 0 0 0$'
"${B[@]}" call "${OBJ[@]}" Status >status.out 2>&1 || true
# busctl prints the string quoted, with \" for its quotes
check "Status returns the status JSON: the booted slot, both slots' devices" python3 - <<'PY'
import json
s = open("status.out").read().strip()
assert s.startswith('s "'), s
d = json.loads(s[3:-1].encode().decode("unicode_escape"))
assert d["booted"] == "A", d
assert d["slots"]["A"]["device"].endswith("/dev/slot-a.img") and d["slots"]["B"]["device"].endswith("/dev/slot-b.img"), d
PY
# a private bus has no policy: the agent itself lets only root start an install
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chmod 711 "$T"
	pnobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups busctl --address="$BUS" --timeout=10 "$@"; }
	expect_fail "on a private bus, a caller that is not root may not Install" "Access denied" \
		pnobody call "${OBJ[@]}" Install s "$T/nothing.bundle"
	expect_fail "nor Poll" "Access denied" pnobody call "${OBJ[@]}" Poll
	pnobody_status() { pnobody call "${OBJ[@]}" Status | grep -q '\\"booted\\"'; }
	check "but may call Status" pnobody_status
	check "(the agent started nothing for it: LastError is empty)" test "$(prop LastError)" = 's ""'
else
	ok "# SKIP the private bus's own check: it takes root and a user nobody"
fi

# signals from the agent, from now on
"${B[@]}" monitor --match "type=signal,sender=org.slotsync.Installer1" >monitor.out 2>&1 &
CLEANUP+=("kill $! 2>/dev/null")
sleep 0.5
# completed: the Completed signals so far, one a line: RESULT MESSAGE
completed() {
	awk '/Member=Completed/ { c = 1; next }
		c && /INT32/ { r = $2; sub(/;$/, "", r) }
		c && /STRING/ { s = $0; sub(/^[^"]*"/, "", s); sub(/";$/, "", s); print r, s; c = 0 }' monitor.out
}
wait_completed() { # wait_completed N: until N Completed signals came, 10 s at most
	for _ in $(seq 200); do [ "$(completed | wc -l)" -ge "$1" ] && return 0; sleep 0.05; done
	return 1
}
# operations: the values Operation changed to, in order
operations() {
	awk '/STRING "Operation";/ { getline; getline; v = $2; gsub(/[";]/, "", v); printf "%s ", v }' monitor.out
}

check "Poll is accepted" "${B[@]}" call "${OBJ[@]}" Poll
wait_completed 1 || true
c=$(completed | sed -n 1p)
check "Poll: Completed with a failure that names the channel pointer, which is not there ($c)" \
	matches "$c" '^[1-9][0-9]* .*none\.pointer'
check "Install of a bundle that is not there is accepted" "${B[@]}" call "${OBJ[@]}" Install s "$T/nothing.bundle"
wait_completed 2 || true
c=$(completed | sed -n 2p)
check "Install: Completed with a failure that names the file ($c)" matches "$c" '^[1-9][0-9]* .*/nothing\.bundle'
check "LastError says it: $(prop LastError | head -c 120)" matches "$(prop LastError)" '^s ".*/nothing\.bundle'
for _ in $(seq 100); do [ "$(prop Operation)" = 's "idle"' ] && break; sleep 0.05; done
check "Operation is idle again" test "$(prop Operation)" = 's "idle"'
check "Install of v2.0 is accepted" "${B[@]}" call "${OBJ[@]}" Install s "$T/v2.bundle"
for _ in $(seq 100); do [ "$(prop Operation)" = 's "installing"' ] && break; sleep 0.02; done
expect_fail "a second Install while one runs: Busy" "is running" "${B[@]}" call "${OBJ[@]}" Install s "$T/v2.bundle"
expect_fail "a Poll while an install runs: Busy" "is running" "${B[@]}" call "${OBJ[@]}" Poll
p1=$(prop Progress)
for _ in $(seq 300); do [ "$(prop Operation)" = 's "idle"' ] && break; sleep 0.05; done
p2=$(prop Progress)
check "Progress moved ($p1 -> $p2)" bash -c "[ '$p1' != '$p2' ] && grep -q '^(stttt) \"reboot\" 9728000 9728000 ' <<<'$p2'"
wait_completed 3 || true
c=$(completed | sed -n 3p)
check "Install: Completed with success for v2.0 ($c)" matches "$c" '^0 installed 2\.0 into slot B'
check "(slot B holds v2.0)" cmp -s -n "$(stat -c %s "$V2")" "$T/dev/slot-b.img" "$V2"
check "LastError is empty after a success: $(prop LastError)" test "$(prop LastError)" = 's ""'
check "Operation told each of its changes: $(operations)" test "$(operations)" = "polling idle installing idle installing idle "
check "and Progress some of its" grep -q 'STRING "Progress";' monitor.out
kill -TERM $AGENT
rc=0
for _ in $(seq 100); do kill -0 $AGENT 2>/dev/null || break; sleep 0.05; done
wait $AGENT || rc=$?
check "the agent stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
check "(and leaves the bus)" bash -c "! ${B[*]} list | grep -q '^org.slotsync.Installer1 '"

# ---- the policy, on a system bus -------------------------------------------------------
if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
	ok "# SKIP the D-Bus policy: it takes root and a user nobody"
	finish
	exit
fi
# the distribution's system bus rules (deny by default; system.d/*.conf open
# holes), on a socket of our own, with the installed policy in system.d
mkdir -p sysbus
chmod 711 "$T"
chmod 755 sysbus
sed -e '/<user>/d; /<fork\/>/d; /<pidfile>/d; /<syslog\/>/d; /<servicehelper>/d; /<standard_system_servicedirs\/>/d' \
	-e '/\/etc\/dbus-1/d; /selinux/d' -e "s|<listen>.*</listen>|<listen>unix:path=$T/sysbus/bus</listen>|" \
	/usr/share/dbus-1/system.conf >"$R/usr/share/dbus-1/system.conf"
check "(the test's system bus has the distribution's rules: deny own and method calls, system.d)" \
	bash -c "grep -q '<type>system</type>' '$R/usr/share/dbus-1/system.conf' &&
		grep -q '<deny own=\"\\*\"/>' '$R/usr/share/dbus-1/system.conf' &&
		grep -q '<deny send_type=\"method_call\"/>' '$R/usr/share/dbus-1/system.conf' &&
		grep -q '<includedir>system.d</includedir>' '$R/usr/share/dbus-1/system.conf'"
dbus-daemon --config-file="$R/usr/share/dbus-1/system.conf" --nofork --nopidfile 2>"$T/sysbus.err" &
CLEANUP+=("kill $! 2>/dev/null")
for _ in $(seq 100); do [ -S "$T/sysbus/bus" ] && break; sleep 0.05; done
SBUS=unix:path=$T/sysbus/bus
device sys
$S agent --config "$T/sys/system.conf" --dbus "$SBUS" 2>"$T/agent-sys.log" &
AGENT=$!
CLEANUP+=("kill $AGENT 2>/dev/null")
SB=(busctl --address="$SBUS" --timeout=10)
for _ in $(seq 100); do "${SB[@]}" status org.slotsync.Installer1 >/dev/null 2>&1 && break; sleep 0.05; done
nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups busctl --address="$SBUS" --timeout=10 "$@"; }
nobody_status() { nobody call "${OBJ[@]}" Status | grep -q '\\"booted\\"'; }
nobody_get_all() {
	nobody call org.slotsync.Installer1 /org/slotsync/Installer1 org.freedesktop.DBus.Properties GetAll s org.slotsync.Installer1 |
		grep -q '"Operation" s "idle"'
}
nobody_introspect() { nobody introspect "${OBJ[@]}" | grep -qE '^\.Install +method'; }
check "root owns org.slotsync.Installer1" bash -c "${SB[*]} list | grep -q '^org.slotsync.Installer1 '"
check "(the agent did not have to go on without the bus)" bash -c "! grep -q 'without D-Bus' '$T/agent-sys.log'"
check "anyone may read a property: $(nobody get-property "${OBJ[@]}" BootedSlot 2>&1)" \
	test "$(nobody get-property "${OBJ[@]}" BootedSlot 2>&1)" = 's "A"'
check "anyone may read all the properties (GetAll)" nobody_get_all
check "anyone may call Status" nobody_status
check "anyone may introspect" nobody_introspect
expect_fail "anyone else may not Install" "Access denied" nobody call "${OBJ[@]}" Install s "$T/nothing.bundle"
expect_fail "nor Poll" "Access denied" nobody call "${OBJ[@]}" Poll
expect_fail "nor take the name" "Access denied" \
	nobody call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus RequestName su org.slotsync.Installer1 4
check "(the agent saw none of those calls)" bash -c "! grep -q 'nothing.bundle' '$T/agent-sys.log'"
check "root may Install" "${SB[@]}" call "${OBJ[@]}" Install s "$T/nothing.bundle"
for _ in $(seq 100); do grep -q 'nothing.bundle' "$T/agent-sys.log" && break; sleep 0.05; done
check "(and the agent tried it)" grep -q 'nothing.bundle' "$T/agent-sys.log"
kill -TERM $AGENT
rc=0
for _ in $(seq 100); do kill -0 $AGENT 2>/dev/null || break; sleep 0.05; done
wait $AGENT || rc=$?
check "the agent on the system bus stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
finish
