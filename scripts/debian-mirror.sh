#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Prints the Debian mirror this machine's apt already uses, for debootstrap:
#   debian-mirror.sh [SUITE]      SUITE: bookworm (default) or bookworm-security
# It reads the deb822 files in /etc/apt/sources.list.d/ and the one-line
# /etc/apt/sources.list, and prints the URI of the first "deb" entry for that
# suite.  Fails, saying so, when there is none: give the mirror in a variable
# then (MIRROR, SECURITY_MIRROR or SLOTSYNC_MIRROR, as the calling script says).
set -euo pipefail
suite=${1:-bookworm}
uri=$(
	{
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] || continue
			# one stanza per blank-line-separated block
			awk -v want="$suite" '
				BEGIN { RS = ""; FS = "\n" }
				{
					types = ""; uris = ""; suites = ""
					for (i = 1; i <= NF; i++) {
						if ($i ~ /^Types:/) types = substr($i, 7)
						else if ($i ~ /^URIs:/) uris = substr($i, 6)
						else if ($i ~ /^Suites:/) suites = substr($i, 8)
					}
					if (types !~ /(^| )deb( |$)/) next
					n = split(suites, s, " ")
					for (j = 1; j <= n; j++)
						if (s[j] == want) { split(uris, u, " "); print u[1]; exit }
				}' "$f"
		done
		for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
			[ -f "$f" ] || continue
			sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$suite" '$1 == "deb" && $3 == want { print $2; exit }'
		done
	} | head -n1
)
if [ -z "$uri" ]; then
	echo "debian-mirror.sh: apt has no \"deb\" entry for suite $suite; give the mirror in a variable" >&2
	exit 1
fi
echo "${uri%/}"
