/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fixtures shared by the unit tests: see fixtures.h.  Every failure here is a
 * broken test setup, reported through Check's assertions. */
#include "fixtures.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "slotsync/store.h"

void fx_path(char out[PATH_MAX], const char *dir, const char *name)
{
	ck_assert_int_lt(snprintf(out, PATH_MAX, "%s/%s", dir, name), PATH_MAX);
}

uint8_t *fx_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
			*len = (size_t)n;
		} else {
			free(buf);
			buf = NULL;
		}
	}
	fclose(f);
	return buf;
}

int fx_file_equals(const char *path, const uint8_t *data, size_t len)
{
	size_t n;
	uint8_t *buf = fx_read_file(path, &n);
	int same = buf && n >= len && memcmp(buf, data, len) == 0;

	free(buf);
	return same;
}

static void image_index(struct fx_image *im, const char *store)
{
	struct gen_make_options opt = { 0 };
	struct gen_make_stats st;
	struct slotsync_error err = { 0 };

	ck_assert_int_eq(test_write_file(im->img, im->data, im->len), 0);
	opt.store = store;
	opt.params = slotsync_chunker_params_default();
	opt.digest = SLOTSYNC_DIGEST_SHA256;
	opt.level = 3;
	opt.threads = 2;
	ck_assert_msg(gen_make(im->img, im->idx, &opt, &st, &err) == 0, "%s", slotsync_error_message(&err));
	ck_assert_msg(slotsync_index_read_file(im->idx, &im->index, &err) == 0, "%s", slotsync_error_message(&err));
}

void fx_image_make_from(struct fx_image *im, const char *dir, const char *name, const uint8_t *data, size_t len,
			const char *store)
{
	char base[PATH_MAX];

	memset(im, 0, sizeof(*im));
	snprintf(base, sizeof(base), "%s.img", name);
	fx_path(im->img, dir, base);
	snprintf(base, sizeof(base), "%s.caibx", name);
	fx_path(im->idx, dir, base);
	im->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(im->data);
	memcpy(im->data, data, len);
	im->len = len;
	image_index(im, store);
}

void fx_image_make(struct fx_image *im, const char *dir, const char *name, size_t len, uint64_t seed,
		   const char *store)
{
	uint8_t *data = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(data);
	test_fill_random(data, len, seed);
	fx_image_make_from(im, dir, name, data, len, store);
	free(data);
}

void fx_image_free(struct fx_image *im)
{
	slotsync_index_free(im->index);
	free(im->data);
	memset(im, 0, sizeof(*im));
}

void fx_chunk_path(char out[PATH_MAX], const char *store, const struct slotsync_index *idx, size_t i)
{
	char rel[SLOTSYNC_CHUNK_RELPATH_BYTES];

	slotsync_store_chunk_relpath(idx->chunks[i].id, rel);
	fx_path(out, store, rel);
}

/* ---- a throwaway CA -------------------------------------------------------- */

static void sh(const char *cmd)
{
	int rc = system(cmd);

	ck_assert_msg(rc == 0, "fixture command failed (%d): %s", rc, cmd);
}

void fx_ca_make(struct fx_ca *ca, const char *dir)
{
	char cmd[8 * PATH_MAX];

	fx_path(ca->ca, dir, "ca.pem");
	fx_path(ca->ca_key, dir, "ca.key");
	fx_path(ca->signer, dir, "signer.pem");
	fx_path(ca->signer_key, dir, "signer.key");
	fx_path(ca->other_ca, dir, "other-ca.pem");
	/* the same profile as a fleet's: a CA, and a signer allowed to sign code only */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && "
		 "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\nextendedKeyUsage=codeSigning\\n' >sign.ext && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=fleet-ca "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout ca.key -out ca.pem 2>/dev/null && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=release-signer -keyout signer.key -out signer.csr 2>/dev/null && "
		 "openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile sign.ext -out signer.pem 2>/dev/null && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=other-ca "
		 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -keyout other-ca.key -out other-ca.pem 2>/dev/null",
		 dir);
	sh(cmd);
}

/* ---- a tiny HTTP/1.1 server ------------------------------------------------ */

static void http_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* the client went away: its problem */
		p += n;
		len -= (size_t)n;
	}
}

/* An answer sent at drip_bps bytes per second (0: at once). */
static void http_send_paced(int fd, const void *buf, size_t len, int drip_bps)
{
	const char *p = buf;
	struct timespec gap = { 0, drip_bps > 0 ? 1000000000L / drip_bps : 0 };

	if (drip_bps <= 0) {
		http_send(fd, buf, len);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (send(fd, p + i, 1, MSG_NOSIGNAL) != 1)
			return; /* the client cut us off */
		nanosleep(&gap, NULL);
	}
}

/* status with a body that never ends, until the client goes away. */
static void http_answer_endless(int fd, int status)
{
	char head[128], junk[16384];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n",
			 status);

	memset(junk, 'x', sizeof(junk));
	if (send(fd, head, (size_t)n, MSG_NOSIGNAL) != n)
		return;
	while (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		;
}

static void http_answer(int fd, int status, const uint8_t *body, size_t len, size_t from, int drip_bps)
{
	char head[256];
	int n;

	if (status == 206)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
			     "Connection: close\r\n\r\n",
			     len - from, from, len - 1, len);
	else
		n = snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
			     status == 200 ? len : 0);
	http_send(fd, head, (size_t)n);
	if (status == 200 || status == 206)
		http_send_paced(fd, body + from, len - from, drip_bps);
}

static void http_serve_one(int fd, const char *root, const struct fx_http_rule *rules, int *left, size_t n_rules,
			   const char *log)
{
	char req[8192] = "", path[1024], file[PATH_MAX + 1100];
	size_t got = 0, len = 0, from = 0;
	uint8_t *body = NULL;
	const char *range;
	int status = 200, endless = 0, drip_bps = 0;
	FILE *lf;

	while (got < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		ssize_t n = recv(fd, req + got, sizeof(req) - 1 - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
	}
	if (sscanf(req, "GET /%1023s HTTP/1.1", path) != 1 || strstr(path, "..")) {
		http_answer(fd, 400, NULL, 0, 0, 0);
		return;
	}
	range = strcasestr(req, "\r\nRange: bytes=");
	for (size_t i = 0; i < n_rules; i++) {
		if ((rules[i].path && strcmp(rules[i].path, path)) || left[i] == 0)
			continue;
		left[i]--;
		endless = (rules[i].status & FX_HTTP_ENDLESS) != 0;
		drip_bps = rules[i].status & FX_HTTP_DRIP ? 2 : 0;
		if (rules[i].status & 0xffff) {
			status = rules[i].status & 0xffff;
		} else if (rules[i].body_file) {
			body = fx_read_file(rules[i].body_file, &len);
			status = body ? 200 : 500;
		}
		break;
	}
	if (status == 200 && !body) {
		snprintf(file, sizeof(file), "%s/%s", root, path);
		body = fx_read_file(file, &len);
		if (!body)
			status = 404;
	}
	if (status == 200 && range && sscanf(range, "\r\nRange: bytes=%zu-", &from) == 1 && from > 0 && from < len)
		status = 206;
	else
		from = 0;
	/* logged before the answer: a client that has its answer finds it logged */
	lf = fopen(log, "a");
	if (lf) {
		fprintf(lf, "%s %d\n", path, status);
		fclose(lf);
	}
	if (endless)
		http_answer_endless(fd, status);
	else
		http_answer(fd, status, body, len, from, drip_bps);
	free(body);
}

void fx_http_start(struct fx_http *h, const char *root, const struct fx_http_rule *rules, size_t n_rules,
		   const char *log)
{
	struct sockaddr_in a = { 0 };
	socklen_t alen = sizeof(a);
	int one = 1, s;

	ck_assert_uint_le(n_rules, FX_HTTP_RULES_MAX);
	memset(h, 0, sizeof(*h));
	snprintf(h->log, sizeof(h->log), "%s", log);
	ck_assert_int_eq(test_write_file(log, "", 0), 0);
	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s, 0);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s, 64), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	h->port = ntohs(a.sin_port);
	snprintf(h->url, sizeof(h->url), "http://127.0.0.1:%d", h->port);
	fflush(NULL); /* nothing buffered is written twice */
	h->pid = fork();
	ck_assert_int_ge(h->pid, 0);
	if (h->pid == 0) {
		int left[FX_HTTP_RULES_MAX];
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
		for (size_t i = 0; i < n_rules; i++)
			left[i] = rules[i].times;
		for (;;) {
			int c = accept(s, NULL, NULL);
			if (c < 0) {
				if (errno == EINTR)
					continue;
				_exit(1);
			}
			http_serve_one(c, root, rules, left, n_rules, log);
			shutdown(c, SHUT_WR);
			close(c);
		}
	}
	close(s); /* the listening socket stays open in the child: connects queue until it accepts */
}

void fx_http_stop(struct fx_http *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		h->pid = 0;
	}
}

int fx_http_count(const struct fx_http *h, const char *path, int status)
{
	char line[1200], p[1100];
	int st, n = 0;
	FILE *f = fopen(h->log, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%1099s %d", p, &st) == 2 && (!path || !strcmp(p, path)) && (!status || st == status))
			n++;
	fclose(f);
	return n;
}

/* ---- a device made of files ------------------------------------------------ */

void fx_device_boot_into(const struct fx_device *d, int slot)
{
	char line[64];

	snprintf(line, sizeof(line), "quiet slotsync.slot=%c\n", 'A' + slot);
	ck_assert_int_eq(test_write_file(d->cmdline, line, strlen(line)), 0);
}

void fx_device_make(struct fx_device *d, const char *dir, const char *compatible, const char *slot_a_image,
		    size_t slot_bytes, const char *keyring, const char *store_url, const char *extra)
{
	char conf[8 * PATH_MAX];
	size_t len = 0;
	uint8_t *a = slot_a_image ? fx_read_file(slot_a_image, &len) : NULL;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	fx_path(d->conf, dir, "system.conf");
	fx_path(d->slot_a, dir, "slot-a.img");
	fx_path(d->slot_b, dir, "slot-b.img");
	fx_path(d->state, dir, "state");
	fx_path(d->boot_env, dir, "boot.state");
	fx_path(d->cmdline, dir, "cmdline");
	ck_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
	ck_assert_int_eq(mkdir(d->state, 0755), 0);
	ck_assert_int_eq(test_write_file(d->slot_a, a ? a : (const uint8_t *)"", len), 0);
	free(a);
	ck_assert_int_eq(truncate(d->slot_a, (off_t)(len > slot_bytes ? len : slot_bytes)), 0);
	ck_assert_int_eq(test_write_file(d->slot_b, "", 0), 0);
	ck_assert_int_eq(truncate(d->slot_b, (off_t)slot_bytes), 0);
	fx_device_boot_into(d, 0);
	snprintf(conf, sizeof(conf),
		 "[system]\ncompatible = %s\nstate-dir = %s\nkeyring = %s\n"
		 "[boot]\nbackend = file\nenv = %s\ncmdline = %s\n"
		 "[update]\nstore = %s\nallow-plain-http = yes\nreboot-command = never\n%s"
		 "[slot.A]\ndevice = %s\n[slot.B]\ndevice = %s\n",
		 compatible, d->state, keyring, d->boot_env, d->cmdline, store_url, extra ? extra : "", d->slot_a,
		 d->slot_b);
	ck_assert_int_eq(test_write_file(d->conf, conf, strlen(conf)), 0);
}

/* ---- a signed bundle ------------------------------------------------------- */

void fx_bundle_make(const struct fx_ca *ca, const char *image, const char *store, const char *version,
		    const char *compatible, const char *out)
{
	struct gen_bundle_options o = { 0 };
	struct slotsync_error err = { 0 };

	o.store = store;
	o.image = image;
	o.version = version;
	o.compatible = compatible;
	o.created = time(NULL);
	o.signer.cert = ca->signer;
	o.signer.key = ca->signer_key;
	o.make.store = store; /* the chunks go where make puts them */
	o.make.params = slotsync_chunker_params_default();
	o.make.digest = SLOTSYNC_DIGEST_SHA256;
	o.make.level = 3;
	o.make.threads = 2;
	ck_assert_msg(gen_bundle(&o, out, &err) == 0, "%s", slotsync_error_message(&err));
}
