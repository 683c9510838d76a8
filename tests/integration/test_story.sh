#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's main job (scripts/story.sh) as a test: every state on the way
# is asserted from the `slotsync status --json` snapshots it keeps, the boot
# log, and the nginx log (HTTP/2 only).
source "$(dirname "$0")/lib.sh"
sample_images
export SLOTSYNC_SAMPLE_DIR=$(dirname "$V1")
W=$T/story
if WORK=$W SLOTSYNC_BIN_DIR=$(dirname "$SLOTSYNC_BIN") bash "$SLOTSYNC_SOURCE_DIR/scripts/story.sh" >"$T/story.out" 2>&1; then
	ok "scripts/story.sh ran to its end"
else
	not_ok "scripts/story.sh failed: $(tail -n 20 "$T/story.out")"
	finish
fi
# q SNAPSHOT EXPR: a Python expression over the status object s
q() { python3 -c "import json,sys; s=json.load(open('$W/status-$1.json')); v=($2); print(repr(v) if isinstance(v, tuple) else v)"; }
is() { # is "what" SNAPSHOT EXPR EXPECTED
	local got
	got=$(q "$2" "$3" 2>&1)
	if [ "$got" = "$4" ]; then ok "$1"; else not_ok "$1: $3 is \"$got\", not \"$4\""; fi
}
is "first boot: slot A runs" 1-v1-running "s['booted']" A
is "first boot: no install yet" 1-v1-running "s['install']" None
is "v2.0 installed into slot B" 2-v2-installed "s['slots']['B']['version'], s['slots']['B']['status']" "('2.0', 'installed')"
is "the install waits for the reboot" 2-v2-installed "s['install']['step']" validate
is "the boot state points at B first, on trial" 2-v2-installed \
	"s['slots']['B']['priority'] > s['slots']['A']['priority'], s['slots']['B']['tries'], s['slots']['B']['good']" "(True, 3, False)"
is "A stays good as the fallback" 2-v2-installed "s['slots']['A']['good'], s['booted']" "(True, 'A')"
is "after the reboot B runs and is marked good" 3-v2-good "s['booted'], s['slots']['B']['good'], s['slots']['B']['status']" "('B', True, 'good')"
is "the install is done" 3-v2-good "s['install']['step'], s['install']['error']" "('done', '')"
is "B stays across two more boots" 4-v2-stays "s['booted'], s['slots']['B']['good']" "('B', True)"
is "the agent found nothing new while v2.0 runs" 4-v2-stays "s['agent']['result'].startswith('up to date')" True
is "v3.0 installed into slot A" 5-v3-installed "s['slots']['A']['version'], s['install']['target'], s['install']['step']" "('3.0', 'A', 'validate')"
is "v3.0's slot A is tried, fails its health check, is marked bad" 6-v3-failed \
	"s['booted'], s['slots']['A']['status'], s['slots']['A']['priority'], s['install']['step']" "('A', 'bad', 0, 'failed')"
is "the failure names the check" 6-v3-failed "'20-radio-link failed' in s['install']['error']" True
is "the device fell back to B and v2.0" 7-fell-back "s['booted'], s['slots']['B']['version'], s['slots']['B']['good']" "('B', '2.0', True)"
is "v3.0 is remembered as failed" 7-fell-back "[f['version'] for f in s['failed_releases']]" "['3.0']"
is "the agent does not install v3.0 again" 7-fell-back "'not installed again' in s['agent']['result']" True
check "the boots went A, B, B, B, A, B" bash -c "[ \"\$(awk '{printf \"%s\", \$2}' '$W/boots.txt')\" = ABBBAB ]"
check "every request to nginx was HTTP/2" bash -c "! grep -v '^HTTP/2.0 ' '$W/nginx/access.log' | grep -q ."
check "the report gives bytes downloaded against the image size" grep -q "downloaded .* bytes (.*% of the image" "$T/story.out"
check "the report gives the time of each step" grep -q "time per step: verify .* assemble .* switch" "$T/story.out"
check "the report ends with the final boot state" grep -q "final: slot B: good .*<- booted" "$T/story.out"
v2=$(sed -n 's/.*v2.0 into slot B: image \([0-9,]*\) bytes; downloaded \([0-9,]*\) bytes.*/\1 \2/p' "$T/story.out" | tr -d ,)
check "v2.0 downloaded less than half its image ($v2)" bash -c "set -- $v2; [ \$2 -gt 0 ] && [ \$((2 * \$2)) -lt \$1 ]"
finish
