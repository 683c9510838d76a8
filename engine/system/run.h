/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running the programs an install or an agent calls on: hooks, health
 * checks, the reboot command.  Private to engine/system/. */
#ifndef SLOTSYNC_SYSTEM_RUN_H
#define SLOTSYNC_SYSTEM_RUN_H

#include "slotsync/error.h"

/* Runs argv (argv[0] a path, or with shell set, argv[0] a command line for
 * /bin/sh -c) with the NULL-terminated "NAME=value" strings of env added to
 * this process's environment, stdin from /dev/null.  timeout_s > 0: the
 * program (and its process group) is sent SIGTERM after that many seconds and
 * SIGKILL 5 s later.  0 if it exited 0; otherwise -ECHILD (or -ETIMEDOUT) and
 * err says how it ended, naming what. */
int run_program(const char *what, const char *const *argv, int shell, const char *const *env, unsigned timeout_s,
		struct slotsync_error *err);

#endif
