#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The build files need nothing newer than CMake 3.22 (Yocto kirkstone's):
# the minimum they declare, and none of the commands, arguments, generator
# expressions or variables that later releases added (each with the release
# that brought it).  A real CMake 3.22 checks the same more strictly
# (scripts/build-configs.sh with SLOTSYNC_CMAKE_322; docs/building.md).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'CMakeLists.txt' '*/CMakeLists.txt' '*.cmake')
bad=0
while read -r line; do
	[ -z "$line" ] && continue
	pattern=${line%|*} since=${line##*|}
	if hits=$(grep -nE -- "$pattern" $files); then
		echo "needs CMake $since ($pattern):"
		echo "$hits"
		bad=1
	fi
done <<'LIST'
^\s*(block|endblock)\s*\(|3.25
return\s*\(\s*PROPAGATE|3.25
cmake_language\s*\(\s*GET_MESSAGE_LOG_LEVEL|3.25
SOURCE_FROM_(CONTENT|FILE|VAR)|3.25
\$<LINK_LIBRARY:|3.24
\$<LINK_GROUP:|3.24
\$<PATH:|3.24
\$<PATH_EQUAL:|3.24
CMAKE_COMPILE_WARNING_AS_ERROR|3.24
COMPILE_WARNING_AS_ERROR|3.24
FIND_PACKAGE_ARGS|3.24
OVERRIDE_FIND_PACKAGE|3.24
find_package\s*\([^)]*\bGLOBAL\b|3.24
DOWNLOAD_EXTRACT_TIMESTAMP|3.24
\$<LIST:|3.27
\$<COMPILE_ONLY:|3.27
DEPENDS_EXPLICIT_ONLY|3.27
\$<TARGET_RUNTIME_DLL_DIRS|3.27
\$<TARGET_INTERMEDIATE_DIR|4.2
cmake_instrumentation|4.0
FILE_SET|3.23
\$<TARGET_PROPERTY:[^>]*HEADER_SET|3.23
CMAKE_VERIFY_INTERFACE_HEADER_SETS|3.24
target_sources\s*\([^)]*FILE_SET|3.23
LIST
declared=$(grep -hoE 'cmake_minimum_required\s*\(\s*VERSION\s+[0-9.]+' CMakeLists.txt | grep -oE '[0-9.]+$')
if [ "$declared" != "3.22" ]; then
	echo "CMakeLists.txt declares cmake_minimum_required(VERSION $declared), not 3.22"
	bad=1
fi
[ $bad -eq 0 ] && echo "cmake-compat: the build files need nothing newer than CMake 3.22"

exit $bad
