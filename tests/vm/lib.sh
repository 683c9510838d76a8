# SPDX-License-Identifier: LGPL-2.1-or-later
# The VM harness (sourced by tests/vm/test_*.sh): a qemu guest under TCG with
# Debian's cloud kernel, real device-mapper and dm-crypt, swtpm as its TPM,
# and this build's slotsync in its initramfs.  Built from Debian packages by
# the test itself; the kernel is cached in $SLOTSYNC_VM_CACHE between runs.
#
#   vm_build_initrd DIR        initramfs with busybox, modules, slotsync and
#                              its libraries, and DIR's files under /payload-ro
#   vm_boot NAME STAGE [KILL]  boots with disks $VM_DISKS, runs
#                              /payload/run.sh STAGE (payload disk); with KILL,
#                              the VM is powered off hard when the console says
#                              "VMTEST kill-point" (after KILL seconds more)
# Guest output lines "VMTEST ok ..." / "VMTEST fail ..." become test results.
VM_CACHE=${SLOTSYNC_VM_CACHE:-/var/cache/slotsync/vm}
VM_KVER=
# The guests' CPU (here and in the whole-system suite): a plain x86-64 with
# the SSE4, AES-NI and carry-less multiply instructions, not -cpu max, whose
# AVX2 the kernel's and OpenSSL's SHA-256 and AES code then choose and TCG
# emulates more slowly than the code it translates for SSE: about 5 % less
# guest time for the same boots and installs (SLOTSYNC_VM_CPU to choose)
VM_QEMU_CPU=${SLOTSYNC_VM_CPU:-qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+aes,+pclmulqdq}
vm_kernel() {
	local pkg
	mkdir -p "$VM_CACHE"
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	[ -n "$pkg" ] || { echo "cannot find Debian's cloud kernel package" >&2; return 1; }
	VM_KVER=${pkg#linux-image-}
	if [ ! -e "$VM_CACHE/k-$VM_KVER/.ready" ]; then
		rm -rf "$VM_CACHE/k-$VM_KVER"
		(cd "$VM_CACHE" && apt-get download -qq "$pkg" >/dev/null 2>&1) || { echo "cannot download $pkg" >&2; return 1; }
		dpkg-deb -x "$VM_CACHE/${pkg}"_*.deb "$VM_CACHE/k-$VM_KVER"
		depmod -b "$VM_CACHE/k-$VM_KVER" "$VM_KVER"
		rm -f "$VM_CACHE/${pkg}"_*.deb
		touch "$VM_CACHE/k-$VM_KVER/.ready"
	fi
}

vm_build_initrd() {
	local payload=$1 r=$T/vm-root k
	vm_kernel || return 1
	k=$VM_CACHE/k-$VM_KVER
	rm -rf "$r"
	mkdir -p "$r"/{bin,dev,proc,sys,mnt,tmp,run/cryptsetup,payload,scratch,etc}
	cp /bin/busybox "$r/bin/"
	modprobe -a -d "$k" -S "$VM_KVER" --show-depends virtio_pci virtio_blk dm-crypt xts ecb algif_skcipher \
		squashfs ext4 tpm_tis tpm_crb 2>/dev/null | awk '$1=="insmod"{print $2}' | sed "s|^$k||" | awk '!s[$0]++' >"$r/mods"
	while read -r m; do mkdir -p "$r${m%/*}"; cp "$k$m" "$r$m"; done <"$r/mods"
	local tcti
	tcti=$(ls /usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0 2>/dev/null)
	for f in "$SLOTSYNC_BIN" /usr/bin/getfattr /usr/bin/tpm2 $tcti; do
		mkdir -p "$r/usr/bin"
		case $f in *.so*) cp -L --parents "$f" "$r" ;; *) cp "$f" "$r/usr/bin/" ;; esac
		for l in $(ldd "$f" | grep -o '/[^ ]*'); do cp -L --parents "$l" "$r"; done
	done
	cat >"$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev
ifconfig lo 127.0.0.1 up
for m in $(cat /mods); do insmod $m 2>/dev/null; done
for i in $(seq 50); do [ -b /dev/vde ] && break; sleep 0.1; done
mount -t ext4 -o ro /dev/vde /payload && mount -t ext4 /dev/vdf /scratch
stage=$(sed -n 's/.*vmtest.stage=\([a-z0-9-]*\).*/\1/p' /proc/cmdline)
echo "VMTEST boot $stage"
sh /payload/run.sh "$stage" 2>&1
sync
echo "VMTEST done $stage"
poweroff -f
INIT
	chmod +x "$r/init"
	(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$T/initrd"
	VM_VMLINUZ=$k/boot/vmlinuz-$VM_KVER
}

# vm_boot NAME STAGE [KILL_AFTER]: serial output in $T/vm-NAME.log
vm_boot() {
	local name=$1 stage=$2 kill_after=${3:-} log=$T/vm-$1.log d=$T/vm-tpm pid drives=()
	mkdir -p "$d"
	rm -f "$d/sock"
	swtpm socket --tpm2 --tpmstate dir="$d" --ctrl type=unixio,path="$d/sock" --terminate -d
	for _ in $(seq 50); do [ -S "$d/sock" ] && break; sleep 0.1; done
	for f in $VM_DISKS; do drives+=(-drive "file=$f,if=virtio,format=raw"); done
	qemu-system-x86_64 -accel tcg -cpu "$VM_QEMU_CPU" -smp 2 -m 768 -nodefaults -no-reboot -display none \
		-serial "file:$log" -kernel "$VM_VMLINUZ" -initrd "$T/initrd" \
		-append "console=ttyS0 panic=-1 quiet vmtest.stage=$stage" "${drives[@]}" \
		-chardev socket,id=c,path="$d/sock" -tpmdev emulator,id=t,chardev=c -device tpm-tis,tpmdev=t &
	pid=$!
	# qemu under TCG must never hang a test run: a watchdog
	(sleep 300; kill -9 $pid 2>/dev/null) >/dev/null 2>&1 &
	local watchdog=$!
	if [ -n "$kill_after" ]; then
		for _ in $(seq 1200); do grep -q "VMTEST kill-point" "$log" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
		sleep "$kill_after"
		kill -9 $pid 2>/dev/null || true
	fi
	wait $pid 2>/dev/null || true
	pkill -P $watchdog 2>/dev/null || true
	kill $watchdog 2>/dev/null || true
	grep -a "^VMTEST" "$log" | while read -r _ verdict rest; do
		case $verdict in ok) echo "ok - [vm $name] $rest" ;; fail) echo "not ok - [vm $name] $rest" ;; esac
	done
}

# counts the guest's verdicts into PASS/FAIL
vm_results() {
	local log=$T/vm-$1.log
	PASS=$((PASS + $(grep -ac '^VMTEST ok' "$log" || true)))
	FAIL=$((FAIL + $(grep -ac '^VMTEST fail' "$log" || true)))
}
