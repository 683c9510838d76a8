# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the bench/*.sh scripts (sourced): the programs, the realistic image
# pair (built by images/build-realistic.sh when missing) and a timer.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GEN=${GEN:-$ROOT/build/slotsync-gen}
BENCH_CHUNKER=${BENCH_CHUNKER:-$ROOT/build/bench/bench_chunker}
IMAGES=${IMAGES:-/var/cache/slotsync/images}
[ -x "$GEN" ] || { echo "build first: bash scripts/build.sh" >&2; exit 1; }
realistic_images() {
	if [ ! -s "$IMAGES/debian-v2.raw.sqfs" ] || [ ! -s "$IMAGES/debian-v2.sqfs" ]; then
		bash "$ROOT/images/build-realistic.sh" "$IMAGES" >&2
	fi
}
# wall seconds of a command, its output discarded
seconds_of() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l | xargs printf '%.3f'
}
machine_facts() {
	echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -r)"
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
}
