#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The agent against a hostile world: bad configurations (it does not start,
# and says file, line and key), a second agent (refused), a server that answers
# 500 or stalls (backoff with jitter, never a busy loop) or answers 503 with a
# body that never ends (cut after a few KiB), an expired or a
# replayed channel pointer (refused and reported), a pointer to what already
# runs (nothing installed), and the maintenance window.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
G=$SLOTSYNC_GEN
sample_images
cd "$T"

signing_ca
SIGN=(--signer-cert signer.pem --signer-key signer.key)
mkdir -p www/err
$G bundle --no-progress --store www/store --image "$V2" --version 2.0 --compatible agent-test "${SIGN[@]}" www/v2.bundle >/dev/null
future=$(date -u -d '+10 days' +%Y-%m-%dT%H:%M:%SZ)
pointer() { # pointer VERSION EXPIRES OUT
	$G channel --bundle-url v2.bundle --bundle www/v2.bundle --version "$1" --expires "$2" "${SIGN[@]}" "$3" >/dev/null
}
pointer 5 "$future" www/stable.pointer
start_nginx srv "$T/www" "location = /err/stable.pointer { return 500; }"
# a server that takes connections and never answers
STALL_PORT=$(free_port)
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $STALL_PORT)); s.listen(16)
conns = []
t0 = time.time()
s.settimeout(1)
while time.time() - t0 < 120:
    try:
        c, _ = s.accept(); conns.append(c)
    except socket.timeout:
        pass
" &
CLEANUP+=("kill $! 2>/dev/null")

device() { # device DIR CHANNEL_URL [EXTRA [update] LINES]
	device_fixture "$1" agent-test "$1/boot.state" "channel = $2
store = $NGINX_URL/store
ca-file = $T/test-ca.pem
reboot-command = touch $1/rebooted
${3:-}"
}
agent_json() { python3 -c "import json; print(json.load(open('$1/state/agent.json'))$2)"; }

# ---- bad configurations: the agent does not start ------------------------------
device "$T/bad" "$NGINX_URL/stable.pointer"
sed -i 's/^reboot-command = .*/reboot-command = touch x\npoll-interval = often/' "$T/bad/system.conf"
line=$(grep -n "poll-interval" "$T/bad/system.conf" | cut -d: -f1)
expect_fail "a bad value: the agent does not start, and names file, line and key" \
	"$T/bad/system.conf:$line: bad value \"often\" for key \"poll-interval\" in [update]" $S agent --config "$T/bad/system.conf" --once
check "(it left nothing behind)" test ! -e "$T/bad/state/agent.lock"
device "$T/bad" "$NGINX_URL/stable.pointer" "colour = blue"
line=$(grep -n "colour" "$T/bad/system.conf" | cut -d: -f1)
expect_fail "an unknown key: the agent does not start" "$T/bad/system.conf:$line: unknown key \"colour\" in [update]" \
	$S agent --config "$T/bad/system.conf" --once
expect_fail "a missing configuration: named" "cannot read config $T/none.conf" $S agent --config "$T/none.conf" --once

# ---- one agent at a time -----------------------------------------------------
device "$T/two" "$NGINX_URL/stable.pointer" "poll-interval = 1h
poll-jitter = 1h"
$S agent --config "$T/two/system.conf" 2>"$T/two/agent1.log" &
first=$!
CLEANUP+=("kill $first 2>/dev/null")
for _ in $(seq 100); do [ -s "$T/two/state/agent.lock" ] && break; sleep 0.05; done
expect_fail "a second agent refuses to start" "another slotsync agent is running (process $first)" \
	$S agent --config "$T/two/system.conf" --once
kill -TERM $first
rc=0
for _ in $(seq 100); do kill -0 $first 2>/dev/null || break; sleep 0.05; done
wait $first || rc=$?
check "the first stops cleanly on SIGTERM (exit $rc)" test $rc -eq 0

# ---- a pointer that installs, then a replayed one, then an expired one ---------
device "$T/dev" "$NGINX_URL/stable.pointer"
check "pointer 5 is followed: v2.0 installed, a reboot asked for" \
	bash -c "$S agent --config '$T/dev/system.conf' --once 2>/dev/null && test -e '$T/dev/rebooted'"
check "(slot B holds v2.0)" cmp -s -n "$(stat -c %s "$V2")" "$T/dev/slot-b.img" "$V2"
cp www/stable.pointer www/pointer-5
pointer 3 "$future" www/stable.pointer
expect_fail "a replayed older pointer (version 3 after 5) is refused" "older than the last one accepted (5)" \
	$S agent --config "$T/dev/system.conf" --once
err=$(agent_json "$T/dev" "['error']")
check "(and reported in the status: $err)" grep -q "older than the last one accepted" <<<"$err"
rc=0
$S agent --config "$T/dev/system.conf" --once 2>/dev/null || rc=$?
check "(agent --once exits 1: the pointer is refused for good)" test $rc -eq 1
pointer 6 "$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)" www/stable.pointer
sleep 3
expect_fail "an expired pointer is refused" "expired at" $S agent --config "$T/dev/system.conf" --once
err=$(agent_json "$T/dev" "['error']")
check "(and reported in the status: $err)" grep -q "expired at" <<<"$err"
# the booted slot runs what the pointer names: nothing to install
device "$T/same" "$NGINX_URL/stable.pointer"
cp www/pointer-5 www/stable.pointer
$S agent --config "$T/same/system.conf" --once 2>/dev/null
rm -f "$T/same/rebooted"
echo "slotsync.slot=B" >"$T/same/cmdline"
$SLOTSYNC_BOOTCTL --backend file --env "$T/same/boot.state" simulate-boot >/dev/null
$S agent --config "$T/same/system.conf" --once 2>/dev/null
check "after the reboot into v2.0: validated, and the same pointer installs nothing" \
	bash -c "grep -q 'up to date' '$T/same/state/agent.json' && test ! -e '$T/same/rebooted'"

# ---- a server that answers 500: backoff with jitter, no busy loop -----------------
device "$T/err" "$NGINX_URL/err/stable.pointer" "poll-interval = 1h
poll-jitter = 1s"
: >"$NGINX_LOG"
$S agent --config "$T/err/system.conf" 2>&1 | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$T/err/agent.log" &
CLEANUP+=("pkill -f '$T/err/system.conf' 2>/dev/null")
sleep 25
pkill -TERM -f "$T/err/system.conf"
sleep 0.5
polls=$(grep -c "error: .*HTTP 500" "$T/err/agent.log" || true)
requests=$(grep -c "/err/stable.pointer" "$NGINX_LOG" || true)
gaps=$(grep "error: .*HTTP 500" "$T/err/agent.log" | awk 'NR > 1 {printf "%.1f ", $1 - p} {p = $1}')
check "HTTP 500 for 25 s: $polls failed polls, $requests requests, gaps $gaps s (backoff, no busy loop)" \
	bash -c "[ $polls -ge 2 ] && [ $polls -le 6 ] && [ $requests -le 24 ]"
check "(no two polls closer than 2 s)" bash -c "for g in $gaps; do awk -v g=\$g 'BEGIN {exit !(g >= 2)}' || exit 1; done"
check "(the error is in the status: $(agent_json "$T/err" "['error']" | head -c 100))" grep -q "HTTP 500" "$T/err/state/agent.json"

# ---- a server that stalls: cut after stall-timeout, reported, bounded ---------------
device "$T/stall" "https://127.0.0.1:$STALL_PORT/stable.pointer" "stall-timeout = 2s"
t0=$(date +%s)
expect_fail "a stalled server: the poll gives up with an error" "127.0.0.1:$STALL_PORT" \
	$S agent --config "$T/stall/system.conf" --once
took=$(($(date +%s) - t0))
check "(within $took s: three attempts of 2 s each, with backoff)" test $took -le 20

# ---- a pointer URL that answers 503 with a body that never ends: each answer is
# cut after a few KiB (not drained: that read gigabytes), the poll fails quickly --
make_cert test hostile 127.0.0.1
python3 "$SLOTSYNC_SOURCE_DIR/tests/integration/hostile_server.py" --root "$T/www" --cert "$T/hostile.pem" \
	--key "$T/hostile.key" --mode endless-error --target stable.pointer --lifetime 60 --log "$T/endless.log" \
	>"$T/endless.port" &
CLEANUP+=("kill $! 2>/dev/null")
for _ in $(seq 100); do [ -s "$T/endless.port" ] && break; sleep 0.05; done
device "$T/endless" "https://127.0.0.1:$(head -n1 "$T/endless.port")/stable.pointer" "stall-timeout = 2s"
t0=$(date +%s%N)
expect_fail "a pointer answered by an endless 503: the poll gives up with an error" "HTTP 503 (its body cut off after" \
	$S agent --config "$T/endless/system.conf" --once
took=$((($(date +%s%N) - t0) / 1000000))
check "(within $took ms: three attempts, with backoff)" test $took -le 15000
for _ in $(seq 40); do [ "$(grep -c " 503 cut " "$T/endless.log" || true)" -ge 3 ] && break; sleep 0.05; done
sent=$({ grep " 503 cut " "$T/endless.log" || true; } | awk '{print $NF}' | tr '\n' ' ')
check "(the server saw its 3 answers cut, after $sent bytes)" test "$(grep -c " 503 cut " "$T/endless.log" || true)" -eq 3
check "(less than 64 MiB each)" bash -c "for b in $sent; do [ \$b -lt 67108864 ] || exit 1; done"
check "(the error is in the status)" grep -q "HTTP 503" "$T/endless/state/agent.json"

# ---- under systemd: readiness and the watchdog through sd_notify ----------------
# (it installs v2.0 meanwhile, slowly: the watchdog is fed from the event
# loop while the install runs on its own thread)
device "$T/sd" "$NGINX_URL/stable.pointer" "poll-interval = 1h
poll-jitter = 0s
max-rate = 1M"
python3 - "$T/sd/notify" >"$T/sd/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(1)
t0 = time.time()
while time.time() - t0 < 8:
    try:
        m = s.recv(4096).decode()
    except socket.timeout:
        continue
    for line in m.split("\n"):
        print("%.2f %s" % (time.time() - t0, line), flush=True)
PY
rx=$!
for _ in $(seq 100); do [ -S "$T/sd/notify" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$T/sd/notify WATCHDOG_USEC=1000000 $S agent --config "$T/sd/system.conf" 2>/dev/null &
pid=$!
sleep 4
kill -TERM $pid
wait $pid || true
wait $rx || true
check "Type=notify: the agent says READY=1" grep -q " READY=1$" "$T/sd/notify.log"
feeds=$(grep -c " WATCHDOG=1$" "$T/sd/notify.log" || true)
check "the watchdog (WatchdogSec=1s) is fed at half its period: $feeds times in 4 s" bash -c "[ $feeds -ge 6 ] && [ $feeds -le 10 ]"
check "it says STOPPING=1 on SIGTERM" grep -q " STOPPING=1$" "$T/sd/notify.log"
inst=$(awk '/STATUS=installing/ {a=$1} /STATUS=idle/ && a {b=$1} END {print a, b}' "$T/sd/notify.log")
fed=$(awk -v r="$inst" 'BEGIN {split(r, t, " ")} / WATCHDOG=1$/ && $1 > t[1] && $1 < t[2] {n++} END {print n+0}' "$T/sd/notify.log")
check "the watchdog is fed while an install runs (installing from $inst s: fed $fed times)" \
	bash -c "set -- $inst; [ -n \"\$2\" ] && [ $fed -ge 2 ]"

# ---- the maintenance window -----------------------------------------------------
now_h=$(date +%H)
w_start=$(printf '%02d:00' $(((10#$now_h + 2) % 24)))
w_end=$(printf '%02d:00' $(((10#$now_h + 3) % 24)))
device "$T/win" "$NGINX_URL/stable.pointer" "window = $w_start-$w_end
poll-jitter = 0s"
: >"$NGINX_LOG"
$S agent --config "$T/win/system.conf" -v 2>"$T/win/agent.log" &
pid=$!
sleep 3
kill -TERM $pid
wait $pid || true
check "outside its window ($w_start-$w_end) the agent does not poll" bash -c "! grep -q stable.pointer '$NGINX_LOG'"
check "(it waits for the window to open)" grep -q "next poll in [0-9]" "$T/win/agent.log"
# ---- a bootloader that takes one of a slot's boots at every boot (U-Boot's
# script counting RAUC's way, docs/boot/uboot-boot.cmd): a healthy boot of a
# good slot gives them back, or after default-tries reboots the good slot has
# none left and U-Boot falls back to the other
device "$T/ub" "$NGINX_URL/stable.pointer"
printf '%s 0x0 0x4000\n%s 0x0 0x4000\n' "$T/ub/uenv1" "$T/ub/uenv2" >"$T/ub/fw_env.config"
printf 'bootdelay=1\n' >"$T/ub/default.txt"
mkenvimage -r -s 0x4000 -o "$T/ub/uenv1" "$T/ub/default.txt"
cp "$T/ub/uenv1" "$T/ub/uenv2"
sed -i "s|^backend = file|backend = uboot|; s|^env = .*|env = $T/ub/fw_env.config|" "$T/ub/system.conf"
$SLOTSYNC_BOOTCTL --backend uboot --env "$T/ub/fw_env.config" init
fw_setenv -c "$T/ub/fw_env.config" BOOT_A_LEFT 2
$S validate --config "$T/ub/system.conf"
check "a good slot's boot: validate gives back the boot U-Boot took (BOOT_A_LEFT 2 -> 3)" \
	bash -c "fw_printenv -c '$T/ub/fw_env.config' BOOT_A_LEFT | grep -qx 'BOOT_A_LEFT=3'"
sum=$(cat "$T/ub/uenv1" "$T/ub/uenv2" | sha256sum)
$S validate --config "$T/ub/system.conf"
check "(none taken: the environment is not written)" test "$(cat "$T/ub/uenv1" "$T/ub/uenv2" | sha256sum)" = "$sum"

finish
