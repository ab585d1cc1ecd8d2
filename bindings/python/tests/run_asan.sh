#!/usr/bin/env bash
# run_asan.sh -- the Python package's hostile-input, lifetime and core tests
# against an AddressSanitizer + UndefinedBehaviorSanitizer build of the
# extension and of libcairn (ctest's python_asan, in the sanitizer build of
# `make test`). The interpreter is not instrumented, so the sanitizer runtime
# is preloaded; leak detection is off (CPython keeps memory until exit by
# design); any sanitizer report aborts the run and fails the test.
# Environment: CAIRN_BUILD_DIR (a CAIRN_SANITIZE=ON build with libcairn.a),
# CAIRN_SOURCE_DIR, CAIRN_PYTHON.
set -euo pipefail
PY=${CAIRN_PYTHON:-/usr/bin/python3}
SRC=${CAIRN_SOURCE_DIR:?}/bindings/python
OUT=${CAIRN_BUILD_DIR:?}/python-asan
if ! "$PY" -c 'import numpy, pytest' 2>/dev/null; then
    echo "skipped: $PY has no numpy or pytest"; exit 77
fi
cd "$SRC"
export PYTHONPATH="$SRC/tests"
CAIRN_SANITIZE=1 "$PY" setup.py -q build_py -d "$OUT" build_ext -b "$OUT" -t "$OUT/tmp" >/dev/null
runtime="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
LD_PRELOAD="$runtime" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
CAIRN_PYTHONPATH="$OUT" CAIRN_LEAK_CYCLES=200 CAIRN_SANITIZED=1 \
    "$PY" -m pytest -p asan_check -q -p no:cacheprovider tests/test_hostile.py tests/test_lifetime.py \
    tests/test_core.py tests/test_ckpt.py
