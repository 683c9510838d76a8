/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The device program's commands beyond assemble (engine/cli_*.c). */
#ifndef SLOTSYNC_CLI_H
#define SLOTSYNC_CLI_H

int cli_verify(int argc, char **argv);
int cli_state(int argc, char **argv);
int cli_slot_format(int argc, char **argv);
int cli_unlock(int argc, char **argv);
int cli_migrate_data(int argc, char **argv);
int cli_install(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_mark(int argc, char **argv);
int cli_info(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_validate(int argc, char **argv);

#endif
