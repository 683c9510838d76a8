# SPDX-License-Identifier: LGPL-2.1-or-later
# A real S3 server for the tests (sourced after lib.sh): Ceph's radosgw on a
# one-node Ceph cluster (one monitor, one OSD on memstore), every daemon on
# 127.0.0.1, no authentication between them, all state under $T/rgw.  Up in
# about 16 s, about 115 MB of RSS.  The daemons are killed by the test's
# cleanup.  Requests must be SigV4-signed; radosgw also wants the header
# x-amz-content-sha256 (the payload's SHA-256 or UNSIGNED-PAYLOAD).
#
# start_rgw: sets RGW_URL (http://127.0.0.1:PORT) and the credentials
# RGW_KEY / RGW_SECRET; returns 77 when radosgw is not installed.
# s3_curl ARGS...: curl signed with those credentials.

start_rgw() {
	local d=$T/rgw port monport fsid osd_uuid c i
	for c in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
		command -v "$c" >/dev/null || { echo "# $c is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)"; return 77; }
	done
	port=$(free_port)
	monport=$(free_port)
	mkdir -p "$d"/{mon,osd0,run,log,rgw}
	fsid=$(cat /proc/sys/kernel/random/uuid)
	cat >"$d/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$monport
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
mon warn on insecure global id reclaim allowed = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
osd pool default pg num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
run dir = $d/run
log file = $d/log/\$name.log
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
[mon.a]
mon data = $d/mon
[osd.0]
osd data = $d/osd0
osd objectstore = memstore
osd class update on start = false
osd crush update on start = false
memstore device bytes = 1073741824
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $d/rgw
CONF
	c="-c $d/ceph.conf"
	# the daemons fork into the background and write their pid files: kill those
	CLEANUP+=("for p in '$d'/run/*.pid; do kill \$(cat \"\$p\") 2>/dev/null; done; sleep 0.5; for p in '$d'/run/*.pid; do kill -9 \$(cat \"\$p\") 2>/dev/null; done")
	monmaptool --create --addv a "[v1:127.0.0.1:$monport]" --fsid "$fsid" "$d/monmap" >/dev/null
	ceph-mon $c --mkfs -i a --monmap "$d/monmap" >/dev/null 2>&1
	ceph-mon $c -i a
	# the OSD gets its uuid from us, the same for the monitor and its mkfs (else
	# the OSD may come up with another and be refused: "wrong fsid")
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	timeout 60 ceph $c osd create "$osd_uuid" 0 >/dev/null
	ceph-osd $c -i 0 --mkfs --osd-uuid "$osd_uuid" >/dev/null 2>&1
	ceph-osd $c -i 0 >/dev/null 2>&1
	timeout 60 ceph $c osd crush add osd.0 1.0 host=localhost root=default >/dev/null 2>&1
	radosgw $c -n client.rgw.a
	for i in $(seq 120); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.5
	done
	if ! curl -s -o /dev/null "http://127.0.0.1:$port/"; then
		echo "# radosgw did not come up on 127.0.0.1:$port; the daemons' logs end:"
		tail -n 5 "$d"/log/*.log | sed 's/^/# /'
		return 1
	fi
	timeout 60 radosgw-admin $c user create --uid=ci --display-name=ci --access-key=CIKEY --secret=CISECRET >/dev/null
	RGW_URL=http://127.0.0.1:$port
	RGW_KEY=CIKEY
	RGW_SECRET=CISECRET
}

s3_curl() {
	curl -sS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_KEY:$RGW_SECRET" \
		-H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
