/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device configuration: every key read, defaults, and each kind of bad
 * input refused with the file, the line and the key named. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slotsync/config.h"
#include "slotsync/features.h"
#include "test_util.h"

/* Encrypted slots where the build has them: the refusals below must not
 * depend on the features built in. */
#if SLOTSYNC_HAVE_LUKS2
#define SLOT_BACKEND "luks2"
#else
#define SLOT_BACKEND "raw"
#endif
#define SLOTS                                                                                                 \
	"[slot.A]\ndevice = /dev/vda\nbackend = " SLOT_BACKEND "\ndata = /dev/vdc\n"                           \
	"[slot.B]\ndevice = /dev/vdb\nbackend = " SLOT_BACKEND "\ndata = /dev/vdd\n"

static int load(const char *text, struct slotsync_config *c, struct slotsync_error *err)
{
	memset(err, 0, sizeof(*err));
	return slotsync_config_load_string(text, "system.conf", c, err);
}

START_TEST(test_full)
{
	struct slotsync_config c;
	struct slotsync_error err;
	const char *text = "# a device on a mast\n"
			   "[system]\ncompatible = radio-x86\nstate-dir = /data/slotsync\nkeyring = /etc/k.pem\n"
			   "allow-downgrade = yes\nboot-tries = 5\n"
			   "[boot]\nbackend = grub\nenv = /boot/grub/grubenv\n"
			   "[tpm]\ntcti = device:/dev/tpmrm0\npcrs = 7,16\n"
			   "[update]\nchannel = https://updates.example/stable.pointer\n"
			   "store = https://a.example/store\nstore = https://b.example/store\n"
			   "concurrency = 32\nmax-rate = 512k\npoll-interval = 4h\npoll-jitter = 20m\n"
			   "window = 22:30-04:00\nreboot-command = never\nhealth-dir = /usr/lib/h.d\nhealth-timeout = 90s\n"
			   SLOTS "mapping = rootB\n";

	if (!SLOTSYNC_HAVE_TPM) {
		/* a feature this build lacks is refused, naming its build option */
		ck_assert_int_lt(load(text, &c, &err), 0);
		ck_assert_msg(strstr(slotsync_error_message(&err), "system.conf:12: \"tcti = device:/dev/tpmrm0\" in "
				     "[tpm] needs TPM support, which this build of slotsync lacks (build it with "
				     "-DSLOTSYNC_TPM=ON)"), "%s", slotsync_error_message(&err));
		return;
	}
	ck_assert_msg(load(text, &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_str_eq(c.compatible, "radio-x86");
	ck_assert_str_eq(c.state_dir, "/data/slotsync");
	ck_assert_int_eq(c.allow_downgrade, 1);
	ck_assert_int_eq(c.boot_tries, 5);
	ck_assert_int_eq(c.boot.default_tries, 5);
	ck_assert_int_eq(c.boot.backend, SLOTSYNC_BOOT_GRUB);
	ck_assert_str_eq(c.boot.env, "/boot/grub/grubenv");
	ck_assert_uint_eq(c.pcr_mask, (1u << 7) | (1u << 16));
	ck_assert_int_eq(c.n_stores, 2);
	ck_assert_str_eq(c.store[1], "https://b.example/store");
	ck_assert_int_eq(c.concurrency, 32);
	ck_assert_uint_eq(c.max_rate, 512 * 1024);
	ck_assert_uint_eq(c.poll_interval, 4 * 3600);
	ck_assert_uint_eq(c.poll_jitter, 20 * 60);
	ck_assert_int_eq(c.window_start, 22 * 60 + 30);
	ck_assert_int_eq(c.window_end, 4 * 60);
	ck_assert(slotsync_config_in_window(&c, 23 * 60));
	ck_assert(slotsync_config_in_window(&c, 60));
	ck_assert(!slotsync_config_in_window(&c, 12 * 60));
	ck_assert_str_eq(c.reboot_command, "never");
	ck_assert_uint_eq(c.health_timeout, 90);
	ck_assert_int_eq(c.slot[1].backend, SLOTSYNC_HAVE_LUKS2 ? SLOTSYNC_SLOT_LUKS2 : SLOTSYNC_SLOT_RAW);
	ck_assert_str_eq(c.slot[1].mapping, "rootB");
	ck_assert_str_eq(c.slot[0].mapping, "slotsync-A");
	ck_assert_str_eq(c.slot[0].data_mapping, "slotsync-data-A");
	ck_assert_str_eq(slotsync_config_slot(&c, "b")->device, "/dev/vdb");
	ck_assert_ptr_null(slotsync_config_slot(&c, "C"));
	ck_assert_str_eq(slotsync_config_tpm(&c).tcti, "device:/dev/tpmrm0");
	ck_assert_int_eq(c.root_pcr, -1);
}
END_TEST

START_TEST(test_defaults)
{
	struct slotsync_config c;
	struct slotsync_error err;

	ck_assert_int_eq(load("[slot.A]\ndevice=/a\n[slot.B]\ndevice=/b\n", &c, &err), 0);
	ck_assert_int_eq(c.slot[0].backend, SLOTSYNC_SLOT_RAW);
	ck_assert_str_eq(c.state_dir, "/var/lib/slotsync");
	ck_assert_str_eq(c.reboot_command, "systemctl reboot");
	ck_assert_int_eq(c.window_start, -1);
	ck_assert(slotsync_config_in_window(&c, 700));
	ck_assert_ptr_null(slotsync_config_tpm(&c).tcti);
	ck_assert_int_eq(c.boot.backend, SLOTSYNC_BOOT_FILE);
}
END_TEST

static void refused(const char *text, const char *expect)
{
	struct slotsync_config c;
	struct slotsync_error err;

	ck_assert_int_lt(load(text, &c, &err), 0);
	ck_assert_msg(strstr(slotsync_error_message(&err), expect), "for:\n%s\nexpected \"%s\" in \"%s\"", text, expect,
		      slotsync_error_message(&err));
}

START_TEST(test_refusals)
{
	refused("[system]\ncompatible = x\ncolour = blue\n" SLOTS, "system.conf:3: unknown key \"colour\" in [system]");
	refused("[sytem]\ncompatible = x\n" SLOTS, "system.conf:2: unknown section [sytem]");
	refused("[update]\npoll-interval = soon\n" SLOTS, "system.conf:2: bad value \"soon\" for key \"poll-interval\"");
	refused("[update]\nmax-rate = 5T\n" SLOTS, "bad value \"5T\" for key \"max-rate\"");
	refused("[update]\nwindow = 25:00-03:00\n" SLOTS, "bad value \"25:00-03:00\" for key \"window\"");
	refused("[update]\nwindow = 02:00-02:00\n" SLOTS, "for key \"window\"");
	refused("[update]\nconcurrency = 0\n" SLOTS, "for key \"concurrency\"");
	refused("[update]\nchannel = ftp://x/p\n" SLOTS, "for key \"channel\"");
	if (SLOTSYNC_HAVE_TPM)
		refused("[tpm]\npcrs = 7,24\n" SLOTS, "system.conf:2: bad value \"7,24\" for key \"pcrs\"");
	refused("[system]\nboot-tries = 0\n" SLOTS, "for key \"boot-tries\"");
	refused("[system]\nallow-downgrade = maybe\n" SLOTS, "for key \"allow-downgrade\"");
	refused("[boot]\nbackend = lilo\n" SLOTS, "bad value \"lilo\" for key \"backend\" in [boot]");
	refused("[boot]\nbooted = A\n" SLOTS, "unknown key \"booted\" in [boot]");
	refused("[system]\ncompatible = a\ncompatible = b\n" SLOTS, "system.conf:3: key \"compatible\" in [system] is given twice");
	refused("[system]\njust a line\n" SLOTS, "system.conf:2: not \"key = value\"");
	refused("[slot.A]\ndevice = /a\n[slot.B]\ndevice = /b\nbackend = lvm\n", "system.conf:5: bad value \"lvm\" for key \"backend\" in [slot.B]");
	refused(SLOTS "device = relative/path\n", "key \"device\" in [slot.B] is given twice");
	refused("[slot.A]\ndevice = /dev/vda\n", "[slot.B] with its device = is missing");
	refused("[slot.A]\ndevice = /a\n[slot.B]\ndevice = /a\n", "slots A and B name the same device");
	refused("[slot.A]\ndevice = /a\ndata = /d\n[slot.B]\ndevice = /b\n", "a data partition for one slot only");
	refused("[slot.A]\ndevice = /a\nmapping = x/y\n[slot.B]\ndevice = /b\n", "bad value \"x/y\" for key \"mapping\"");
	refused("[slot.A]\ndevice = /a\nmapping = m\n[slot.B]\ndevice = /b\nmapping = m\n", "share a mapping name");
	refused("[update]\nclient-cert = /c.pem\n" SLOTS, "client-cert and client-key go together");
}
END_TEST

/* [tpm] root-pcr: the PCR the root's verity hash is measured into; none unless
 * set, 0 to 23, and never one of pcrs (the slots' keys are unsealed
 * before the root is measured) */
START_TEST(test_root_pcr)
{
	struct slotsync_config c;
	struct slotsync_error err;

	ck_assert_int_eq(load(SLOTS, &c, &err), 0);
	ck_assert_int_eq(c.root_pcr, -1);
	if (!SLOTSYNC_HAVE_TPM)
		return;
	ck_assert_msg(load("[tpm]\nroot-pcr = 15\n" SLOTS, &c, &err) == 0 && c.root_pcr == 15, "%s",
		      slotsync_error_message(&err));
	ck_assert_msg(load("[tpm]\nroot-pcr = none\n" SLOTS, &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_int_eq(c.root_pcr, -1);
	ck_assert_msg(load("[tpm]\npcrs = 7,15\nroot-pcr = 23\n" SLOTS, &c, &err) == 0, "%s",
		      slotsync_error_message(&err));
	ck_assert_int_eq(c.root_pcr, 23);
	ck_assert_uint_eq(c.pcr_mask, 1u << 7 | 1u << 15);
	ck_assert_msg(load("[tpm]\npcrs = 15\nroot-pcr = none\n" SLOTS, &c, &err) == 0, "%s",
		      slotsync_error_message(&err));
	ck_assert_msg(load("[tpm]\nroot-pcr = 0\n" SLOTS, &c, &err) == 0 && c.root_pcr == 0, "%s",
		      slotsync_error_message(&err));
	refused("[tpm]\nroot-pcr = 24\n" SLOTS, "system.conf:2: bad value \"24\" for key \"root-pcr\" in [tpm]");
	refused("[tpm]\nroot-pcr = -1\n" SLOTS, "bad value \"-1\" for key \"root-pcr\"");
	refused("[tpm]\nroot-pcr = 7,8\n" SLOTS, "bad value \"7,8\" for key \"root-pcr\"");
	refused("[tpm]\nroot-pcr = \n" SLOTS, "for key \"root-pcr\"");
	refused("[tpm]\npcrs = 7,15\nroot-pcr = 15\n" SLOTS, "system.conf: [tpm] root-pcr = 15 is also in pcrs");
	refused("[tpm]\nroot-pcr = 7\npcrs = 0,7\n" SLOTS, "[tpm] root-pcr = 7 is also in pcrs");
}
END_TEST

/* boot-tries the bootloader cannot count is refused when the configuration is
 * read, not after a whole slot was written */
START_TEST(test_boot_tries_per_backend)
{
	struct slotsync_config c;
	struct slotsync_error err;

	refused("[system]\nboot-tries = 50\n[boot]\nbackend = grub\nenv = /boot/grubenv\n" SLOTS,
		"boot-tries = 50 in [system] is more than the grub backend counts (at most 9)");
	refused("[boot]\nbackend = grub\nenv = /boot/grubenv\n[system]\nboot-tries = 10\n" SLOTS,
		"boot-tries = 10 in [system] is more than the grub backend counts (at most 9)");
	refused("[boot]\nbackend = grub\nenv = /boot/grubenv\ndefault-tries = 12\n" SLOTS,
		"default-tries = 12 in [boot] is more than the grub backend counts (at most 9)");
	ck_assert_int_eq(load("[system]\nboot-tries = 9\n[boot]\nbackend = grub\nenv = /boot/grubenv\n" SLOTS, &c, &err), 0);
	ck_assert_int_eq(c.boot_tries, 9);
	ck_assert_int_eq(load("[system]\nboot-tries = 50\n" SLOTS, &c, &err), 0); /* the file backend counts to 100 */
	ck_assert_int_eq(slotsync_boot_tries_max(SLOTSYNC_BOOT_GRUB), 9);
	ck_assert_int_eq(slotsync_boot_tries_max(SLOTSYNC_BOOT_FILE), SLOTSYNC_BOOT_TRIES_MAX);
}
END_TEST

/* [update] min-rate: a size in bytes per second, or none; never 0 */
START_TEST(test_min_rate)
{
	struct slotsync_config c;
	struct slotsync_error err;

	ck_assert_msg(load("[update]\nmin-rate = 1k\n" SLOTS, &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_uint_eq(c.min_rate, 1024);
	ck_assert_msg(load("[update]\nmin-rate = none\n" SLOTS, &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_uint_eq(c.min_rate, UINT64_MAX);
	ck_assert_msg(load(SLOTS, &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_uint_eq(c.min_rate, 0); /* the engine's default */
	refused("[update]\nmin-rate = 0\n" SLOTS, "system.conf:2: bad value \"0\" for key \"min-rate\"");
	refused("[update]\nmin-rate = slow\n" SLOTS, "bad value \"slow\" for key \"min-rate\"");
}
END_TEST

/* Each device feature a build lacks is refused by name at load, never later. */
/* Where updates come from: a URL with its scheme, and plain http only on purpose. */
START_TEST(test_update_urls)
{
	struct slotsync_config c;
	struct slotsync_error err;

	refused("[update]\nstore = cdn.example.com/store\n" SLOTS, "bad value \"cdn.example.com/store\" for key \"store\"");
	refused("[update]\nchannel = cdn.example.com/stable.pointer\n" SLOTS, "for key \"channel\"");
	refused("[update]\nstore = http://cdn.example.com/store\n" SLOTS,
		"[update] store = http://cdn.example.com/store: plain http:// is refused");
	refused("[update]\nchannel = http://cdn.example.com/p\nstore = https://cdn.example.com/store\n" SLOTS,
		"[update] channel = http://cdn.example.com/p: plain http:// is refused");
	refused("[update]\nallow-plain-http = perhaps\n" SLOTS, "for key \"allow-plain-http\"");
	/* allowed on purpose, wherever the key stands in [update] */
	ck_assert_msg(load("[update]\nstore = http://cdn.example.com/store\nchannel = http://cdn.example.com/p\n"
			   "allow-plain-http = yes\n" SLOTS, &c, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(c.allow_plain_http, 1);
	ck_assert_msg(load("[update]\nstore = https://cdn.example.com/store\nstore = file:///media/usb/store\n" SLOTS, &c,
			   &err) == 0, "%s", err.msg);
	ck_assert_int_eq(c.allow_plain_http, 0);
}
END_TEST

START_TEST(test_missing_features)
{
	struct slotsync_config c;
	struct slotsync_error err;
	int r;

	r = load("[tpm]\npcrs = 7\n[slot.A]\ndevice=/a\n[slot.B]\ndevice=/b\n", &c, &err);
	if (SLOTSYNC_HAVE_TPM)
		ck_assert_msg(r == 0 && c.pcr_mask == 1u << 7, "%s", slotsync_error_message(&err));
	else
		ck_assert_msg(r < 0 && strstr(slotsync_error_message(&err), "-DSLOTSYNC_TPM=ON"), "%s",
			      slotsync_error_message(&err));
	r = load("[slot.A]\ndevice=/a\nbackend=luks2\n[slot.B]\ndevice=/b\n", &c, &err);
	if (SLOTSYNC_HAVE_LUKS2)
		ck_assert_msg(r == 0 && c.slot[0].backend == SLOTSYNC_SLOT_LUKS2, "%s", slotsync_error_message(&err));
	else
		ck_assert_msg(r < 0 && strstr(slotsync_error_message(&err), "system.conf:3: \"backend = luks2\" in "
					      "[slot.A] needs LUKS2 support") &&
				      strstr(slotsync_error_message(&err), "-DSLOTSYNC_LUKS2=ON"),
			      "%s", slotsync_error_message(&err));
	r = load("[boot]\nbackend = uboot\n[slot.A]\ndevice=/a\n[slot.B]\ndevice=/b\n", &c, &err);
	if (SLOTSYNC_HAVE_UBOOT)
		ck_assert_msg(r == 0 && c.boot.backend == SLOTSYNC_BOOT_UBOOT, "%s", slotsync_error_message(&err));
	else
		ck_assert_msg(r < 0 && strstr(slotsync_error_message(&err), "-DSLOTSYNC_UBOOT=ON"), "%s",
			      slotsync_error_message(&err));
}
END_TEST

START_TEST(test_file_errors)
{
	struct slotsync_config c;
	struct slotsync_error err = { 0 };

	ck_assert_int_lt(slotsync_config_load("/nonexistent/system.conf", &c, &err), 0);
	ck_assert_msg(strstr(slotsync_error_message(&err), "cannot read config /nonexistent/system.conf"), "%s",
		      slotsync_error_message(&err));
}
END_TEST

/* "[system" without its "]": the line of the header, said as such, not the
 * key after it in a section named "" */
START_TEST(test_unclosed_section)
{
	struct slotsync_config c;
	struct slotsync_error err;
	char path[] = "/tmp/slotsync-config-XXXXXX";
	const char *text = "[system\ncompatible = x\n" SLOTS;
	int fd;

	ck_assert_int_lt(load(text, &c, &err), 0);
	ck_assert_str_eq(slotsync_error_message(&err), "system.conf: line 1: section header without ]");
	ck_assert_int_lt(load("# comment\n  [slot.A\ndevice = /dev/vda\n", &c, &err), 0);
	ck_assert_str_eq(slotsync_error_message(&err), "system.conf: line 2: section header without ]");
	/* the same from a file */
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	memset(&err, 0, sizeof(err));
	ck_assert_int_lt(slotsync_config_load(path, &c, &err), 0);
	ck_assert_msg(strstr(slotsync_error_message(&err), ": line 1: section header without ]"), "%s",
		      slotsync_error_message(&err));
	unlink(path);
	/* a key outside any section is still told as it was */
	ck_assert_int_lt(load("compatible = x\n" SLOTS, &c, &err), 0);
	ck_assert_msg(!strstr(slotsync_error_message(&err), "without ]"), "%s", slotsync_error_message(&err));
}
END_TEST

START_TEST(test_slot_groups)
{
	struct slotsync_config c;
	struct slotsync_error err;
	static const struct {
		const char *text, *needle;
	} bad[] = {
		{ "[slot.A]\nrootfs = /dev/vda\ndevice = /dev/vda\n[slot.B]\ndevice = /dev/vdb\n",
		  "system.conf:3: rootfs = and device = in [slot.A] both name the main image's volume: give one of them" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\n",
		  "[slot.A] names image \"boot\" and [slot.B] does not: both slots name the same images" },
		{ "[slot.A]\ndevice = /dev/vda\n[slot.B]\ndevice = /dev/vdb\nboot = /dev/vdd\n",
		  "[slot.B] names image \"boot\" and [slot.A] does not" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\nboot = /dev/vdc\n",
		  "image \"boot\" of [slot.A] is on /dev/vdc, which another volume uses too" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = /dev/vda\n[slot.B]\ndevice = /dev/vdb\nboot = /dev/vdd\n",
		  "image \"boot\" of [slot.A] is on /dev/vda" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = /dev/vdc\ndtb = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\nboot = /dev/vdd\ndtb = /dev/vde\n",
		  "are on the same volume /dev/vdc" },
		{ "[slot.A]\ndevice = /dev/vda\nBoot = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\n",
		  "system.conf:3: unknown key \"Boot\" in [slot.A]" },
		{ "[slot.A]\ndevice = /dev/vda\n_boot = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\n", "unknown key \"_boot\"" },
		{ "[slot.A]\ndevice = /dev/vda\na23456789012345678901234567890123 = /dev/vdc\n[slot.B]\ndevice = /dev/vdb\n",
		  "unknown key" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = /dev/vdc\nboot = /dev/vde\n[slot.B]\ndevice = /dev/vdb\n",
		  "key \"boot\" in [slot.A] is given twice" },
		{ "[slot.A]\ndevice = /dev/vda\nboot = relative/path\n[slot.B]\ndevice = /dev/vdb\n",
		  "bad value \"relative/path\" for key \"boot\"" },
		{ "[slot.A]\ndevice = /dev/vda\na=/x/1\nb=/x/2\nc=/x/3\nd=/x/4\ne=/x/5\nf=/x/6\ng=/x/7\nh=/x/8\ni=/x/9\n"
		  "[slot.B]\ndevice = /dev/vdb\n", "too many \"i\" keys in [slot.A]" },
	};

	/* rootfs = is device =; further images sorted by name, whatever their order */
	ck_assert_msg(load("[slot.A]\nrootfs = /dev/vda\nboot = /dev/vdc\ndtb-x = /dev/vde\n[slot.B]\ndtb-x = /dev/vdf\n"
			   "device = /dev/vdb\nboot = /dev/vdd\n",
			   &c, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_str_eq(c.slot[0].device, "/dev/vda");
	ck_assert_uint_eq(c.slot[0].n_images, 2);
	ck_assert_uint_eq(c.slot[1].n_images, 2);
	ck_assert_str_eq(c.slot[0].images[0].name, "boot");
	ck_assert_str_eq(c.slot[0].images[0].device, "/dev/vdc");
	ck_assert_str_eq(c.slot[0].images[1].name, "dtb-x");
	ck_assert_str_eq(c.slot[1].images[0].name, "boot");
	ck_assert_str_eq(c.slot[1].images[0].device, "/dev/vdd");
	ck_assert_str_eq(c.slot[1].images[1].device, "/dev/vdf");
	/* no further images: as before */
	ck_assert_int_eq(load("[slot.A]\ndevice = /dev/vda\n[slot.B]\ndevice = /dev/vdb\n", &c, &err), 0);
	ck_assert_uint_eq(c.slot[0].n_images, 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(load(bad[i].text, &c, &err) < 0, "accepted case %zu", i);
		ck_assert_msg(strstr(slotsync_error_message(&err), bad[i].needle), "case %zu: \"%s\" does not say \"%s\"", i,
			      slotsync_error_message(&err), bad[i].needle);
	}
}
END_TEST

START_TEST(test_example_parses)
{
	struct slotsync_config c;
	struct slotsync_error err = { 0 };

	/* the documented example is a configuration the device takes (one with
	 * TPM and LUKS2: a build without them says which option it lacks) */
	if (!SLOTSYNC_HAVE_TPM || !SLOTSYNC_HAVE_LUKS2) {
		ck_assert_int_lt(slotsync_config_load(SLOTSYNC_SOURCE_DIR "/docs/system.conf.example", &c, &err), 0);
		ck_assert_msg(strstr(slotsync_error_message(&err), "which this build of slotsync lacks (build it with "
				     "-DSLOTSYNC_"), "%s", slotsync_error_message(&err));
		return;
	}
	ck_assert_msg(slotsync_config_load(SLOTSYNC_SOURCE_DIR "/docs/system.conf.example", &c, &err) == 0, "%s",
		      slotsync_error_message(&err));
	ck_assert_str_eq(c.compatible, "radio-bs-x86");
	ck_assert_int_eq(c.slot[1].backend, SLOTSYNC_SLOT_LUKS2);
	ck_assert_int_eq(c.n_stores, 2);
	ck_assert_uint_eq(c.stall_timeout, 30);
	ck_assert_uint_eq(c.min_rate, 256);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_refusals);
	tcase_add_test(tc, test_root_pcr);
	tcase_add_test(tc, test_boot_tries_per_backend);
	tcase_add_test(tc, test_min_rate);
	tcase_add_test(tc, test_update_urls);
	tcase_add_test(tc, test_missing_features);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_example_parses);
	tcase_add_test(tc, test_slot_groups);
	tcase_add_test(tc, test_unclosed_section);
	suite_add_tcase(s, tc);
	return test_run_suite(s);
}
