#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The source tree keeps its rules: every file carries its license line, no
# source includes another folder's header by a relative path (a floor's
# private headers reach only the targets that link it), no two C files share
# a base name, and the files of C code stay of one concern (none past 900 lines).
source "$(dirname "$0")/lib.sh"
cd "$SLOTSYNC_SOURCE_DIR"
if [ ! -d .git ] && ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "not a git checkout: nothing to check"; finish; exit
fi
files=$(git ls-files)
check "LICENSE is the LGPL 2.1" grep -q "GNU LESSER GENERAL PUBLIC LICENSE" LICENSE
missing=$(for f in $files; do
	case "$f" in LICENSE|.gitignore|*.md) continue ;; esac
	grep -q "SPDX-License-Identifier: LGPL-2.1-or-later" "$f" || echo "$f"
done)
check "every source, script and data file has its SPDX line${missing:+ (missing: $missing)}" test -z "$missing"
rel=$(git grep -nE '#include "\.\./' -- '*.c' '*.h' || true)
check "no #include of another folder by relative path${rel:+: $rel}" test -z "$rel"
dups=$(git ls-files '*.c' | xargs -n1 basename | sort | uniq -d)
check "no two C files share a base name${dups:+ ($dups)}" test -z "$dups"
long=$(git ls-files 'common/*.c' 'engine/*.c' 'delta-gen/*.c' 'bootctl/*.c' | xargs wc -l | awk '$2 != "total" && $1 > 900 { print $2 " (" $1 " lines)" }')
check "no C file of the product past 900 lines${long:+: $long}" test -z "$long"
finish
