/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* slotsync — the mark on every function a shared library exports.  The
 * libraries are built with -fvisibility=hidden: what a public header does not
 * mark stays private. */
#ifndef SLOTSYNC_EXPORT_H
#define SLOTSYNC_EXPORT_H

#define SLOTSYNC_EXPORT __attribute__((visibility("default")))

#endif
