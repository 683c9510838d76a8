/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TPM sealing against a real TPM 2.0 (swtpm on 127.0.0.1, started here): the
 * device's PCR policy decides how a key is unsealed, whatever the blob says (a
 * blob with no policy, or bound to other PCRs, is refused by name); a key
 * sealed for a PCR value the next boot will reach (expect) unseals only once
 * the PCR holds it; PCR read and extend agree with tpm2-tools; a LUKS2 header
 * formatted under another policy does not open on a device that requires
 * PCRs. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixtures.h"
#include "slotsync/features.h"
#include "slotsync/luks.h"
#include "slotsync/tpm.h"

static char tcti[128];
static char *tpm_dir;
static pid_t swtpm_pid;

static const uint8_t key[32] = "a volume key of thirty-two bytes";

/* a port P with P + 1 free too (swtpm listens on both), or -1 */
static int free_port_pair(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t l = sizeof(a);
		int s = socket(AF_INET, SOCK_STREAM, 0), t = socket(AF_INET, SOCK_STREAM, 0), port = -1;

		if (s >= 0 && t >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    getsockname(s, (struct sockaddr *)&a, &l) == 0 && ntohs(a.sin_port) < 65535) {
			a.sin_port = htons(ntohs(a.sin_port) + 1);
			if (bind(t, (struct sockaddr *)&a, sizeof(a)) == 0)
				port = ntohs(a.sin_port) - 1;
		}
		if (s >= 0)
			close(s);
		if (t >= 0)
			close(t);
		if (port > 0)
			return port;
	}
	return -1;
}

/* whether process pid holds the socket listening on 127.0.0.1:port: another
 * test's swtpm may have taken the port between the probe and our bind, and
 * it must not be taken for ours */
static bool listens_on(pid_t pid, int port)
{
	char line[512], path[64], link[64], want[64];
	unsigned long inode = 0;
	FILE *f = fopen("/proc/net/tcp", "r");
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned int addr, lport, rport, raddr, st;
		unsigned long ino;

		if (sscanf(line, " %*d: %8X:%4X %8X:%4X %2X %*s %*s %*s %*s %*s %lu", &addr, &lport, &raddr, &rport,
			   &st, &ino) == 6 &&
		    (int)lport == port && st == 0x0A) /* TCP_LISTEN */
			inode = ino;
	}
	fclose(f);
	if (!inode)
		return false;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	for (int fd = 0; fd < 64 && !found; fd++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = strcmp(link, want) == 0;
		}
	}
	return found;
}

/* one try at swtpm on a fresh port pair, in the foreground as our child: 1
 * when it serves, 0 when it exited (its port was taken: try again), -1 when
 * it runs but does not answer */
static int swtpm_try(const char *state, struct slotsync_error *err)
{
	char server[80], ctrl[80];
	uint8_t v[32];
	int port = free_port_pair();

	if (port < 0)
		return -1;
	snprintf(server, sizeof(server), "type=tcp,port=%d,bindaddr=127.0.0.1", port);
	snprintf(ctrl, sizeof(ctrl), "type=tcp,port=%d,bindaddr=127.0.0.1", port + 1);
	snprintf(tcti, sizeof(tcti), "swtpm:host=127.0.0.1,port=%d", port);
	swtpm_pid = fork();
	if (swtpm_pid < 0)
		return -1;
	if (swtpm_pid == 0) {
		execlp("swtpm", "swtpm", "socket", "--tpm2", "--tpmstate", state, "--server", server, "--ctrl", ctrl,
		       "--flags", "not-need-init,startup-clear", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (waitpid(swtpm_pid, NULL, WNOHANG) == swtpm_pid) {
			swtpm_pid = 0;
			return 0;
		}
		if (listens_on(swtpm_pid, port) && listens_on(swtpm_pid, port + 1) &&
		    slotsync_tpm_pcr_read(tcti, 0, v, err) == 0)
			return 1;
		usleep(50000);
	}
	return -1;
}

/* swtpm, stopped by its pid when the suite ends; 0, or -1 when it does not
 * come up */
static int swtpm_start(void)
{
	char state[300];
	struct slotsync_error err = { 0 };
	int r = 0;

	tpm_dir = test_mkdtemp();
	if (!tpm_dir)
		return -1;
	snprintf(state, sizeof(state), "dir=%s", tpm_dir);
	for (int tries = 0; tries < 10 && r == 0; tries++)
		r = swtpm_try(state, &err);
	if (r == 1)
		return 0;
	fprintf(stderr, "swtpm did not come up: %s\n", r == 0 ? "its port was taken on every try" :
							   slotsync_error_message(&err));
	return -1;
}

static void swtpm_stop(void)
{
	if (swtpm_pid > 0) {
		kill(swtpm_pid, SIGTERM);
		waitpid(swtpm_pid, NULL, 0);
	}
}

static void seal(uint32_t mask, uint8_t **blob, size_t *len)
{
	struct slotsync_error err = { 0 };

	ck_assert_msg(slotsync_tpm_seal(tcti, key, sizeof(key), mask, blob, len, &err) == 0, "%s",
		      slotsync_error_message(&err));
}

/* unseals blob under require; 0 and the key back, or the error with its message */
static int unseal(uint32_t require, const uint8_t *blob, size_t len, struct slotsync_error *err)
{
	uint8_t out[SLOTSYNC_TPM_SECRET_MAX];
	size_t out_len = 0;
	int r;

	memset(err, 0, sizeof(*err)); /* an error is set once: each call gets a fresh one */
	r = slotsync_tpm_unseal(tcti, require, blob, len, out, &out_len, err);

	if (r == 0) {
		ck_assert_uint_eq(out_len, sizeof(key));
		ck_assert_mem_eq(out, key, sizeof(key));
	}
	return r;
}

#define REFUSED(r, err, text)                                                                                          \
	do {                                                                                                           \
		ck_assert_int_eq((r), -EACCES);                                                                        \
		ck_assert_msg(strstr(slotsync_error_message(&(err)), (text)), "expected \"%s\" in \"%s\"", (text),    \
			      slotsync_error_message(&(err)));                                                         \
	} while (0)

static void extend(unsigned pcr, uint8_t fill)
{
	struct slotsync_error err = { 0 };
	uint8_t d[32];

	memset(d, fill, sizeof(d));
	ck_assert_msg(slotsync_tpm_pcr_extend(tcti, pcr, d, &err) == 0, "%s", slotsync_error_message(&err));
}

START_TEST(test_device_policy_decides)
{
	struct slotsync_error err = { 0 };
	uint8_t *blob;
	size_t len;

	/* an attacker's blob with no policy would unseal with an empty password */
	seal(0, &blob, &len);
	REFUSED(unseal(1u << 7, blob, len, &err), err,
		"the sealed key carries no PCR policy, but this device requires PCRs 7 ([tpm] pcrs in system.conf)");
	REFUSED(unseal(0x95, blob, len, &err), err, "carries no PCR policy, but this device requires PCRs 0,2,4,7");
	ck_assert_int_eq(unseal(0, blob, len, &err), 0); /* a device that requires none */
	free(blob);
	/* bound to other PCRs than the device's */
	seal(1u << 7, &blob, &len);
	REFUSED(unseal(0x81, blob, len, &err), err, "the sealed key is bound to PCRs 7, but this device requires PCRs 0,7");
	REFUSED(unseal(0, blob, len, &err), err, "the sealed key is bound to PCRs 7, but this device requires none");
	ck_assert_msg(unseal(1u << 7, blob, len, &err) == 0, "%s", slotsync_error_message(&err));
	/* the PCR moved: the TPM itself refuses */
	extend(7, 0x42);
	REFUSED(unseal(1u << 7, blob, len, &err), err, "PCRs 7 no longer hold the values they held at sealing");
	free(blob);
}
END_TEST

/* A blob whose header claims the device's policy, but whose object the TPM
 * opens with a password: the session built from the device's policy does not
 * satisfy it, so the header cannot talk its way in. */
START_TEST(test_header_claim_not_trusted)
{
	struct slotsync_error err = { 0 };
	uint8_t *blob;
	size_t len;

	seal(0, &blob, &len);
	blob[7] = 1;                   /* policy kind: PCR */
	blob[8] = 0x80;                /* mask: PCR 7 */
	ck_assert_int_eq(unseal(1u << 7, blob, len, &err), -EACCES);
	ck_assert_ptr_null(strstr(slotsync_error_message(&err), "bound to"));
	free(blob);
}
END_TEST

START_TEST(test_seal_for_expected_value)
{
	struct slotsync_tpm_policy p = { .pcr_mask = 1u << 15 | 1u << 8, .expect_mask = 1u << 15 };
	struct slotsync_error err = { 0 };
	uint8_t v0[32], d[32], *blob;
	size_t len;

	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 15, v0, &err), 0);
	memset(d, 0x15, sizeof(d));
	slotsync_tpm_pcr_extended(v0, d, p.expect[15]);
	ck_assert_msg(slotsync_tpm_seal_policy(tcti, key, sizeof(key), &p, &blob, &len, &err) == 0, "%s",
		      slotsync_error_message(&err));
	/* PCR 15 does not hold the expected value yet */
	REFUSED(unseal(p.pcr_mask, blob, len, &err), err, "no longer hold the values");
	extend(15, 0x15);
	ck_assert_msg(unseal(p.pcr_mask, blob, len, &err) == 0, "%s", slotsync_error_message(&err));
	extend(15, 0x15);
	REFUSED(unseal(p.pcr_mask, blob, len, &err), err, "no longer hold the values");
	/* PCR 8, read at sealing, counts too */
	free(blob);
	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 15, v0, &err), 0);
	memcpy(p.expect[15], v0, 32);
	ck_assert_int_eq(slotsync_tpm_seal_policy(tcti, key, sizeof(key), &p, &blob, &len, &err), 0);
	ck_assert_msg(unseal(p.pcr_mask, blob, len, &err) == 0, "%s", slotsync_error_message(&err));
	extend(8, 0x08);
	REFUSED(unseal(p.pcr_mask, blob, len, &err), err, "no longer hold the values");
	free(blob);
	/* expected values only for PCRs the policy selects */
	p.pcr_mask = 1u << 8;
	ck_assert_int_eq(slotsync_tpm_seal_policy(tcti, key, sizeof(key), &p, &blob, &len, &err), -EINVAL);
}
END_TEST

/* PCR 16 as tpm2_pcrread shows it */
static void tpm2_pcrread(unsigned pcr, uint8_t v[32])
{
	char cmd[300], line[256];
	FILE *f;
	int found = 0;

	snprintf(cmd, sizeof(cmd), "tpm2_pcrread -T '%s' sha256:%u 2>&1", tcti, pcr);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char *x = strstr(line, ": 0x");
		if (!x)
			continue;
		for (int i = 0; i < 32; i++)
			ck_assert_int_eq(sscanf(x + 4 + 2 * i, "%2hhx", &v[i]), 1);
		found = 1;
	}
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_msg(found, "tpm2_pcrread printed no PCR %u", pcr);
}

START_TEST(test_pcr_read_extend_agree_with_tpm2_tools)
{
	struct slotsync_error err = { 0 };
	uint8_t ours[32], theirs[32], before[32], d[32], after[32];

	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 16, before, &err), 0);
	tpm2_pcrread(16, theirs);
	ck_assert_mem_eq(before, theirs, 32);
	for (int i = 0; i < 32; i++)
		d[i] = (uint8_t)i;
	ck_assert_int_eq(slotsync_tpm_pcr_extend(tcti, 16, d, &err), 0);
	slotsync_tpm_pcr_extended(before, d, after);
	ck_assert_mem_ne(after, before, 32);
	tpm2_pcrread(16, theirs);
	ck_assert_mem_eq(theirs, after, 32);
	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 16, ours, &err), 0);
	ck_assert_mem_eq(ours, after, 32);
	/* bad input is named */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 24, ours, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(slotsync_error_message(&err), "0 to 23"));
	ck_assert_int_eq(slotsync_tpm_pcr_extend(tcti, 30, d, &err), -EINVAL);
}
END_TEST

#if SLOTSYNC_HAVE_LUKS2
static void volume(char path[PATH_MAX], const char *dir, const char *name)
{
	fx_path(path, dir, name);
	ck_assert_int_eq(test_write_file(path, "", 0), 0);
	ck_assert_int_eq(truncate(path, 40 << 20), 0);
}

START_TEST(test_luks_open_uses_device_policy)
{
	struct slotsync_luks_tpm none = { .tcti = tcti }, dev = { .tcti = tcti, .pcr_mask = 1u << 9 };
	struct slotsync_luks_tpm next = { .tcti = tcti, .pcr_mask = 1u << 9 | 1u << 14, .expect_mask = 1u << 14 };
	struct slotsync_error err = { 0 };
	char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], uuid[SLOTSYNC_LUKS_UUID_BYTES];
	uint8_t v0[32], d[32];
	char *dir = test_mkdtemp();

	volume(a, dir, "attacker.img");
	ck_assert_msg(slotsync_luks_format(a, &none, NULL, uuid, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_int_eq(slotsync_luks_open(a, &dev, NULL, NULL, uuid, &err), -EACCES);
	/* (each call below that fails is the first to set err) */
	ck_assert_msg(strstr(slotsync_error_message(&err), "attacker.img: the sealed key carries no PCR policy, but this "
							   "device requires PCRs 9"),
		      "%s", slotsync_error_message(&err));
	volume(b, dir, "genuine.img");
	ck_assert_msg(slotsync_luks_format(b, &dev, NULL, uuid, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_msg(slotsync_luks_open(b, &dev, NULL, uuid, NULL, &err) == 0, "%s", slotsync_error_message(&err));
	/* a format with expect seals for the state to come */
	ck_assert_int_eq(slotsync_tpm_pcr_read(tcti, 14, v0, &err), 0);
	memset(d, 0x14, sizeof(d));
	slotsync_tpm_pcr_extended(v0, d, next.expect[14]);
	volume(c, dir, "next.img");
	ck_assert_msg(slotsync_luks_format(c, &next, NULL, uuid, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_int_eq(slotsync_luks_open(c, &next, NULL, NULL, NULL, &err), -EACCES);
	extend(14, 0x14);
	ck_assert_msg(slotsync_luks_open(c, &next, NULL, NULL, NULL, &err) == 0, "%s", slotsync_error_message(&err));
	test_rmdir(dir);
}
END_TEST
#endif

static Suite *tpm_suite(void)
{
	Suite *s = suite_create("tpm");
	TCase *tc = tcase_create("tpm");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_device_policy_decides);
	tcase_add_test(tc, test_header_claim_not_trusted);
	tcase_add_test(tc, test_seal_for_expected_value);
	tcase_add_test(tc, test_pcr_read_extend_agree_with_tpm2_tools);
#if SLOTSYNC_HAVE_LUKS2
	tcase_add_test(tc, test_luks_open_uses_device_policy);
#endif
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int r;

	if (swtpm_start() < 0) {
		swtpm_stop();
		test_rmdir(tpm_dir);
		return EXIT_FAILURE;
	}
	r = test_run_suite(tpm_suite());
	swtpm_stop();
	test_rmdir(tpm_dir); /* the TPM's state, and the name's memory */
	return r;
}
