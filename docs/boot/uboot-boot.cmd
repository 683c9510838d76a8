# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync A/B selection for U-Boot (docs/boot.md).  Make a boot script with
#   mkimage -A arm -T script -C none -d uboot-boot.cmd boot.scr
# and let bootcmd run it.  Variables (written by slotsync-bootctl --backend
# uboot through libubootenv; RAUC's names where they fit): BOOT_ORDER ("A B"),
# BOOT_A_OK / BOOT_B_OK (1: good), BOOT_A_LEFT / BOOT_B_LEFT (tries left while
# not good, 0 to 9: setexpr counts in hex).  Fill in the load and boot commands
# of your board at the end.

if test -z "${BOOT_ORDER}"; then
	# never switched: the first slot, as installed, is good
	setenv BOOT_ORDER "A"
	setenv BOOT_A_OK 1
fi
setenv slotsync_slot
for s in ${BOOT_ORDER}; do
	if test -z "${slotsync_slot}"; then
		if test "${s}" = "A"; then
			setenv ok "${BOOT_A_OK}"; setenv left "${BOOT_A_LEFT}"
		else
			setenv ok "${BOOT_B_OK}"; setenv left "${BOOT_B_LEFT}"
		fi
		if test "${ok}" = "1"; then
			setenv slotsync_slot "${s}"
		elif test -n "${left}" && test "${left}" -gt 0; then
			setexpr left ${left} - 1
			setenv BOOT_${s}_LEFT ${left}
			saveenv
			setenv slotsync_slot "${s}"
		fi
	fi
done
if test -z "${slotsync_slot}"; then
	# nothing is bootable: the first slot by priority, as a last resort
	for s in ${BOOT_ORDER}; do test -n "${slotsync_slot}" || setenv slotsync_slot "${s}"; done
fi
echo "slotsync: booting slot ${slotsync_slot}"
setenv bootargs "${bootargs} slotsync.slot=${slotsync_slot}"
# Board specific, e.g. with slot A on partition 2 and B on partition 3:
#   if test "${slotsync_slot}" = "A"; then setenv bootpart 2; else setenv bootpart 3; fi
#   load mmc 0:${bootpart} ${kernel_addr_r} /boot/Image
#   booti ${kernel_addr_r} - ${fdt_addr}
