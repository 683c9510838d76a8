#!/bin/bash
# The systemd units pass systemd-analyze verify (a unit with a mistake does
# not), and the agent's D-Bus installer interface works on a private bus the
# test starts (dbus-daemon), driven with busctl: properties, Status, Install
# with its Completed signal, Busy while it runs, and a clean stop.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
cd "$T"

# ---- the units, as CMake configures them, pointing at this build ------------------
mkdir -p units
for f in "$SLOTSYNC_SOURCE_DIR"/data/systemd/*; do
	sed "s|@CMAKE_INSTALL_FULL_BINDIR@|$(dirname "$S")|" "$f" >"units/$(basename "$f" .in)"
done
verify() { # verify UNIT...: no complaint at all
	systemd-analyze verify "$@" >"$T/verify.out" 2>&1 && [ ! -s "$T/verify.out" ]
}
for u in units/*; do
	check "systemd-analyze verify $(basename "$u")" verify "$u"
done
[ -s "$T/verify.out" ] && cat "$T/verify.out" >&2
mkdir -p broken
sed 's/^ProtectHome=yes/ProtectHomme=yes/' units/slotsync-agent.service >broken/slotsync-agent.service
check "(a unit with a misspelt key does not pass)" bash -c "! systemd-analyze verify broken/slotsync-agent.service >out 2>&1 || [ -s out ]"
check "the agent's unit is Type=notify with a watchdog and restarts on failure" \
	bash -c "grep -qx 'Type=notify' units/slotsync-agent.service && grep -q '^WatchdogSec=' units/slotsync-agent.service &&
		grep -qx 'Restart=on-failure' units/slotsync-agent.service"
check "the timer spreads a fleet's polls" grep -q '^RandomizedDelaySec=' units/slotsync-poll.timer

# ---- a private bus and the agent on it ----------------------------------------------
sample_images
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >sign.ext
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=ca \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ci -keyout signer.key -out signer.csr 2>/dev/null
openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile sign.ext -out signer.pem 2>/dev/null
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
mkdir -p dev/state
cp "$V1" dev/slot-a.img
truncate -s 16M dev/slot-b.img
echo "slotsync.slot=A" >dev/cmdline
cat >dev/system.conf <<CONF
[system]
compatible = bus-test
state-dir = $T/dev/state
keyring = $T/ca.pem
[boot]
backend = file
env = $T/dev/boot.state
cmdline = $T/dev/cmdline
[update]
channel = $NGINX_URL/none.pointer
store = $NGINX_URL/store
ca-file = $T/test-ca.pem
max-rate = 2M
poll-interval = 1h
poll-jitter = 1h
reboot-command = never
[slot.A]
device = $T/dev/slot-a.img
[slot.B]
device = $T/dev/slot-b.img
CONF
$S agent --config "$T/dev/system.conf" --dbus "$BUS" 2>"$T/agent.log" &
AGENT=$!
CLEANUP+=("kill $AGENT 2>/dev/null")
B=(busctl --address="$BUS")
OBJ=(org.slotsync.Installer1 /org/slotsync/Installer1 org.slotsync.Installer1)
for _ in $(seq 100); do "${B[@]}" status org.slotsync.Installer1 >/dev/null 2>&1 && break; sleep 0.05; done
prop() { "${B[@]}" get-property "${OBJ[@]}" "$1" 2>&1; }
check "the agent owns org.slotsync.Installer1 on the bus" bash -c "${B[*]} list | grep -q '^org.slotsync.Installer1 '"
check "introspection shows Install, Status, Progress and Completed" \
	bash -c "${B[*]} introspect ${OBJ[*]} | grep -q '^.Install ' && ${B[*]} introspect ${OBJ[*]} | grep -q '^.Status ' &&
		${B[*]} introspect ${OBJ[*]} | grep -q '^.Progress ' && ${B[*]} introspect ${OBJ[*]} | grep -q '^.Completed '"
check "Operation is idle: $(prop Operation)" test "$(prop Operation)" = 's "idle"'
check "BootedSlot is A: $(prop BootedSlot)" test "$(prop BootedSlot)" = 's "A"'
st=$("${B[@]}" call "${OBJ[@]}" Status 2>&1)
check "Status returns the status JSON" bash -c "grep -q 'slot-b.img' <<<'$st' && grep -q booted <<<'$st'"

# Install: Completed(result, message) arrives; Busy while it runs
"${B[@]}" monitor --match "type=signal,interface=org.slotsync.Installer1,member=Completed" >"$T/monitor.out" 2>&1 &
MON=$!
CLEANUP+=("kill $MON 2>/dev/null")
sleep 0.5
check "Install of a bundle that is not there is accepted" "${B[@]}" call "${OBJ[@]}" Install s "$T/nothing.bundle"
for _ in $(seq 100); do grep -q "nothing.bundle" "$T/monitor.out" && break; sleep 0.05; done
check "Completed carries a failure naming the file" bash -c "grep -q 'nothing.bundle' '$T/monitor.out' && ! grep -qE 'INT32 0$' '$T/monitor.out'"
check "LastError says it: $(prop LastError | head -c 120)" bash -c "${B[*]} get-property ${OBJ[*]} LastError | grep -q nothing.bundle"
check "Install of v2.0 is accepted" "${B[@]}" call "${OBJ[@]}" Install s "$T/v2.bundle"
for _ in $(seq 100); do [ "$(prop Operation)" = 's "installing"' ] && break; sleep 0.02; done
expect_fail "a second Install while one runs: Busy" "is running" "${B[@]}" call "${OBJ[@]}" Install s "$T/v2.bundle"
p1=$(prop Progress)
for _ in $(seq 300); do [ "$(prop Operation)" = 's "idle"' ] && break; sleep 0.05; done
p2=$(prop Progress)
check "Progress moved ($p1 -> $p2)" bash -c "[ '$p1' != '$p2' ] && grep -q '^(stttt) \"reboot\"' <<<'$p2'"
check "Completed carries success for v2.0" bash -c "sleep 0.3; grep -qE 'INT32 0' '$T/monitor.out' && grep -q 'installed 2.0 into slot B' '$T/monitor.out'"
check "(slot B holds v2.0)" cmp -s -n "$(stat -c %s "$V2")" "$T/dev/slot-b.img" "$V2"
kill -TERM $AGENT
rc=0
for _ in $(seq 100); do kill -0 $AGENT 2>/dev/null || break; sleep 0.05; done
wait $AGENT || rc=$?
check "the agent stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0
check "(and leaves the bus)" bash -c "! ${B[*]} list | grep -q '^org.slotsync.Installer1 '"
finish
