# Shared helpers for the integration tests (sourced).  Each test gets a scratch
# folder that is removed on exit, and the paths of the programs under test.
set -euo pipefail

: "${SLOTSYNC_GEN:?set by ctest}"
: "${SLOTSYNC_SOURCE_DIR:?set by ctest}"
T=$(mktemp -d "${TMPDIR:-/tmp}/slotsync-it.XXXXXX")
CLEANUP=()
cleanup() {
	local rc=$?
	for c in "${CLEANUP[@]}"; do eval "$c" || true; done
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
not_ok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# expect_fail "description" "needle in stderr" command...: must exit non-zero
# and say what was wrong.
expect_fail() {
	local what=$1 needle=$2; shift 2
	local rc=0
	"$@" >"$T/out.txt" 2>"$T/err.txt" || rc=$?
	if [ $rc -ne 0 ] && grep -qF -- "$needle" "$T/err.txt"; then
		ok "$what (exit $rc: $(head -c 200 "$T/err.txt" | tr '\n' ' '))"
	else
		not_ok "$what: exit $rc, stderr: $(cat "$T/err.txt")"
	fi
}
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}

# Sample images, built once per test run into a shared cache folder.
sample_images() {
	local dir=${SLOTSYNC_SAMPLE_DIR:-${TMPDIR:-/tmp}/slotsync-samples}
	if [ ! -s "$dir/sample-v2.sqfs" ] || [ ! -s "$dir/sample-v1.sqfs" ]; then
		mkdir -p "$dir"
		(
			flock 9
			[ -s "$dir/sample-v2.sqfs" ] || bash "$SLOTSYNC_SOURCE_DIR/images/build-sample.sh" "$dir" >/dev/null
		) 9>"$dir.lock"
	fi
	V1=$dir/sample-v1.sqfs
	V2=$dir/sample-v2.sqfs
}

# Deterministic incompressible data: N MiB from seed S.
random_file() { # random_file PATH MIB SEED
	head -c "$(($2 * 1048576))" < <(openssl enc -aes-128-ctr -nosalt -pass "pass:$3" -pbkdf2 -in /dev/zero 2>/dev/null) >"$1"
}
