# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync A/B selection for U-Boot (docs/boot.md), with RAUC's counting:
#   mkimage -A arm64 -T script -C none -d uboot-boot.cmd boot.scr
# and let U-Boot's distro boot find boot.scr (or bootcmd run it).
#
# Variables (RAUC's names and meaning; slotsync-bootctl --backend uboot and
# fw_setenv write the same): BOOT_ORDER ("A B": slots by priority),
# BOOT_A_LEFT / BOOT_B_LEFT (boots left, 0 to 9). The first slot in
# BOOT_ORDER with boots left boots, and its count is taken down by one and
# written back BEFORE the kernel starts: a kernel that never comes up (panic,
# hang, reset) uses up its tries and the next slot in BOOT_ORDER boots. A
# healthy system sets its count back (slotsync mark-good, rauc mark-good).
# No slot with boots left: every count goes back to 3 and the first slot in
# BOOT_ORDER boots, as RAUC's example does. BOOT_A_OK / BOOT_B_OK are
# slotsync's own and kept as they are.
#
# The environment: two copies in libubootenv's redundant layout (CRC32, flag
# byte, variables), raw on the GPT partition named ${ss_envpart}, at byte 0
# and at byte 0x10000, 0x4000 bytes each: on Linux fw_env.config says
#   /dev/disk/by-partlabel/uboot-env 0x0     0x4000
#   /dev/disk/by-partlabel/uboot-env 0x10000 0x4000
# The newer copy (flag one higher) is read first; a copy whose CRC fails is
# skipped. The script writes the older copy with the flag one higher, so a
# write cut in the middle leaves the copy before it valid.
#
# The board part: the device, the partitions, the load addresses.
test -n "${ss_iface}" || setenv ss_iface virtio
test -n "${ss_devnum}" || setenv ss_devnum 0
test -n "${ss_envpart}" || setenv ss_envpart uboot-env
test -n "${ss_env0}" || setenv ss_env0 0x48000000
test -n "${ss_env1}" || setenv ss_env1 0x48100000
test -n "${ss_tmp}" || setenv ss_tmp 0x48200000
test -n "${ss_bootargs}" || setenv ss_bootargs "console=ttyAMA0 panic=1"
test -n "${ss_fdt}" || setenv ss_fdt ${fdtcontroladdr}
test -n "${ss_keep}" || setenv ss_keep "BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT BOOT_A_OK BOOT_B_OK"

${ss_iface} dev ${ss_devnum}
setenv ss_envblk
part start ${ss_iface} ${ss_devnum} ${ss_envpart} ss_envblk
if test -z "${ss_envblk}"; then
	# never boot a slot that cannot count its boots
	echo "slotsync: no partition ${ss_envpart} on ${ss_iface} ${ss_devnum}: cannot keep the environment"
	exit
fi
setexpr ss_envblk1 ${ss_envblk} + 0x80
${ss_iface} read ${ss_env0} ${ss_envblk} 0x20
${ss_iface} read ${ss_env1} ${ss_envblk1} 0x20

# each copy's flag, before its bytes are moved: a copy's CRC is at 0, its flag
# at 4, its variables from 5; env import -c wants the CRC right before them
setexpr ss_a ${ss_env0} + 4; setexpr.b ss_f0 *${ss_a}
setexpr ss_a ${ss_env1} + 4; setexpr.b ss_f1 *${ss_a}
setexpr ss_n ${ss_f0} + 1
test "${ss_n}" = "100" && setenv ss_n 0
if test "${ss_n}" = "${ss_f1}"; then
	setenv ss_order "1 0"
else
	setenv ss_order "0 1"
fi
setenv ss_cur
setenv ss_flag 0
for c in ${ss_order}; do
	if test -z "${ss_cur}"; then
		if test "${c}" = "0"; then setenv ss_at ${ss_env0}; setenv ss_f ${ss_f0}; else setenv ss_at ${ss_env1}; setenv ss_f ${ss_f1}; fi
		setexpr ss_d ${ss_at} + 1
		cp.b ${ss_at} ${ss_tmp} 4
		cp.b ${ss_tmp} ${ss_d} 4
		if env import -c ${ss_d} 0x3fff ${ss_keep}; then
			setenv ss_cur ${c}
			setenv ss_flag ${ss_f}
		fi
	fi
done
if test -z "${ss_cur}"; then
	echo "slotsync: no valid environment copy: defaults"
	setenv ss_cur 1
fi
echo "slotsync: environment copy ${ss_cur} (flag ${ss_flag})"

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv ss_slot
for s in ${BOOT_ORDER}; do
	if test -z "${ss_slot}"; then
		if test "${s}" = "A"; then setenv ss_left ${BOOT_A_LEFT}; else setenv ss_left ${BOOT_B_LEFT}; fi
		if test -n "${ss_left}" && test ${ss_left} -gt 0; then
			setexpr ss_left ${ss_left} - 1
			setenv BOOT_${s}_LEFT ${ss_left}
			setenv ss_slot ${s}
		fi
	fi
done
if test -z "${ss_slot}"; then
	echo "slotsync: no slot has boots left: every count back to 3"
	setenv BOOT_A_LEFT 3
	setenv BOOT_B_LEFT 3
	for s in ${BOOT_ORDER}; do test -n "${ss_slot}" || setenv ss_slot ${s}; done
	test -n "${ss_slot}" || setenv ss_slot A
	setexpr ss_left 2
	setenv BOOT_${ss_slot}_LEFT 2
fi

# write the other copy, flag one higher
setexpr ss_flag ${ss_flag} + 1
test "${ss_flag}" = "100" && setenv ss_flag 0
if test "${ss_cur}" = "0"; then setenv ss_at ${ss_env1}; setenv ss_blk ${ss_envblk1}; else setenv ss_at ${ss_env0}; setenv ss_blk ${ss_envblk}; fi
setexpr ss_d ${ss_at} + 1
mw.b ${ss_at} 0 0x4000
env export -c -s 0x3fff ${ss_d} ${ss_keep}
cp.b ${ss_d} ${ss_tmp} 4
cp.b ${ss_tmp} ${ss_at} 4
setexpr ss_a ${ss_at} + 4
mw.b ${ss_a} ${ss_flag} 1
${ss_iface} write ${ss_at} ${ss_blk} 0x20
echo "slotsync: booting slot ${ss_slot} (${ss_left} boots left after this one; order ${BOOT_ORDER})"

# the slot's boot volume: a filesystem with Image, initrd.img and, where the
# board gives no device tree of its own (ss_fdt set to "dtb"), dtb
if test "${ss_slot}" = "A"; then setenv ss_bootpart boot-a; else setenv ss_bootpart boot-b; fi
part number ${ss_iface} ${ss_devnum} ${ss_bootpart} ss_bootnum
load ${ss_iface} ${ss_devnum}:${ss_bootnum} ${kernel_addr_r} Image
load ${ss_iface} ${ss_devnum}:${ss_bootnum} ${ramdisk_addr_r} initrd.img
setenv ss_initrd_size ${filesize}
if test "${ss_fdt}" = "dtb"; then
	load ${ss_iface} ${ss_devnum}:${ss_bootnum} ${fdt_addr_r} dtb
	setenv ss_fdt ${fdt_addr_r}
fi
setenv bootargs "${ss_bootargs} rauc.slot=${ss_slot} slotsync.slot=${ss_slot}"
booti ${kernel_addr_r} ${ramdisk_addr_r}:${ss_initrd_size} ${ss_fdt}
echo "slotsync: slot ${ss_slot} did not boot: resetting"
reset
