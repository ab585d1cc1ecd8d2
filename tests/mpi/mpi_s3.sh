# Distributed checkpoints on an s3:// prefix, against moto with SigV4
# enforced (tests/s3_harness.py, which this script re-runs itself under):
# a 4-rank save loaded on 3 and 1 ranks (bitwise); the CLI on the prefix (ls, verify, ckpt
# ls/best/verify); a missing rank object refused by name; three jobs racing
# to commit one checkpoint (exactly one wins, the loser's objects are
# gone); the manager's retention and async saves; ranks SIGKILLed during
# saves (the newest committed checkpoint always resumes, nothing
# uncommitted is listed, and a later writer removes what the dead saves
# left).
if [ -z "${CAIRN_S3_BUCKET:-}" ]; then
    exec "${CAIRN_PYTHON:-/usr/bin/python3}" "$(dirname "$0")/../s3_harness.py" --timeout 240 \
        -- bash "$0"
fi
. "$(dirname "$0")/lib.bash"
B=s3://$CAIRN_S3_BUCKET/mpi
keys() { run_mpi 1 mpi_s3 keys "$1"; }

# --- N = 4 -> M = 3, 1 through range reads, bitwise equal to the generator
echo "[$SECONDS s] round trip"
run_mpi 4 mpi_reshard save "$B/n4" zstd || fail "save on 4 ranks to $B/n4"
run_mpi 3 mpi_reshard load "$B/n4" || fail "load on 3 ranks"
run_mpi 1 mpi_reshard load "$B/n4" || fail "load on 1 rank"
"$CLI" verify "$B/n4" || fail "cairn verify on the prefix"
"$CLI" convert "$B/n4" "$WORK/n4.cairn" || fail "cairn convert of the prefix"
"$CLI" diff "$WORK/n4.cairn" "$B/n4" >/dev/null || fail "the converted prefix differs"
"$CLI" ls "$B/n4" | grep -q '^big .*\[300, 200\]' || fail "cairn ls shows the global shape"
keys "$B/n4/" >"$WORK/n4.keys"
grep -q '^manifest.cairn ' "$WORK/n4.keys" || fail "no manifest object"
[ "$(grep -c '^[0-9a-f]\{16\}/rank-00000[0-3].cairn ' "$WORK/n4.keys")" -eq 4 ] ||
    fail "not 4 rank objects under one random subprefix: $(cat "$WORK/n4.keys")"
victim=$(grep -o '^[0-9a-f]\{16\}/rank-000002.cairn' "$WORK/n4.keys")
run_mpi 1 mpi_s3 rm "$B/n4/$victim" || fail "rm"
expect_fail "missing rank object" "rank-000002.cairn" "$CLI" verify "$B/n4"

# --- three jobs commit one checkpoint at the same instant: exactly one wins
echo "[$SECONDS s] race"
start=$(($(date +%s) + 2))
for job in 1 2 3; do
    run_mpi 2 mpi_s3 race "$B/race" "$job" "$start" >"$WORK/race$job" 2>&1 &
done
for job in 1 2 3; do
    wait %$job || fail "race: job $job failed: $(cat "$WORK/race$job")"
done
out=$(cat "$WORK"/race[123] | grep '^job ')
echo "$out"
[ "$(grep -c ' won$' <<<"$out")" -eq 1 ] || fail "race: not exactly one winner"
[ "$(grep -c 'lost: .*already exists' <<<"$out")" -eq 2 ] || fail "race: not two clear losses"
"$CLI" verify "$B/race" >/dev/null || fail "race: the winner's checkpoint"
# a later save of the committed checkpoint is refused before it uploads
run_mpi 2 mpi_s3 race "$B/race" 4 0 | grep -q '^job 4 lost: .*already exists' ||
    fail "a save over a committed checkpoint was not refused"
n=$(keys "$B/race/" | wc -l)
[ "$n" -eq 3 ] || fail "race: $n keys, expected the manifest and 2 rank objects: $(keys "$B/race/")"

# --- the manager on a prefix: retention (keep_last 2) and the CLI
echo "[$SECONDS s] manager"
run_mpi 2 mpi_ckpt_test run "$B/async" 4 async >"$WORK/async.log" 2>&1 &
run_mpi 3 mpi_ckpt_test run "$B/mgr" 5 || fail "manager run"
wait $! || fail "async manager run: $(cat "$WORK/async.log")"
run_mpi 2 mpi_ckpt_test listed "$B/mgr" | grep -q '^listed: 4 5$' || fail "retention kept other than 4 5"
[ "$(keys "$B/mgr/" | grep -vc '^ckpt-0000000[45]/')" -eq 0 ] ||
    fail "objects of pruned checkpoints left: $(keys "$B/mgr/")"
[ "$("$CLI" ckpt ls "$B/mgr" | grep -c 'ckpt-0000000[45]')" -eq 2 ] || fail "cairn ckpt ls"
"$CLI" ckpt best "$B/mgr" | grep -q 'ckpt-00000005' || fail "cairn ckpt best"
"$CLI" ckpt verify "$B/mgr" || fail "cairn ckpt verify"
run_mpi 3 mpi_ckpt_test check "$B/async" | grep -q 'step 4' || fail "async run resumes at step 4"

# --- ranks SIGKILLed during saves (CAIRN_MPI_S3_KILL_TRIALS, default 10,
# in two lanes on two prefixes): each trial's job first resumes from the
# newest committed checkpoint (the seeds saved on 3 ranks, read on 2) and checks
# every element (what the previous kill left), then saves every step until
# a random one of its 2 ranks is killed 0-199 ms after its resume
echo "[$SECONDS s] kills"
trials=${CAIRN_MPI_S3_KILL_TRIALS:-10}
export OMPI_MCA_odls_base_sigkill_timeout=0
trial_asan=${ASAN_OPTIONS/fast_unwind_on_malloc=0/fast_unwind_on_malloc=1}
lane() {
    local root=$1 log=$WORK/lane$2.log killed=0 t job launcher ranks p
    for t in $(seq 1 "$3"); do
        # emptied here, not by the job's redirection (which runs after the
        # fork, so the poll below could see the last trial's resume)
        : >"$log"
        ASAN_OPTIONS=$trial_asan timeout -k 5 60 "$MPIEXEC" --allow-run-as-root \
            --oversubscribe -np 2 "$BUILD/mpi_ckpt_test" run "$root" 100000 resume \
            >>"$log" 2>&1 &
        job=$!
        for _ in $(seq 1 3000); do
            grep -q '^resumed from' "$log" && break
            kill -0 "$job" 2>/dev/null || break
            sleep 0.01
        done
        sleep "0.$(printf %03d $((RANDOM % 200)))"
        launcher=$(pgrep -P "$job" || true)
        ranks=$(for p in $launcher; do pgrep -P "$p"; done)
        [ -n "$ranks" ] && kill -9 "$(shuf -n 1 -e $ranks)" 2>/dev/null && killed=$((killed + 1))
        wait "$job" 2>/dev/null
        for p in $ranks; do kill -9 "$p" 2>/dev/null; done
        if grep -q '^resumed from' "$log"; then
            echo "lane $2 trial $t: $(grep '^resumed from' "$log")"
        else
            echo "FAIL: lane $2 trial $t: no resume: $(grep -v '^-\|^$' "$log" | head -5)"
        fi
    done
    echo "killed $killed"
}
run_mpi 3 mpi_ckpt_test run "$B/kill1" 2 >"$WORK/seed1" 2>&1 &
run_mpi 3 mpi_ckpt_test run "$B/kill2" 2 || fail "seed run 2"
wait $! || fail "seed run 1: $(cat "$WORK/seed1")"
lane "$B/kill1" 1 $((trials / 2)) >"$WORK/lane1.out" &
lane1=$!
lane "$B/kill2" 2 $((trials - trials / 2)) >"$WORK/lane2.out"
wait "$lane1"
cat "$WORK/lane1.out" "$WORK/lane2.out" | grep -v '^killed '
fails=$((fails + $(cat "$WORK/lane1.out" "$WORK/lane2.out" | grep -c '^FAIL')))
killed=$(($(sed -n 's/^killed //p' "$WORK/lane1.out") + $(sed -n 's/^killed //p' "$WORK/lane2.out")))
echo "killed $killed ranks in $trials trials"
[ "$killed" -ge $((trials * 8 / 10)) ] || fail "only $killed kills in $trials trials"
for r in kill1 kill2; do
    "$CLI" ckpt verify "$B/$r" | grep -q " 0 bad; the newest is valid" ||
        fail "$r: an invalid checkpoint is listed"
    # a writer that commits once more removes every uncommitted leftover
    # older than its commit (and retention the pruned ones)
    run_mpi 2 mpi_ckpt_test run "$B/$r" 1 resume >/dev/null || fail "$r: resume after the kills"
    keys "$B/$r/" >"$WORK/$r.keys"
    cut -d/ -f1 "$WORK/$r.keys" | sort -u >"$WORK/$r.prefixes"
    grep '/manifest.cairn ' "$WORK/$r.keys" | cut -d/ -f1 | sort -u >"$WORK/$r.committed"
    cmp -s "$WORK/$r.prefixes" "$WORK/$r.committed" ||
        fail "$r: uncommitted leftovers remain: $(comm -23 "$WORK/$r.prefixes" "$WORK/$r.committed")"
done
echo "[$SECONDS s] done"
finish
