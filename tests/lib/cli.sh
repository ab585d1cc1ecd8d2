# shellcheck shell=bash
# tests/lib/cli.sh -- the common part of the CLI tests (tests/cli_*.sh), which
# source it first:  . "$(dirname "$0")/lib/cli.sh"
# Not a test itself: cmake/CairnTests.cmake registers tests/cli_*.sh only.
#
# It sets CLI (the cairn binary, required) and PY ($CAIRN_PYTHON, else
# /usr/bin/python3), makes a scratch directory $T under $CAIRN_TEST_TMP (or
# /tmp) named after the script, removed on exit, and cds into it. Every check
# counts into $pass or $fail and a failure prints a line "FAIL: ..."; the
# script ends with `finish`, which prints the summary and fails if any did.
set -u
# shellcheck disable=SC2034 # CLI, PY and T are for the scripts that source this
CLI=${CAIRN_CLI:?CAIRN_CLI must point at the cairn binary}
PY=${CAIRN_PYTHON:-/usr/bin/python3}
mkdir -p "${CAIRN_TEST_TMP:-/tmp}"
T=$(mktemp -d "${CAIRN_TEST_TMP:-/tmp}/$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0 fail=0

# What a failed `check` shows after its FAIL line: err.txt, or also the
# command's stdout when a script sets CHECK_SHOWS="out.txt err.txt".
CHECK_SHOWS=err.txt

ok() { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*"; }

check() { # check DESCRIPTION EXPECTED_RC COMMAND... (stdout in out.txt, stderr in err.txt)
    local what=$1 want=$2; shift 2
    "$@" >out.txt 2>err.txt; local rc=$?
    if [ "$rc" = "$want" ]; then ok; else
        bad "$what: exit $rc, wanted $want"
        # shellcheck disable=SC2086 # CHECK_SHOWS is a list of file names
        cat $CHECK_SHOWS
    fi
}

expect_grep() { # expect_grep DESCRIPTION PATTERN FILE
    if grep -q -- "$2" "$3"; then ok; else bad "$1: no '$2' in $3:"; cat "$3"; fi
}

expect_no_grep() { # expect_no_grep DESCRIPTION PATTERN FILE
    if grep -q -- "$2" "$3"; then bad "$1: '$2' in $3:"; grep -- "$2" "$3" | head -5; else ok; fi
}

skip_unless_python() { # skip_unless_python "import MODULES" MESSAGE: exit 77 when $PY cannot
    "$PY" -c "$1" 2>/dev/null || { echo "$2: skipped"; exit 77; }
}

finish() { # the summary line; fails (exit status 1 as the script's last command) on any failure
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
}
