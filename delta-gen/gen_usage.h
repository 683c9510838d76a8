/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync-gen's help texts: the program's and each verb's usage, printed to f
 * (gen_usage.c).  The verbs that stand alone (prune, publish, verity) keep
 * theirs beside their parsers. */
#ifndef SLOTSYNC_GEN_USAGE_H
#define SLOTSYNC_GEN_USAGE_H

#include <stdio.h>

void gen_usage(FILE *f);
void gen_make_usage(FILE *f);
void gen_extract_usage(FILE *f);
void gen_check_usage(FILE *f);
void gen_bundle_usage(FILE *f);
void gen_channel_usage(FILE *f);
void gen_delta_usage(FILE *f);

#endif
