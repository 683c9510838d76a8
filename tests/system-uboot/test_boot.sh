#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A real U-Boot boot chain on qemu-system-aarch64 (tests/system-uboot/lib.sh):
# Debian's U-Boot runs boot.scr (docs/boot/uboot-boot.cmd), which counts the
# boots RAUC's way in the environment both U-Boot and libubootenv write.
#   1. power-on: A boots (the environment is empty: defaults); Linux sets
#      BOOT_ORDER="B A", BOOT_B_LEFT=3 with fw_setenv and reboots → U-Boot
#      boots B's kernel and initramfs (a marker per slot proves which);
#   2. B's boot volume gets an initramfs whose init exits: the kernel panics
#      (panic=1 resets the machine) → U-Boot counts BOOT_B_LEFT down by
#      itself over three resets → falls back to A;
#   3. a torn environment: the newest copy (BOOT_ORDER "A B") is corrupted;
#      U-Boot takes the copy before it (BOOT_ORDER "B A") and boots B.
# Every boot's time from power-on (or reset) to the kernel's first line and
# to the initramfs is printed; a summary table ends the output.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/lib.sh"
ub_require
cd "$T"
start=$(date +%s)
ARTIFACTS=${SLOTSYNC_SYSTEM_ARTIFACTS:-${SLOTSYNC_BUILD_DIR:-$T}/system-uboot-logs}
trap 'ub_summary' EXIT

ub_setup
setup_s=$(($(date +%s) - start))
ub_disk
echo "# setup (kernel, root: cached) ${setup_s}s; disk $(($(date +%s) - start - setup_s))s"

log_has() { grep -q -- "$2" "$T/ub-$1.log"; }
# the slots booted in a power-on, in order ("A B")
slots_of() { ub_boots "$1" | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 }'; }

# --- 1: A, then B by the userspace's choice --------------------------------
ub_control '
echo "SYSTEST env $(envp BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT | tr "\n" " ")"
if [ "$SLOT" = A ]; then
	envs BOOT_A_LEFT 3
	envs BOOT_ORDER "B A"
	envs BOOT_B_LEFT 3
	echo "SYSTEST switched $(envp BOOT_ORDER | tr "\n" " ")"
	reboot -f
fi
poweroff -f'
ub_power_on first 400 || true
check "power-on boots A, then B after fw_setenv BOOT_ORDER=\"B A\" (booted: $(slots_of first))" \
	[ "$(slots_of first)" = "A B" ]
check "A's initramfs ran from A's boot volume" log_has first "SYSTEST initramfs slot=A marker=A-"
check "B's initramfs ran from B's boot volume" log_has first "SYSTEST initramfs slot=B marker=B-"
check "each slot mounted its own root" bash -c "grep -q 'SYSTEST root VERSION_ID=A-1' '$T/ub-first.log' && grep -q 'SYSTEST root VERSION_ID=B-1' '$T/ub-first.log'"
check "U-Boot took one of A's boots (Linux saw BOOT_A_LEFT=2)" log_has first "SYSTEST env BOOT_ORDER=A B BOOT_A_LEFT=2 BOOT_B_LEFT=3"
check "U-Boot took one of B's boots (Linux saw BOOT_B_LEFT=2)" log_has first "SYSTEST env BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=2"
env_host=$(ub_env_host fw_printenv BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT | tr '\n' ' ')
check "the host's fw_printenv reads what U-Boot last wrote ($env_host)" [ "$env_host" = "BOOT_ORDER=B A BOOT_A_LEFT=3 BOOT_B_LEFT=2 " ]

# --- 2: B's kernel panics: U-Boot falls back by itself ----------------------
ub_env_host fw_setenv BOOT_B_LEFT 3
ub_boot_vol B broken
ub_control '
echo "SYSTEST env $(envp BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT | tr "\n" " ")"
poweroff -f'
ub_power_on panic 500 || true
check "B panics three times, then U-Boot boots A (booted: $(slots_of panic))" [ "$(slots_of panic)" = "B B B A" ]
check "B's kernel panicked (init exited)" log_has panic "Attempted to kill init"
check "U-Boot counted B down to 0 by itself" log_has panic "SYSTEST env BOOT_ORDER=B A BOOT_A_LEFT=2 BOOT_B_LEFT=0"

# --- 3: a torn write of the environment --------------------------------------
ub_boot_vol B
ub_env_host fw_setenv BOOT_B_LEFT 3
ub_env_host fw_setenv BOOT_ORDER "A B"
# the newest copy: the one whose flag is one higher; break a byte of its variables
off=$(ub_part_start 2)
f0=$(od -An -tu1 -j $((off + 4)) -N1 "$T/disk.img" | tr -d ' ')
f1=$(od -An -tu1 -j $((off + 0x10000 + 4)) -N1 "$T/disk.img" | tr -d ' ')
if [ $(((f0 + 1) % 256)) -eq "$f1" ]; then newest=$((off + 0x10000)) older=0; else newest=$off older=1; fi
printf 'X' | dd of="$T/disk.img" bs=1 seek=$((newest + 8)) conv=notrunc status=none
check "the host's fw_printenv falls back to the older copy too" \
	[ "$(ub_env_host fw_printenv BOOT_ORDER 2>/dev/null)" = "BOOT_ORDER=B A" ]
ub_power_on torn 300 || true
check "a torn newest copy: U-Boot uses the copy before it and boots B (booted: $(slots_of torn))" [ "$(slots_of torn)" = "B" ]
check "U-Boot read the older copy ($older), the newest failing its CRC" log_has torn "slotsync: environment copy $older "
check "Linux reads the environment U-Boot rewrote" log_has torn "SYSTEST env BOOT_ORDER=B A BOOT_A_LEFT=2 BOOT_B_LEFT=2"

echo "# wall time $(($(date +%s) - start))s"
finish
