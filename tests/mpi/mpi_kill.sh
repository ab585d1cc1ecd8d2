# A rank SIGKILLed at a random instant of a 3-rank job saving a checkpoint
# every step (after its first commit, so the kill lands in later saves) (CAIRN_MPI_KILL_TRIALS, default 50): afterwards the manager
# opens the directory, removes what the dead save left, and resumes from
# the newest valid checkpoint, which is always a complete earlier save
# (every element checked against its step on 2 ranks, another split).
# Also: async saves, one writer per directory, and a checkpoint converted
# to safetensors without MPI.
. "$(dirname "$0")/lib.bash"
trials=${CAIRN_MPI_KILL_TRIALS:-50}
# after a rank dies, mpirun ends the others at once (default: 1 s grace)
export OMPI_MCA_odls_base_sigkill_timeout=0
root=$WORK/run

run_mpi 3 mpi_ckpt_test run "$root" 3 || fail "seed run"
run_mpi 2 mpi_ckpt_test check "$root" || fail "check after the seed run"
run_mpi 2 mpi_ckpt_test run "$WORK/async" 6 async || fail "async run"
run_mpi 3 mpi_ckpt_test check "$WORK/async" | grep -q 'step 6' || fail "async run resumes at step 6"
run_mpi 2 mpi_ckpt_test lock "$WORK/lock" || fail "second writer refused"
first=$(ls -d "$root"/ckpt-* | tail -1)
"$CLI" convert "$first" "$WORK/state.safetensors" || fail "convert to safetensors"
"$CLI" diff "$first" "$WORK/state.safetensors" >/dev/null || fail "safetensors copy differs"

killed=0
for t in $(seq 1 "$trials"); do
    timeout -k 5 60 "$MPIEXEC" --allow-run-as-root --oversubscribe -np 3 \
        "$BUILD/mpi_ckpt_test" run "$root" 100000 >"$WORK/run.log" 2>&1 &
    job=$!
    # once the job has committed a save (start-up time varies with load),
    # a random instant within the next 0-199 ms: inside later saves
    before=$(ls "$root" | wc -l)
    for _ in $(seq 1 400); do
        [ "$(ls "$root" | wc -l)" -ne "$before" ] && break
        sleep 0.05
    done
    sleep "0.$(printf %03d $((RANDOM % 200)))"
    # $job is timeout; its child is mpirun, whose children are the ranks
    launcher=$(pgrep -P "$job" || true)
    ranks=$(for p in $launcher; do pgrep -P "$p"; done)
    if [ -n "$ranks" ]; then
        victim=$(shuf -n 1 -e $ranks)
        kill -9 "$victim" 2>/dev/null && killed=$((killed + 1))
    fi
    wait "$job" 2>/dev/null
    # mpirun takes the job down; make sure before the check runs
    for p in $ranks; do
        while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    done
    if ! out=$(run_mpi 2 mpi_ckpt_test check "$root" 2>&1); then
        fail "trial $t: $out"
        tail -5 "$WORK/run.log" >&2
    else
        echo "trial $t: $out"
    fi
done
echo "$killed of $trials trials killed a rank mid-run"
[ "$killed" -ge $((trials * 9 / 10)) ] || fail "too few kills ($killed of $trials)"
finish
