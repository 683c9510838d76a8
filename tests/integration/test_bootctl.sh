#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# slotsync-bootctl on every backend (file, grub, uboot, barebox):
#  - boot counting and fallback: switch -> boots without mark-good -> fallback;
#    switch -> mark-good -> stays;
#  - a power cut at every I/O call of a switch (libpowercut.so, preloaded),
#    losing what was not made durable, keeping it, or tearing the write: the
#    state read afterwards is valid and exactly the old or exactly the new one;
#  - malformed storage: a clear error, never a crash;
#  - interop: grub-editenv and fw_printenv read what we wrote, we read theirs.
source "$(dirname "$0")/lib.sh"
B=${SLOTSYNC_BOOTCTL:?}
PC=${SLOTSYNC_POWERCUT:?}
cd "$T"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

# storage for backend $1 in folder $2 as the bootloader's tools make it (no
# boot state in it yet); prints the bootctl options
blank() {
	local be=$1 d=$2
	rm -rf "$d"; mkdir -p "$d"
	case $be in
	file) echo "--backend file --env $d/state" ;;
	grub) grub-editenv "$d/grubenv" create; grub-editenv "$d/grubenv" set kernel_extra=quiet
		echo "--backend grub --env $d/grubenv" ;;
	uboot) printf '%s 0x0 0x4000\n%s 0x0 0x4000\n' "$d/uenv1" "$d/uenv2" >"$d/fw_env.config"
		printf 'bootdelay=1\nbootcmd=run slotsync_boot\n' >"$d/default.txt"
		mkenvimage -r -s 0x4000 -o "$d/uenv1" "$d/default.txt"; cp "$d/uenv1" "$d/uenv2"
		echo "--backend uboot --env $d/fw_env.config" ;;
	barebox) head -c 4096 /dev/zero >"$d/state.raw"
		printf 'backend = barebox\nenv = %s\nbarebox-magic = 0x4d433230\nbarebox-stride = 64\n' "$d/state.raw" >"$d/bootctl.conf"
		echo "--config $d/bootctl.conf" ;;
	esac
}
# the same, provisioned: slotsync-bootctl init wrote the first-boot state
fresh() {
	local o
	o=$(blank "$@")
	$B $o init
	echo "$o"
}
slots() { $B "$@" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["next"], json.dumps(d["slots"], sort_keys=True))'; }

for be in file grub uboot barebox; do
	O=($(blank $be "$T/$be"))
	# no state yet: every verb but init refuses, naming the storage
	why="holds no slotsync boot state yet"
	[ $be != file ] || why="no such file"
	for verb in status "switch B" "mark-good A" "mark-bad B" simulate-boot; do
		expect_fail "$be: $verb on a storage without a boot state" "$why" $B "${O[@]}" $verb
	done
	$B "${O[@]}" init
	# (barebox's bootchooser and U-Boot's script, counting RAUC's way, boot
	# only a slot with attempts left: a good one keeps default-tries)
	a_tries=0
	[ $be != barebox ] && [ $be != uboot ] || a_tries=3
	check "$be: init writes the first-boot state: A good and first, B not bootable" \
		test "$(slots "${O[@]}")" = "A {\"A\": {\"good\": true, \"priority\": 2, \"tries\": $a_tries}, \"B\": {\"good\": false, \"priority\": 0, \"tries\": 0}}"
	expect_fail "$be: init again refuses to overwrite the state" "already holds a state" $B "${O[@]}" init
	# switch -> two boots without mark-good -> fallback to A
	$B "${O[@]}" switch B --tries 2
	seq=""
	for i in 1 2 3 4; do seq+=$($B "${O[@]}" simulate-boot); done
	check "$be: switch to B with 2 tries, never marked good: boots B B then falls back to A A ($seq)" test "$seq" = BBAA
	# switch -> mark-good -> stays
	$B "${O[@]}" switch B --tries 3
	b1=$($B "${O[@]}" simulate-boot)
	$B "${O[@]}" --booted B mark-good
	seq=$b1
	for i in 1 2 3 4 5; do seq+=$($B "${O[@]}" simulate-boot); done
	check "$be: switch to B, marked good: B stays ($seq)" test "$seq" = BBBBBB
	$B "${O[@]}" mark-bad B
	check "$be: mark-bad B: A boots next" test "$($B "${O[@]}" simulate-boot)" = A
done

# ---- interop with the bootloaders' own tools
O=($(fresh grub "$T/g"))
ino=$(stat -c %i "$T/g/grubenv")
$B "${O[@]}" switch B --tries 3
# GRUB reads the file system without replaying its journal: the block must
# change where it is, never by a new file renamed over it
check "grub: the switch rewrote grubenv in place (same inode, 1024 bytes)" \
	test "$(stat -c '%i %s' "$T/g/grubenv")" = "$ino 1024"
check "grub-editenv lists what we wrote (ORDER=B A, B_TRY=3) and keeps other variables" \
	bash -c "grub-editenv '$T/g/grubenv' list | grep -qx 'ORDER=B A' && grub-editenv '$T/g/grubenv' list | grep -qx 'B_TRY=3' && grub-editenv '$T/g/grubenv' list | grep -qx 'kernel_extra=quiet'"
grub-editenv "$T/g/grubenv" set B_TRY=1 B_OK=0
check "we read what grub-editenv wrote" bash -c "$B ${O[*]} status --json | grep -q '\"B\":{\"priority\":2,\"tries\":1'"
O=($(fresh uboot "$T/u"))
$B "${O[@]}" switch B --tries 3
check "fw_printenv reads what we wrote (BOOT_ORDER=B A, BOOT_B_LEFT=3) and keeps other variables" \
	bash -c "fw_printenv -c '$T/u/fw_env.config' | grep -qx 'BOOT_ORDER=B A' && fw_printenv -c '$T/u/fw_env.config' | grep -qx 'BOOT_B_LEFT=3' && fw_printenv -c '$T/u/fw_env.config' | grep -qx 'bootdelay=1'"
fw_setenv -c "$T/u/fw_env.config" BOOT_B_LEFT 1
check "we read what fw_setenv wrote" bash -c "$B ${O[*]} status --json | grep -q '\"B\":{\"priority\":2,\"tries\":1'"
# RAUC's counting in docs/boot/uboot-boot.cmd: only a slot with boots left
# (BOOT_x_LEFT > 0) boots, a good one too; the first-boot state and a good
# slot must leave some
O=($(fresh uboot "$T/ur"))
check "uboot: the first-boot state gives A boots to take (BOOT_ORDER=A, BOOT_A_LEFT=3)" \
	bash -c "fw_printenv -c '$T/ur/fw_env.config' | grep -qx 'BOOT_ORDER=A' && fw_printenv -c '$T/ur/fw_env.config' | grep -qx 'BOOT_A_LEFT=3'"
fw_setenv -c "$T/ur/fw_env.config" BOOT_A_LEFT 0
$B "${O[@]}" --booted A mark-good
check "uboot: mark-good gives the booted slot its boots back (BOOT_A_LEFT=3 after U-Boot took the last)" \
	bash -c "fw_printenv -c '$T/ur/fw_env.config' | grep -qx 'BOOT_A_LEFT=3'"

# ---- a power cut at every I/O call of a switch
for be in file grub uboot barebox; do
	base="$T/pc-$be"
	O=($(fresh $be "$base"))
	$B "${O[@]}" switch B --tries 2 && $B "${O[@]}" simulate-boot >/dev/null   # a lived-in state
	cp -a "$base" "$base.initial"
	old=$(slots "${O[@]}")
	$B "${O[@]}" switch A --tries 3
	new=$(slots "${O[@]}")
	fails=0 cuts=0
	for m in lose keep torn; do
		for k in $(seq 1 60); do
			rm -rf "$base"; cp -a "$base.initial" "$base"
			rc=0
			POWERCUT_DIR="$base" POWERCUT_AT=$k POWERCUT_MODE=$m LD_PRELOAD="$PC" \
				$B "${O[@]}" switch A --tries 3 >/dev/null 2>&1 || rc=$?
			if [ $rc -eq 0 ]; then break; fi
			if [ $rc -ne 137 ]; then
				not_ok "$be: cut at call $k ($m): exit $rc, not the cut"; fails=$((fails + 1)); continue
			fi
			cuts=$((cuts + 1))
			got=$(slots "${O[@]}" 2>&1) || true
			if [ "$got" != "$old" ] && [ "$got" != "$new" ]; then
				not_ok "$be: cut at call $k ($m): state is neither old nor new: $got"; fails=$((fails + 1))
			fi
		done
	done
	check "$be: $cuts power cuts at every write/fsync/rename of a switch (lost, kept, torn): always exactly old or new" \
		test $fails -eq 0 -a $cuts -ge 3
done

# ---- GRUB: a write torn at the 512-byte sector boundary
# grubenv is rewritten in place; a power cut can leave its first sector new
# and its second old, or the other way round.  With about 480 bytes of a
# distro's own variables in the block (so that, written after them, slotsync's
# variables would straddle the boundary), every kind of change (switch, a
# boot's try, mark-good, mark-bad) torn either way must read back as exactly
# the old state or exactly the new one, with the distro's variables intact.
G=$T/tear
# the state as status prints it (without python: this section runs it often)
state() { $B "${O[@]}" status | grep -v '^booted:' | tr '\n' ' '; }
others() { grub-editenv "$G/grubenv" list | grep -v '^\(ORDER\|[AB]_OK\|[AB]_TRY\)=' | sort; }
# hybrid OLD NEW FIRST_FROM: the block with its first sector from FIRST_FROM
hybrid() {
	if [ "$3" = new ]; then
		{ head -c 512 "$2"; tail -c +513 "$1"; } >"$G/grubenv"
	else
		{ head -c 512 "$1"; tail -c +513 "$2"; } >"$G/grubenv"
	fi
}
tear_fails=0 tears=0
tear_case() { # tear_case bootctl-args...: the change, then both tears
	local old new got half
	cp "$G/grubenv" "$G/old"
	old=$(state)
	$B "${O[@]}" "$@" >/dev/null
	cp "$G/grubenv" "$G/new"
	new=$(state)
	for half in new old; do
		hybrid "$G/old" "$G/new" $half
		tears=$((tears + 1))
		got=$(state 2>&1) || true
		if [ "$got" != "$old" ] && [ "$got" != "$new" ]; then
			not_ok "tear ($len bytes of others): $*, first sector $half: a mix of two states: $got (old: $old; new: $new)"
			tear_fails=$((tear_fails + 1))
		elif [ "$(others)" != "$distro" ]; then
			not_ok "tear ($len bytes of others): $*, first sector $half: the distro's variables changed"
			tear_fails=$((tear_fails + 1))
		fi
	done
	cp "$G/new" "$G/grubenv"
}
# the distro's variables end at byte 490 to 508: written after them, ORDER
# would sit just before the boundary and A_OK or B_OK just after it
for at in 490 496 502 508; do
	O=($(blank grub "$G"))
	grub-editenv "$G/grubenv" unset kernel_extra
	for i in 1 2 3 4 5; do
		grub-editenv "$G/grubenv" set "distro_opt_$i=$(printf 'x%.0s' $(seq 60))"
	done
	end=$(python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); print(b.rindex(b"\n") + 1)' "$G/grubenv")
	grub-editenv "$G/grubenv" set "saved_entry=$(printf 'e%.0s' $(seq $((at - end - 13))))"
	distro=$(others)
	len=$((at - 25))
	# the first state written moves the distro's variables behind ours (a
	# device is provisioned so); every change after it is torn
	$B "${O[@]}" init
	tear_case switch B --tries 3
	tear_case simulate-boot
	tear_case mark-good B
	tear_case switch A --tries 2
	tear_case simulate-boot
	tear_case mark-bad A
	tear_case mark-bad B
	tear_case switch B --tries 1
	tear_case mark-good A
done
check "grub: $tears writes torn at the sector boundary (switch, a boot's try, mark-good, mark-bad; each half new) with 465 to 483 bytes of other lines before them: always the old or the new state, other variables intact" \
	test $tear_fails -eq 0

# ---- malformed storage: clear errors
O=($(fresh grub "$T/m"))
head -c 1024 /dev/urandom >"$T/m/grubenv"
expect_fail "grub: garbage grubenv" "invalid environment block" $B "${O[@]}" status
head -c 100 /dev/zero >"$T/m/grubenv"
expect_fail "grub: truncated grubenv" "invalid environment block" $B "${O[@]}" status
grub-editenv "$T/m/grubenv.new" create; mv "$T/m/grubenv.new" "$T/m/grubenv"
grub-editenv "$T/m/grubenv" set ORDER="A C"
expect_fail "grub: an unknown slot in ORDER" "ORDER=\"A C\"" $B "${O[@]}" status
grub-editenv "$T/m/grubenv" set ORDER="B A" B_TRY=lots
expect_fail "grub: garbage tries" "B_TRY=\"lots\"" $B "${O[@]}" status
grub-editenv "$T/m/grubenv" unset B_TRY
check "grub: a missing variable is a safe default (B not tried, A stays next)" \
	bash -c "grub-editenv '$T/m/grubenv' set A_OK=1; $B ${O[*]} status --json | grep -q '\"next\":\"A\"'"
O=($(fresh file "$T/f"))
$B "${O[@]}" switch B
$B "${O[@]}" --booted B mark-good
printf 'XXXXXXXXXXXXXXXX' | dd of="$T/f/state" bs=1 seek=0 conv=notrunc status=none
check "file: one damaged copy: the other is used" $B "${O[@]}" status
printf 'XXXXXXXXXXXXXXXX' | dd of="$T/f/state" bs=1 seek=512 conv=notrunc status=none
expect_fail "file: both copies damaged" "neither copy is valid" $B "${O[@]}" status
O=($(fresh uboot "$T/uu"))
head -c 16384 /dev/urandom >"$T/uu/uenv1"; cp "$T/uu/uenv1" "$T/uu/uenv2"
expect_fail "uboot: both copies with bad CRC" "no valid U-Boot environment" $B "${O[@]}" status
expect_fail "uboot: init does not write over both copies with bad CRC" "--force" $B "${O[@]}" init
check "uboot: init --force writes a whole environment over both copies with bad CRC" $B "${O[@]}" init --force
check "uboot: ... which U-Boot's tools read back: A first, good" \
	bash -c "fw_printenv -c '$T/uu/fw_env.config' BOOT_ORDER BOOT_A_OK | tr '\n' ' ' | grep -qx 'BOOT_ORDER=A BOOT_A_OK=1 '"
# a blank partition (a factory's first write): no environment in it at all
head -c 16384 /dev/zero >"$T/uu/uenv1"; cp "$T/uu/uenv1" "$T/uu/uenv2"
check "uboot: init --force provisions a blank storage" $B "${O[@]}" init --force
check "uboot: ... its first-boot state reads back" bash -c "$B ${O[*]} status --json | grep -q '\"next\": *\"A\"'"
O=($(fresh barebox "$T/bb"))
$B "${O[@]}" switch B
head -c 200 /dev/urandom | dd of="$T/bb/state.raw" bs=1 seek=0 conv=notrunc status=none
expect_fail "barebox: every copy damaged" "no valid copy" $B "${O[@]}" status
sed -i 's/barebox-magic = .*/barebox-magic = 0x12345678/' "$T/bb/bootctl.conf"
O=($(fresh barebox "$T/bb2"))
$B "${O[@]}" switch B
sed -i 's/barebox-magic = .*/barebox-magic = 0x12345678/' "$T/bb2/bootctl.conf"
expect_fail "barebox: a state of another magic" "no valid copy" $B "${O[@]}" status
# ---- a missing or unreadable storage is an error for every backend and verb
mkdir -p "$T/noread"; grub-editenv "$T/noread/grubenv" create; chmod 000 "$T/noread/grubenv"
for verb in status "switch B" "mark-good A" "mark-bad B" simulate-boot; do
	expect_fail "grub: $verb on a grubenv that does not exist" "grub boot state /nonexistent/grubenv: no such file" \
		$B --backend grub --env /nonexistent/grubenv $verb
	expect_fail "file: $verb on a state file that does not exist" "file boot state $T/none.state: no such file" \
		$B --backend file --env "$T/none.state" $verb
	printf 'backend = barebox\nenv = %s\nbarebox-magic = 0x4d433230\n' "$T/none.raw" >"$T/none.conf"
	expect_fail "barebox: $verb on a storage that does not exist" "barebox boot state $T/none.raw: cannot open" \
		$B --config "$T/none.conf" $verb
	expect_fail "uboot: $verb with an fw_env.config that does not exist" "uboot boot state $T/none.config" \
		$B --backend uboot --env "$T/none.config" $verb
	if [ "$(id -u)" != 0 ]; then
		expect_fail "grub: $verb on an unreadable grubenv" "$T/noread/grubenv" $B --backend grub --env "$T/noread/grubenv" $verb
	fi
done
check "the failed verbs created no state file" test ! -e "$T/none.state"
O=($(fresh file "$T/force"))
$B "${O[@]}" switch B
check "init --force writes the first-boot state over an existing one" \
	bash -c "$B ${O[*]} init --force && $B ${O[*]} status --json | grep -q '\"next\":\"A\"'"
expect_fail "init into a folder that does not exist" "/nonexistent/dir/grubenv" \
	$B --backend grub --env /nonexistent/dir/grubenv init
# ---- the command line: each verb's help, the global help, the version, log levels
for verb in status switch mark-good mark-bad simulate-boot init; do
	for h in --help -h; do
		rc=0
		$B $verb $h >"$T/help.out" 2>"$T/help.err" || rc=$?
		check "$verb $h: the verb's own usage on stdout, exit 0" \
			bash -c "[ $rc = 0 ] && head -n1 '$T/help.out' | grep -q '^Usage: slotsync-bootctl \[OPTIONS\] $verb' && grep -q 'Exit status: 0 done, 1 failed' '$T/help.out' && [ ! -s '$T/help.err' ]"
	done
done
check "--help: the global usage names every verb and the exit codes, exit 0" \
	bash -c "$B --help >'$T/help.out' && for v in status switch mark-good mark-bad simulate-boot init; do grep -q \"^  \$v\" '$T/help.out' || exit 1; done && grep -q 'Exit status: 0 done, 1 failed (the message says why), 2 usage error' '$T/help.out'"
check "--version anywhere on the command line" \
	bash -c "$B --version | grep -q '^slotsync-bootctl [0-9]' && $B --backend file --env '$T/none.state' status --version | grep -q '^slotsync-bootctl [0-9]'"
expect_fail "an unknown verb is a usage error" "unknown verb" $B --backend file --env "$T/x" reboot-now
check "an unknown verb exits 2" bash -c "$B --backend file --env '$T/x' reboot-now 2>/dev/null; [ \$? = 2 ]"
O=($(fresh file "$T/log"))
check "-v tells what was written, on stderr" \
	bash -c "$B -v ${O[*]} switch B 2>&1 >/dev/null | grep -q 'boot state .* written: A priority 1'"
check "without -v a switch says nothing" bash -c "[ -z \"\$($B ${O[*]} switch B 2>&1)\" ]"
check "-q and --quiet: still the status on stdout" bash -c "$B -q ${O[*]} status | grep -q '^next: B' && $B --quiet ${O[*]} status --json | grep -q '\"next\":\"B\"'"
expect_fail "an unknown backend" "unknown backend" $B --backend lilo --env x status
expect_fail "switch to a slot that does not exist" "SLOT is A or B" $B --backend file --env "$T/x" switch C
expect_fail "mark-good without knowing the booted slot" "cannot tell which slot is booted" \
	env -u X $B --backend file --env "$T/x" mark-good
finish
