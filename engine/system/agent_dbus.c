/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The agent's ties to systemd: the installer interface on D-Bus of
 * docs/dbus.md (org.slotsync.Installer1), and sd_notify (readiness, status,
 * the watchdog).  Install and Poll start a job on the agent's worker
 * (agent.c), Status answers from the state folder; the properties read the
 * agent's state (Progress under its lock: the worker writes it) and say when
 * they change; Completed tells of each job's end.  All of it runs on the
 * agent's main thread, from its loop, which polls the bus connection's fd.
 *
 * A build without libsystemd (-DSLOTSYNC_SYSTEMD=OFF) has no D-Bus interface
 * and no notifications: the agent updates the device all the same. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "slotsync/boot.h"
#include "slotsync/features.h"
#include "slotsync/install.h"
#include "clock.h"

#if SLOTSYNC_HAVE_SYSTEMD
#include <json-c/json.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#define DBUS_NAME "org.slotsync.Installer1"
#define DBUS_PATH "/org/slotsync/Installer1"
#define DBUS_IFACE "org.slotsync.Installer1"

/* Install and Poll change the device, so only root may start them: the
 * shipped bus policy says so on the system bus, but a private bus (--dbus
 * ADDRESS) has no such policy, so the agent checks the caller itself.  The
 * uid comes from the bus (the peer credentials of the caller's connection),
 * never from /proc.  0 if the caller is root; else e is set. */
static int caller_is_root(sd_bus_message *m, sd_bus_error *e)
{
	sd_bus_creds *creds = NULL;
	uid_t uid = 1;
	int r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);

	if (r >= 0) {
		r = sd_bus_creds_get_euid(creds, &uid);
		if (r < 0)
			r = sd_bus_creds_get_uid(creds, &uid);
	}
	sd_bus_creds_unref(creds);
	if (r < 0)
		return sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED,
					 "%s: cannot tell who the caller is, so it is refused", sd_bus_message_get_member(m));
	if (uid != 0)
		return sd_bus_error_setf(e, SD_BUS_ERROR_ACCESS_DENIED, "%s is for root only (the caller is uid %u)",
					 sd_bus_message_get_member(m), (unsigned)uid);
	return 0;
}

static int m_install(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	const char *source;
	int r = sd_bus_message_read(m, "s", &source);

	if (r < 0)
		return r;
	r = caller_is_root(m, e);
	if (r < 0)
		return r;
	if (a->busy)
		return sd_bus_error_setf(e, "org.slotsync.Error.Busy", "an install or poll is running (%s)", a->operation);
	if (!*source)
		return sd_bus_error_set(e, SD_BUS_ERROR_INVALID_ARGS, "no bundle given");
	r = agent_start_job(a, AGENT_JOB_INSTALL, source);
	if (r < 0)
		return sd_bus_error_set_errno(e, r);
	return sd_bus_reply_method_return(m, "");
}

static int m_status(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_error err = { 0 };
	char *json = NULL;
	int r = slotsync_install_status_json(a->cfg, &json, &err);

	if (r < 0)
		return sd_bus_error_setf(e, "org.slotsync.Error.Failed", "%s", slotsync_error_message(&err));
	r = sd_bus_reply_method_return(m, "s", json);
	free(json);
	return r;
}

static int m_poll(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	int r = caller_is_root(m, e);

	if (r < 0)
		return r;
	if (a->busy)
		return sd_bus_error_setf(e, "org.slotsync.Error.Busy", "an install or poll is running (%s)", a->operation);
	r = agent_start_job(a, AGENT_JOB_POLL, NULL);
	if (r < 0)
		return sd_bus_error_set_errno(e, r);
	return sd_bus_reply_method_return(m, "");
}

/* Mark(s state, s slot): state good, bad or active; slot booted, other, A or B. */
static int m_mark(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_error err = { 0 };
	const char *state, *slot;
	int r = sd_bus_message_read(m, "ss", &state, &slot);

	if (r < 0)
		return r;
	if ((r = caller_is_root(m, e)) < 0)
		return r;
	r = slotsync_install_mark_slot(a->cfg, state, slot, &err);
	if (r == -EINVAL)
		return sd_bus_error_setf(e, SD_BUS_ERROR_INVALID_ARGS, "%s", slotsync_error_message(&err));
	if (r < 0)
		return sd_bus_error_setf(e, "org.slotsync.Error.Failed", "%s", slotsync_error_message(&err));
	return sd_bus_reply_method_return(m, "");
}

/* Info(s bundle) -> s: the bundle checked with the keyring, its manifest as JSON. */
static int m_info(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_error err = { 0 };
	const char *bundle;
	char *json = NULL;
	int r = sd_bus_message_read(m, "s", &bundle);

	if (r < 0)
		return r;
	if (slotsync_install_bundle_info_json(a->cfg, bundle, &json, &err) < 0)
		return sd_bus_error_setf(e, "org.slotsync.Error.Failed", "%s", slotsync_error_message(&err));
	r = sd_bus_reply_method_return(m, "s", json);
	free(json);
	return r;
}

/* GetSlotStatus() -> s: the "slots" member of Status, as JSON. */
static int m_slot_status(sd_bus_message *m, void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_error err = { 0 };
	struct json_object *o, *slots;
	char *json = NULL;
	int r = slotsync_install_status_json(a->cfg, &json, &err);

	if (r < 0)
		return sd_bus_error_setf(e, "org.slotsync.Error.Failed", "%s", slotsync_error_message(&err));
	o = json_tokener_parse(json);
	free(json);
	if (!o || !json_object_object_get_ex(o, "slots", &slots)) {
		json_object_put(o);
		return sd_bus_error_set(e, "org.slotsync.Error.Failed", "the status has no slots");
	}
	r = sd_bus_reply_method_return(m, "s", json_object_to_json_string_ext(slots, JSON_C_TO_STRING_PRETTY |
										      JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return r;
}

static int p_compatible(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
			void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	return sd_bus_message_append(reply, "s", a->cfg->compatible);
}

static int p_operation(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
		       void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	return sd_bus_message_append(reply, "s", a->operation);
}

static int p_last_error(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
			void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	return sd_bus_message_append(reply, "s", a->last_error);
}

static int p_progress(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
		      void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_install_progress p;

	pthread_mutex_lock(&a->mu);
	p = a->prog;
	pthread_mutex_unlock(&a->mu);
	return sd_bus_message_append(reply, "(stttt)", slotsync_install_step_name(p.step), p.bytes_done, p.bytes_total,
				     p.bytes_fetched, p.bytes_from_seed);
}

static int p_booted(sd_bus *bus, const char *path, const char *iface, const char *prop, sd_bus_message *reply,
		    void *ud, sd_bus_error *e)
{
	struct agent *a = ud;
	struct slotsync_error err = { 0 };
	int b = slotsync_boot_booted(&a->cfg->boot, &err);
	return sd_bus_message_append(reply, "s", b == 0 ? "A" : b == 1 ? "B" : "");
}

static const sd_bus_vtable installer_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Install", "s", "", m_install, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Poll", "", "", m_poll, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Status", "", "s", m_status, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Mark", "ss", "", m_mark, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("Info", "s", "s", m_info, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("GetSlotStatus", "", "s", m_slot_status, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Compatible", "s", p_compatible, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Operation", "s", p_operation, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("LastError", "s", p_last_error, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("Progress", "(stttt)", p_progress, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
	SD_BUS_PROPERTY("BootedSlot", "s", p_booted, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_SIGNAL("Completed", "is", 0),
	SD_BUS_VTABLE_END,
};

void agent_dbus_emit(struct agent *a, const char *prop)
{
	if (a->bus)
		sd_bus_emit_properties_changed(a->bus, DBUS_PATH, DBUS_IFACE, prop, NULL);
}

int agent_dbus_open(struct agent *a, struct slotsync_error *err)
{
	int r;

	if (a->o->dbus == 1)
		r = sd_bus_open_system(&a->bus);
	else {
		r = sd_bus_new(&a->bus);
		if (r >= 0)
			r = sd_bus_set_address(a->bus, a->o->dbus_address);
		if (r >= 0)
			r = sd_bus_set_bus_client(a->bus, 1);
		if (r >= 0)
			r = sd_bus_start(a->bus);
	}
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot connect to D-Bus%s%s", a->o->dbus == 2 ? " at " : "",
						a->o->dbus == 2 ? a->o->dbus_address : "");
	r = sd_bus_add_object_vtable(a->bus, NULL, DBUS_PATH, DBUS_IFACE, installer_vtable, a);
	if (r >= 0)
		r = sd_bus_request_name(a->bus, DBUS_NAME, 0);
	if (r < 0)
		return slotsync_error_set_errno(err, r, "cannot offer %s on D-Bus", DBUS_NAME);
	return 0;
}

void agent_dbus_completed(struct agent *a, int rc, const char *msg)
{
	if (a->bus)
		sd_bus_emit_signal(a->bus, DBUS_PATH, DBUS_IFACE, "Completed", "is", rc < 0 ? -rc : 0, msg);
}

void agent_dbus_close(struct agent *a)
{
	if (a->bus)
		sd_bus_flush_close_unref(a->bus);
	a->bus = NULL;
}

int agent_dbus_poll_fd(struct agent *a, short *events, int *timeout_ms)
{
	uint64_t until = UINT64_MAX;
	int fd, ev;

	*timeout_ms = -1;
	if (!a->bus)
		return -1;
	fd = sd_bus_get_fd(a->bus);
	ev = sd_bus_get_events(a->bus);
	if (fd < 0 || ev < 0)
		return -1;
	*events = (short)ev;
	if (sd_bus_get_timeout(a->bus, &until) >= 0 && until != UINT64_MAX) {
		/* an absolute CLOCK_MONOTONIC time in µs, the agent's clock */
		uint64_t now_us = clock_now_ms() * 1000u;
		*timeout_ms = until <= now_us ? 0 : (int)((until - now_us + 999) / 1000);
	}
	return fd;
}

void agent_dbus_process(struct agent *a)
{
	int r;

	/* everything that is ready, then back to the loop */
	while (a->bus && (r = sd_bus_process(a->bus, NULL)) > 0)
		;
}

void agent_notify(const char *state)
{
	sd_notify(0, state);
}

uint64_t agent_watchdog_usec(void)
{
	uint64_t wd = 0;

	return sd_watchdog_enabled(0, &wd) > 0 ? wd : 0;
}

#else /* built without libsystemd */

int agent_dbus_open(struct agent *a, struct slotsync_error *err)
{
	return slotsync_error_set(err, -ENOTSUP,
				  "D-Bus is not in this build of slotsync (build it with -DSLOTSYNC_SYSTEMD=ON and "
				  "libsystemd)");
}

void agent_dbus_close(struct agent *a)
{
}

void agent_dbus_emit(struct agent *a, const char *prop)
{
}

void agent_dbus_completed(struct agent *a, int rc, const char *msg)
{
}

int agent_dbus_poll_fd(struct agent *a, short *events, int *timeout_ms)
{
	*timeout_ms = -1;
	return -1;
}

void agent_dbus_process(struct agent *a)
{
}

void agent_notify(const char *state)
{
}

uint64_t agent_watchdog_usec(void)
{
	return 0;
}
#endif
