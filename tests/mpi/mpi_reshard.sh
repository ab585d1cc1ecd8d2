# N -> M resharding for N, M in 1..4 (every dtype; row, column, 2-D block
# and uneven splits; empty boxes; replicated tensors; plain and zstd), then
# the same directories read without MPI by the CLI, and damaged copies
# refused by name.
. "$(dirname "$0")/lib.bash"
for n in 1 2 3 4; do
    for codec in plain zstd; do
        run_mpi "$n" mpi_reshard save "$WORK/$codec$n" "$codec" || fail "save on $n ranks ($codec)"
    done
done
dirs=$(ls -d "$WORK"/plain* "$WORK"/zstd*)
for m in 1 2 3 4; do
    # shellcheck disable=SC2086
    run_mpi "$m" mpi_reshard load $dirs || fail "load on $m ranks"
done

# Without MPI: the CLI reads the directory as one archive.
d=$WORK/zstd3
"$CLI" verify "$d" || fail "cairn verify $d"
"$CLI" ls "$d" | grep -q '^big .*\[300, 200\]' || fail "cairn ls shows the global shape"
"$CLI" convert "$d" "$WORK/whole.cairn" || fail "cairn convert"
"$CLI" diff "$d" "$WORK/whole.cairn" >/dev/null || fail "converted file differs"
"$CLI" diff "$WORK/plain1" "$WORK/zstd4" >/dev/null || fail "1-rank and 4-rank saves differ"
cmp <("$CLI" cat "$d" tiny) <("$CLI" cat "$WORK/whole.cairn" tiny) || fail "cairn cat DIR NAME"

# Damaged copies: each refused, naming what is wrong.
damaged() { rm -rf "$WORK/bad"; cp -r "$WORK/plain3" "$WORK/bad"; }
damaged; truncate -s -1 "$WORK/bad/rank-000001.cairn"
expect_fail "truncated rank file" "rank-000001.cairn" "$CLI" verify "$WORK/bad"
damaged; rm "$WORK/bad/rank-000002.cairn"
expect_fail "missing rank file" "rank-000002.cairn" "$CLI" verify "$WORK/bad"
damaged; cp "$WORK/zstd3/rank-000000.cairn" "$WORK/bad/rank-000000.cairn"
expect_fail "rank file from another save" "rank-000000.cairn" "$CLI" verify "$WORK/bad"
damaged; printf '\x55' | dd of="$WORK/bad/rank-000001.cairn" bs=1 seek=200 conv=notrunc status=none
expect_fail "payload byte changed" "rank-000001.cairn" "$CLI" verify "$WORK/bad"
damaged; sz=$(stat -c %s "$WORK/bad/manifest.cairn")
printf '\x55' | dd of="$WORK/bad/manifest.cairn" bs=1 seek=$((sz / 2)) conv=notrunc status=none
expect_fail "manifest byte changed" "manifest.cairn" "$CLI" verify "$WORK/bad"
damaged; truncate -s 100 "$WORK/bad/manifest.cairn"
expect_fail "truncated manifest" "manifest.cairn" "$CLI" ls "$WORK/bad"
damaged; rm "$WORK/bad/manifest.cairn"
expect_fail "missing manifest" "no skorch or distributed checkpoint" "$CLI" ls "$WORK/bad"

# libcairn_mpi.so exports only its public API.
lib=$BUILD/libcairn_mpi.so
if [ -f "$lib" ]; then
    syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
           grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$')
    for s in $syms; do
        grep -q -E "\b$s\(" "${CAIRN_SOURCE_DIR:-$(dirname "$0")/../..}/include/cairn_mpi.h" ||
            fail "libcairn_mpi.so exports $s, which cairn_mpi.h does not declare"
    done
    echo "libcairn_mpi.so: $(wc -w <<<"$syms") exported symbols, all in cairn_mpi.h"
fi
finish
