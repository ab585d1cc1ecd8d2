#!/usr/bin/env bash
# cli_symbols.sh -- the shared library exports only the public API: every
# defined dynamic symbol starts with cairn_ (internals are hidden or cairn__
# must not leak either).
set -u
LIB=${CAIRN_LIB:?CAIRN_LIB must point at libcairn.so}
syms=$(nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$')
bad=$(echo "$syms" | grep -v -E '^cairn_[a-z]' | grep -v '^$' || true)
leaked=$(echo "$syms" | grep -E '^cairn__' || true)
n=$(echo "$syms" | grep -c '^cairn_')
if [ -n "$bad$leaked" ]; then
    echo "symbols outside the public prefix:"; echo "$bad$leaked"
    echo "0 passed, 1 failed"; exit 1
fi
# every exported symbol is declared in the public header
missing=0
for s in $syms; do
    cat "${CAIRN_SOURCE_DIR:?}/include/cairn.h" "$CAIRN_SOURCE_DIR"/include/cairn/*.h | grep -q -E "\b$s\(" || { echo "exported but not in the public headers: $s"; missing=1; }
done
echo "$n public symbols, all prefixed cairn_"
[ $missing = 0 ] && echo "1 passed, 0 failed" || { echo "0 passed, 1 failed"; exit 1; }
