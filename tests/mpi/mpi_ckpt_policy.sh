# The distributed checkpoint manager keeps the single-process manager's
# rules (monitored metric min/max, keep_best/keep_last/keep_every, the
# triggers, the reasons recorded) and saves at the same step on every rank
# when any rank catches SIGTERM/SIGINT/SIGUSR1. Then `cairn ckpt` (no MPI)
# on the distributed checkpoint directories: the same listing and best as
# the single-process manager's, verify of every rank file, damage found,
# and a writer (prune) that leaves them alone.
. "$(dirname "$0")/lib.bash"
mkdir -p "$WORK/parity"
run_mpi 3 mpi_ckpt_policy parity "$WORK/parity" || fail "parity with the single-process manager"
run_mpi 3 mpi_ckpt_policy signal "$WORK/signal" || fail "signals agreed across ranks"

# `cairn ckpt ls` but the bytes and the path: seq epoch step metric valid
# reasons (latest) (best)
cols() { "$CLI" ckpt ls "$1" | awk 'NR > 1 { $5 = ""; $8 = ""; print }'; }
for k in 0 1 2 3 4; do
    d=$WORK/parity/dist-$k s=$WORK/parity/single-$k
    [ "$(cols "$d")" = "$(cols "$s")" ] && [ -n "$(cols "$d")" ] ||
        fail "config $k: cairn ckpt ls differs: $(cols "$d") vs $(cols "$s")"
    [ "$(basename "$("$CLI" ckpt best "$d")")" = "$(basename "$("$CLI" ckpt best "$s")" .cairn)" ] ||
        fail "config $k: cairn ckpt best differs"
    "$CLI" ckpt verify "$d" >/dev/null || fail "config $k: cairn ckpt verify"
done
d=$WORK/parity/dist-1
newest=$("$CLI" ckpt ls "$d" --json | grep -c '"seq"')
[ "$newest" -ge 2 ] || fail "dist-1 lists $newest checkpoints"
last=$(ls -d "$d"/ckpt-* | tail -1)
# a payload byte changed (size and index hash unchanged): listed valid, verify fails
cp -r "$d" "$WORK/flip"
f=$WORK/flip/$(basename "$last")/rank-000001.cairn
printf '\x5a' | dd of="$f" bs=1 seek=70 conv=notrunc status=none
"$CLI" ckpt ls "$WORK/flip" | tail -1 | grep -q ' yes ' || fail "a flipped payload byte made the listing invalid"
expect_fail "flipped byte in a rank file" "rank-000001.cairn" "$CLI" ckpt verify "$WORK/flip"
# a truncated rank file: invalid in the listing, verify names it
cp -r "$d" "$WORK/trunc"
truncate -s -1 "$WORK/trunc/$(basename "$last")/rank-000002.cairn"
"$CLI" ckpt ls "$WORK/trunc" | tail -1 | grep -q ' NO ' || fail "a truncated rank file is listed valid"
expect_fail "truncated rank file" "rank-000002.cairn" "$CLI" ckpt verify "$WORK/trunc"
# a writer never touches distributed checkpoints
before=$(ls "$d")
"$CLI" ckpt prune "$d" --keep-last 1 >/dev/null 2>&1
[ "$(ls "$d")" = "$before" ] || fail "cairn ckpt prune removed distributed checkpoints"
finish
