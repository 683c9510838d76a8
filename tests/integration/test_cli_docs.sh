#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# README.md, the man pages and each command's --help name the same options:
# for every verb of slotsync, slotsync-gen and slotsync-bootctl, each long option its --help
# offers is named by the README's summary of that verb and by the verb's
# section of the program's man page source (docs/man/PROGRAM.1.scd, "## VERB"),
# and every option the README names for a verb is one its --help offers.
source "$(dirname "$0")/lib.sh"
export SLOTSYNC_BIN SLOTSYNC_BOOTCTL
rc=0
python3 - "$SLOTSYNC_SOURCE_DIR" <<'PY' || rc=1
import os, re, subprocess, sys

src = sys.argv[1]
progs = {
    "slotsync": (os.environ["SLOTSYNC_BIN"], ["install", "status", "mark-good", "mark-bad", "mark-active", "agent",
                 "validate", "assemble", "index-info", "info", "verify", "state", "slot-format", "unlock",
                 "migrate-data"]),
    "slotsync-gen": (os.environ["SLOTSYNC_GEN"], ["make", "extract", "check", "bundle", "delta", "channel", "prune",
                 "verity", "publish"]),
    "slotsync-bootctl": (os.environ["SLOTSYNC_BOOTCTL"], ["status", "switch", "mark-good", "mark-bad",
                         "simulate-boot", "init"]),
}
OPT = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
GENERIC = {"--help", "--verbose", "--quiet"}
readme = open(os.path.join(src, "README.md")).read()

def help_options(path, verb):
    out = subprocess.run([path, verb, "--help"], capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.startswith("Usage:"):
        return None
    opts = set(OPT.findall(out.stdout)) - GENERIC
    # options a program takes before its verb (slotsync-bootctl) belong to the
    # program's own summary, checked once below, not to each verb's
    g = re.search(r"^OPTIONS \(before the verb\):(.*?)(?:\n\n|\Z)", out.stdout, re.S | re.M)
    if g:
        opts -= set(OPT.findall(g.group(1)))
    # --version: the program's version everywhere, except where it takes a value
    if not re.search(r"--version [A-Z]\b", out.stdout):
        opts.discard("--version")
    return opts

def readme_options(prog, verb):
    """Options on the README's command lines for PROG VERB (with their \\ continuations)."""
    opts, found, cont = set(), False, False
    for line in readme.splitlines():
        s = line.strip()
        if cont or re.match(rf"{re.escape(prog)} (\[[^]]*\] )*{re.escape(verb)}(\s|$)", s) or \
           re.match(rf"{re.escape(prog)} .*\| {re.escape(verb)}(\s|$)", s) or \
           re.match(rf"{re.escape(prog)} {re.escape(verb)} \|", s):
            found = True
            opts |= set(OPT.findall(s.split(" # ")[0] if not cont else s))
            cont = s.endswith("\\")
    return found, opts

def man_options(prog, verb):
    path = os.path.join(src, "docs", "man", prog + ".1.scd")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(rf"^## {re.escape(verb)}\b.*?(?=^#|\Z)", text, re.S | re.M)
    if not m:
        m = re.search(rf"^## [^\n]*\b{re.escape(verb)}\b.*?(?=^#|\Z)", text, re.S | re.M)
    return set(OPT.findall(m.group(0))) if m else None

fails = 0
for prog, (path, verbs) in progs.items():
    for verb in verbs:
        h = help_options(path, verb)
        if h is None:
            print(f"not ok - {prog} {verb} --help: no usage on stdout with exit 0"); fails += 1; continue
        found, r = readme_options(prog, verb)
        m = man_options(prog, verb)
        problems = []
        if not found:
            problems.append("README has no summary of it")
        if h - r:
            problems.append("README lacks " + " ".join(sorted(h - r)))
        if r - h - GENERIC - {"--version"}:
            problems.append("README names what --help does not offer: " + " ".join(sorted(r - h - GENERIC - {"--version"})))
        if m is None:
            problems.append(f"docs/man/{prog}.1.scd has no section ## {verb}")
        elif h - m:
            problems.append(f"docs/man/{prog}.1.scd lacks " + " ".join(sorted(h - m)))
        if problems:
            print(f"not ok - {prog} {verb}: " + "; ".join(problems)); fails += 1
        else:
            print(f"ok - {prog} {verb}: README, man page and --help agree on {len(h)} options")
# slotsync-bootctl's own options: its global usage, the README's summary line
# and its man page name the same
out = subprocess.run([os.environ["SLOTSYNC_BOOTCTL"], "status", "--help"], capture_output=True, text=True).stdout
g = re.search(r"^OPTIONS \(before the verb\):(.*?)(?:\n\n|\Z)", out, re.S | re.M)
g = set(OPT.findall(g.group(1))) - GENERIC if g else set()
first = [l for l in readme.splitlines() if l.startswith("slotsync-bootctl [--backend")]
man = open(os.path.join(src, "docs", "man", "slotsync-bootctl.1.scd")).read()
r = set(OPT.findall(first[0])) if first else set()
if not first or g - r or g - set(OPT.findall(man)):
    print(f"not ok - slotsync-bootctl's own options: README lacks {sorted(g - r)}, man page lacks {sorted(g - set(OPT.findall(man)))}"); fails += 1
else:
    print(f"ok - slotsync-bootctl's own options: README, man page and --help agree on {len(g)}")
print(f"{fails} failed")
sys.exit(1 if fails else 0)
PY

# ---- --version anywhere, -v/-q before the command ------------------------------------
PASS=0 FAIL=0
for args in "--version" "status --version" "mark-active --config /none --version" "-q --version"; do
	check "slotsync $args prints the version" bash -c "$SLOTSYNC_BIN $args | grep -qx 'slotsync [0-9.]*'"
done
for args in "--version" "make --version" "check --version"; do
	check "slotsync-gen $args prints the version" bash -c "$SLOTSYNC_GEN $args | grep -qx 'slotsync-gen [0-9.]*'"
done
check "slotsync -v index-info --help: -v before the command is taken" bash -c "$SLOTSYNC_BIN -v index-info --help | grep -q '^Usage: slotsync index-info'"
check "slotsync -q status --help: -q too" bash -c "$SLOTSYNC_BIN -q status --help | grep -q '^Usage: slotsync status'"
finish || rc=1

# ---- man pages and bash completion, installed -----------------------------------
PASS=0 FAIL=0
if command -v scdoc >/dev/null; then
	for f in "$SLOTSYNC_SOURCE_DIR"/docs/man/*.scd; do
		check "$(basename "$f") is valid scdoc" bash -c "scdoc <'$f' >/dev/null"
	done
	cmake --install "$SLOTSYNC_BUILD_DIR" --prefix "$T/p" >/dev/null
	for m in man1/slotsync.1 man1/slotsync-gen.1 man1/slotsync-bootctl.1 man5/slotsync.conf.5; do
		check "cmake --install puts $m into share/man" test -s "$T/p/share/man/$m"
	done
	check "(man reads it: slotsync(1) has the mark-active command)" \
		bash -c "MANWIDTH=100 man -l '$T/p/share/man/man1/slotsync.1' 2>/dev/null | grep -q 'mark-active'"
	for c in slotsync slotsync-gen slotsync-bootctl; do
		check "bash completion for $c in share/bash-completion/completions" test -s "$T/p/share/bash-completion/completions/$c"
	done
fi
complete_words() { # complete_words FILE FUNCTION WORD...: what completing the last word offers
	local file=$1 fn=$2; shift 2
	bash -c 'source "$1"; fn=$2; shift 2; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); $fn; echo "${COMPREPLY[*]}"' _ "$file" "$fn" "$@"
}
C=$SLOTSYNC_SOURCE_DIR/data/bash-completion
PATH=$(dirname "$SLOTSYNC_BIN"):$PATH
check "slotsync completes its commands: $(complete_words "$C/slotsync" _slotsync slotsync mark-)" \
	test "$(complete_words "$C/slotsync" _slotsync slotsync mark-)" = "mark-good mark-bad mark-active"
check "slotsync completes a command's options from its --help" \
	test "$(complete_words "$C/slotsync" _slotsync slotsync assemble --st)" = "--stall-timeout --store"
check "slotsync mark-active completes the slots" \
	test "$(complete_words "$C/slotsync" _slotsync slotsync mark-active '')" = "booted other A B"
check "slotsync-gen completes bundle's --pkcs11-module" \
	test "$(complete_words "$C/slotsync-gen" _slotsync_gen slotsync-gen bundle --pkcs11)" = "--pkcs11-module"
check "slotsync-bootctl completes its backends" \
	test "$(complete_words "$C/slotsync-bootctl" _slotsync_bootctl slotsync-bootctl --backend g)" = "grub"
finish || rc=1
exit $rc
