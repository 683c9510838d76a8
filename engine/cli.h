/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device program's commands beyond assemble (engine/cli_*.c). */
#ifndef SLOTSYNC_CLI_H
#define SLOTSYNC_CLI_H

/* The exit codes (include/slotsync/install.h: SLOTSYNC_EXIT_*), at the end of
 * every usage. */
#define CLI_EXIT_CODES                                                                                  \
	"\nExit status: 0 done; 1 failed for good (running the same command again fails the same way:\n"   \
	"  do not retry this bundle); 2 usage error; 3 interrupted and resumable (run the same command\n"   \
	"  again to resume it); 4 busy (another install runs, or one of another bundle is unfinished).\n"

/* The exit code for a failed run whose error is r: 3 when running it again may
 * finish it (the network, a cut), else 1. */
int cli_exit_code(int r);

int cli_verify(int argc, char **argv);
int cli_state(int argc, char **argv);
int cli_slot_format(int argc, char **argv);
int cli_unlock(int argc, char **argv);
int cli_open_root(int argc, char **argv);
int cli_migrate_data(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_mark(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_validate(int argc, char **argv);

#endif
