#!/usr/bin/env bash
# cli_install.sh -- `cmake --install` gives a usable library: a consumer
# program builds against it through pkg-config and through find_package(cairn),
# and the installed CLI and man page are there.
set -eu
B=${CAIRN_BUILD_DIR:?}
T=$(mktemp -d "${CAIRN_TEST_TMP:-/tmp}/cli_install.XXXXXX")
trap 'rm -rf "$T"' EXIT
cmake --install "$B" --prefix "$T/prefix" >/dev/null
test -x "$T/prefix/bin/cairn"
test -f "$T/prefix/include/cairn.h" && test -f "$T/prefix/include/cairn/ckpt.h"
test -f "$T/prefix/share/man/man1/cairn.1"
LIBDIR=$(dirname "$(find "$T/prefix" -name cairn.pc | head -1)")/..
cat > "$T/consumer.c" <<'C'
#include <cairn.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    cairn_writer *w; cairn_error err; void *mem; size_t n; float x = 42;
    if (cairn_writer_open_memory(NULL, &w, &err) || cairn_writer_add(w, "x", CAIRN_F32, 0, NULL, &x, &err)
        || cairn_writer_commit_memory(w, &mem, &n, &err)) { puts(err.message); return 1; }
    cairn_file *f; float y = 0;
    if (cairn_file_open_memory(mem, n, NULL, &f, &err) || cairn_tensor_read(f, 0, CAIRN_F32, &y, 4, CAIRN_READ_VERIFY, &err))
        { puts(err.message); return 1; }
    cairn_file_close(f); cairn_free(mem);
    printf("%s %g\n", cairn_version(), y);
    return y == 42 && strcmp(cairn_version(), CAIRN_VERSION_STRING) == 0 ? 0 : 1;
}
C
SAN=""
[ "${CAIRN_SANITIZE:-0}" = 1 ] && SAN="-fsanitize=address,undefined"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
# pkg-config, static link (the shared library is exercised by the CMake consumer);
# --libs, not --libs-only-l: libhdf5 lives in a -L directory of its own
cc $SAN "$T/consumer.c" -o "$T/pc_static" $(pkg-config --cflags cairn) \
    "$LIBDIR/libcairn.a" $(pkg-config --libs --static cairn | sed 's/-lcairn//')
"$T/pc_static"
# find_package(cairn) with the shared library
mkdir -p "$T/cm"
cat > "$T/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(cairn 0.1 REQUIRED)
add_executable(consumer ../consumer.c)
target_link_libraries(consumer PRIVATE cairn::cairn)
CM
CFLAGS="$SAN" LDFLAGS="$SAN" cmake -S "$T/cm" -B "$T/cm/build" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/cm/build" >/dev/null
LD_LIBRARY_PATH="$LIBDIR" "$T/cm/build/consumer"
echo "1 passed, 0 failed"
