/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* See ossl.h. */
#include "ossl.h"

#include <openssl/err.h>

const char *ossl_error_text(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return "no further detail";
	ERR_error_string_n(e, buf, cap);
	return buf;
}
