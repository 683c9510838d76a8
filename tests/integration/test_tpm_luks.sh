#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# LUKS2 slots with TPM-sealed keys, on the host: swtpm as the TPM (TCTI swtpm),
# LUKS2 headers on plain files (the host has no device-mapper; mappings are
# tested in the VM).  Seal and unseal, the token round trip, a PCR policy that
# no longer matches, a header sealed under another policy than the device's
# (none, other PCRs), a TPM that is not there, another TPM, another header.
source "$(dirname "$0")/lib.sh"
S=$SLOTSYNC_BIN
cd "$T"
start_swtpm main TPM
start_swtpm other OTHER

truncate -s 40M slot-a.img data-a.img
uuid=$($S slot-format --tcti "$TPM" slot-a.img)
check "slot-format writes a LUKS2 header and prints its UUID ($uuid)" \
	bash -c "cryptsetup luksDump slot-a.img | grep -qE 'UUID:[[:space:]]+$uuid'"
check "aes-xts-plain64 with 4096-byte sectors" \
	bash -c "cryptsetup luksDump slot-a.img | grep -q 'cipher: aes-xts-plain64' && cryptsetup luksDump slot-a.img | grep -q 'sector: 4096'"
check "the sealed key is in a slotsync-tpm2 token, no passphrase keyslot" \
	bash -c "cryptsetup token export --token-id 0 slot-a.img | grep -q '\"type\":\"slotsync-tpm2\"' && ! cryptsetup luksDump slot-a.img | grep -qE '^  [0-9]+: luks2'"
check "unlock unseals the key through the TPM and the header accepts it" $S unlock --tcti "$TPM" --check slot-a.img
check "unlock with the expected UUID" $S unlock --tcti "$TPM" --expect-uuid "$uuid" --check slot-a.img
expect_fail "a header that is not the one expected (formatted again)" "holds LUKS2 header $uuid" \
	$S unlock --tcti "$TPM" --expect-uuid 00000000-0000-0000-0000-000000000000 --check slot-a.img
expect_fail "another TPM cannot unseal it" "sealed by another TPM" $S unlock --tcti "$OTHER" --check slot-a.img
expect_fail "TPM not reachable: a clear error" "TPM not reachable" \
	$S unlock --tcti "swtpm:host=127.0.0.1,port=$(free_port)" --check slot-a.img
expect_fail "a plain file without a LUKS2 header" "has no LUKS2 header" $S unlock --tcti "$TPM" --check data-a.img
check "each format makes a fresh key: a second slot's key differs" bash -c "
	$S slot-format --tcti '$TPM' data-a.img >/dev/null &&
	[ \"\$(cryptsetup token export --token-id 0 slot-a.img)\" != \"\$(cryptsetup token export --token-id 0 data-a.img)\" ]"
expect_fail "slot-format when the TPM is not there writes no header" "TPM not reachable" \
	$S slot-format --tcti "swtpm:host=127.0.0.1,port=$(free_port)" --pcrs 7 "$T/fresh.img"
check "(no header was written)" bash -c "! cryptsetup isLuks '$T/fresh.img' 2>/dev/null"

# a key bound to PCR 16: unseals while PCR 16 is unchanged, refused after an extend
truncate -s 40M slot-b.img
$S slot-format --tcti "$TPM" --pcrs 16 slot-b.img >/dev/null
check "a PCR-bound key unseals while the PCR holds its value" $S unlock --tcti "$TPM" --pcrs 16 --check slot-b.img
# the device's policy decides, not the header: a header sealed with no policy
# (an attacker's slot-format without --pcrs) or for other PCRs is refused
printf '[tpm]\ntcti = %s\npcrs = 7,16\n[slot.A]\ndevice = /a\n[slot.B]\ndevice = /b\n' "$TPM" >pcrs.conf
expect_fail "a key sealed with no PCR policy does not open on a device that requires PCRs ([tpm] pcrs)" \
	"the sealed key carries no PCR policy, but this device requires PCRs 7,16 ([tpm] pcrs in system.conf)" \
	$S unlock --config pcrs.conf --check slot-a.img
expect_fail "a key bound to other PCRs than the device's is refused by name" \
	"the sealed key is bound to PCRs 16, but this device requires PCRs 7,16" $S unlock --config pcrs.conf --check slot-b.img
expect_fail "without --pcrs or --config no PCRs are required, so a PCR-bound key is refused too" \
	"bound to PCRs 16, but this device requires none" $S unlock --tcti "$TPM" --check slot-b.img
check "--pcrs on the command line wins over the configuration's" \
	$S unlock --config pcrs.conf --pcrs 16 --check slot-b.img
TPM2TOOLS_TCTI="$TPM" tpm2_pcrextend 16:sha256=$(printf '%064d' 1) >/dev/null
expect_fail "after the PCR changed (another boot chain), the TPM refuses" "no longer hold the values" \
	$S unlock --tcti "$TPM" --pcrs 16 --check slot-b.img
check "a key without a PCR policy still unseals where none is required" $S unlock --tcti "$TPM" --check slot-a.img
# damaged token
cryptsetup token export --token-id 0 slot-a.img | sed 's/"tpm2-blob":"[A-Za-z0-9+\/]\{8\}/"tpm2-blob":"AAAAAAAA/' >tok.json
cryptsetup token remove --token-id 0 slot-a.img
cryptsetup token import --json-file tok.json slot-a.img
expect_fail "a damaged token is refused" "slot-a.img" $S unlock --tcti "$TPM" --check slot-a.img

# slots named by the configuration (/etc/slotsync/system.conf's format)
printf '[tpm]\ntcti = %s\n[slot.A]\ndevice = %s/raw-a.img\n[slot.B]\ndevice = %s/raw-b.img\n' "$TPM" "$T" "$T" >raw.conf
check "unlock SLOT of a raw slot prints its device" bash -c "[ \"\$($S unlock --config raw.conf B)\" = '$T/raw-b.img' ]"
printf '[tpm]\ntcti = %s\n[slot.A]\ndevice = %s/slot-b.img\nbackend = luks2\n[slot.B]\ndevice = %s/data-a.img\nbackend = luks2\n' \
	"$TPM" "$T" "$T" >luks.conf
expect_fail "unlock SLOT of a luks2 slot whose key is bound to a PCR the configuration does not name: refused, named" \
	"slot A: $T/slot-b.img: the sealed key is bound to PCRs 16, but this device requires none" $S unlock --config luks.conf A
printf '[tpm]\ntcti = %s\npcrs = 16\n[slot.A]\ndevice = %s/slot-b.img\nbackend = luks2\n[slot.B]\ndevice = %s/data-a.img\nbackend = luks2\n' \
	"$TPM" "$T" "$T" >luks16.conf
expect_fail "unlock SLOT of a luks2 slot whose key is bound to a PCR that moved: refused, named" \
	"slot A: $T/slot-b.img: TPM refuses to unseal: PCRs 16 no longer hold" $S unlock --config luks16.conf A
expect_fail "unlock SLOT of a luks2 slot sealed with no policy, on a device that requires PCRs: refused, named" \
	"slot B: $T/data-a.img: the sealed key carries no PCR policy, but this device requires PCRs 16" \
	$S unlock --config luks16.conf B
printf '[tpm]\ntcti = %s\ncolour = blue\n[slot.A]\ndevice = /a\n[slot.B]\ndevice = /b\n' "$TPM" >bad.conf
expect_fail "a bad configuration is refused with file, line and key" "bad.conf:3: unknown key \"colour\" in [tpm]" \
	$S unlock --config bad.conf A
expect_fail "an unknown slot name is refused" 'no slot "C"' $S unlock --config raw.conf C
expect_fail "a missing configuration is named" "cannot read config $T/none.conf" $S unlock --config "$T/none.conf" A
# the raw backend through assemble --slot, seeded from the other slot
sample_images
G=$SLOTSYNC_GEN
$G make --no-progress --store store "$V1" v1.caibx >/dev/null
$G make --no-progress --store store "$V2" v2.caibx >/dev/null
cp "$V1" raw-a.img
start_nginx store "$T"
check "assemble --slot B writes the raw slot B, seeded from slot A (--seed-slot A:INDEX)" \
	$S assemble --config raw.conf --slot B --seed-slot A:v1.caibx --store "$NGINX_URL/store" --ca-file "$T/test-ca.pem" \
	--journal raw-b.journal v2.caibx
check "(slot B is v2 byte for byte)" cmp -s raw-b.img "$V2"
expect_fail "--slot needs a journal" "--slot needs --journal" $S assemble --config raw.conf --slot B --store "$NGINX_URL/store" v2.caibx
finish
