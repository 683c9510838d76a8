/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What OpenSSL says went wrong, for an error message.  Private to slotsync. */
#ifndef SLOTSYNC_OSSL_H
#define SLOTSYNC_OSSL_H

#include <stddef.h>

/* The most recent error on this thread's OpenSSL error queue as text in buf,
 * or "no further detail" when the queue is empty.  Returns the text.
 */
const char *ossl_error_text(char *buf, size_t cap);

#endif
