# A rank SIGKILLed at a random instant of a 3-rank job that saves a
# checkpoint every step through the manager (CAIRN_MPI_KILL_TRIALS trials,
# default 50, in two lanes on two directories; each kill lands 0-99 ms
# after the job's first commit, so inside a later save). The next job's manager opens the directory, removes what the
# dead save left and resumes from the newest valid checkpoint, whose every
# element must equal its recorded step (never a mix of two saves), read
# with another split than the save's. Also: async saves, one writer per
# directory, and a checkpoint converted to safetensors without MPI.
. "$(dirname "$0")/lib.bash"
trials=${CAIRN_MPI_KILL_TRIALS:-50}
# after a rank dies, mpirun ends the others at once (default: 1 s grace)
export OMPI_MCA_odls_base_sigkill_timeout=0
root=$WORK/run

# (the first trial's resume checks what the seed run left)
run_mpi 3 mpi_ckpt_test run "$root" 3 || fail "seed run"
run_mpi 2 mpi_ckpt_test run "$WORK/async" 6 async || fail "async run"
run_mpi 3 mpi_ckpt_test check "$WORK/async" | grep -q 'step 6' || fail "async run resumes at step 6"
run_mpi 2 mpi_ckpt_test lock "$WORK/lock" || fail "second writer refused"
first=$(ls -d "$root"/ckpt-* | tail -1)
"$CLI" convert "$first" "$WORK/state.safetensors" || fail "convert to safetensors"
"$CLI" diff "$first" "$WORK/state.safetensors" >/dev/null || fail "safetensors copy differs"

# Each trial is one job: it first resumes from the newest valid checkpoint
# and checks every element (what the previous trial's kill left), then
# saves every step (a save every few ms: the job is always inside one)
# until one of its ranks is killed. A SIGKILL ends the job (mpirun takes
# the others down), so a trial costs one job's start: its ranks unwind
# mallocs fast (the leak check at the end of a run is never reached in a
# killed job), what survives the victim is SIGKILLed once mpirun has
# exited, and two lanes of trials, each on its own directory, run at once
# (a job's start is mostly waiting: two overlap on two cores).
trial_asan=${ASAN_OPTIONS/fast_unwind_on_malloc=0/fast_unwind_on_malloc=1}

# lane ROOT FIRST LAST: trials FIRST..LAST on ROOT; prints "killed N" last.
lane() {
    local root=$1 log=$1.log killed=0 t job before launcher ranks victim p
    for t in $(seq "$2" "$3"); do
        ASAN_OPTIONS=$trial_asan timeout -k 5 60 "$MPIEXEC" --allow-run-as-root \
            --oversubscribe -np 3 "$BUILD/mpi_ckpt_test" run "$root" 100000 resume \
            >"$log" 2>&1 &
        job=$!
        # once the job has resumed and committed a save (start-up time
        # varies with load), a random instant within the next 0-99 ms
        before=$(ls "$root" | wc -l)
        for _ in $(seq 1 3000); do
            [ "$(ls "$root" | wc -l)" -ne "$before" ] && break
            sleep 0.01
        done
        sleep "0.0$(printf %02d $((RANDOM % 100)))"
        # $job is timeout; its child is mpirun, whose children are the ranks
        launcher=$(pgrep -P "$job" || true)
        ranks=$(for p in $launcher; do pgrep -P "$p"; done)
        if [ -n "$ranks" ]; then
            victim=$(shuf -n 1 -e $ranks)
            kill -9 "$victim" 2>/dev/null && killed=$((killed + 1))
        fi
        wait "$job" 2>/dev/null
        # the job is gone before the next trial starts: every rank exited
        # (a zombie waiting for init to reap it has released its files and
        # its lock)
        for p in $ranks; do
            kill -9 "$p" 2>/dev/null
            while [ -e "/proc/$p" ] &&
                [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -c1)" != Z ]; do
                sleep 0.01
            done
        done
        if grep -q '^resumed from' "$log"; then
            echo "trial $t: $(grep '^resumed from' "$log")"
        else
            echo "FAIL: trial $t: no resume: $(grep -v '^-\|^$' "$log" | head -5)"
        fi
    done
    echo "killed $killed"
}
root2=$WORK/run2
cp -r "$root" "$root2"
half=$((trials / 2))
lane "$root" 1 "$half" >"$WORK/lane1.out" &
lane1=$!
lane "$root2" $((half + 1)) "$trials" >"$WORK/lane2.out"
wait "$lane1"
cat "$WORK/lane1.out" "$WORK/lane2.out" | grep -v '^killed '
fails=$((fails + $(cat "$WORK/lane1.out" "$WORK/lane2.out" | grep -c '^FAIL')))
killed=$(( $(sed -n 's/^killed //p' "$WORK/lane1.out") + $(sed -n 's/^killed //p' "$WORK/lane2.out") ))
# after the last kills: the manager resumes on 2 ranks (another split)
run_mpi 2 mpi_ckpt_test check "$root" || fail "check after the last trial (lane 1)"
run_mpi 2 mpi_ckpt_test check "$root2" || fail "check after the last trial (lane 2)"
echo "$killed of $trials trials killed a rank mid-run"
[ "$killed" -ge $((trials * 9 / 10)) ] || fail "too few kills ($killed of $trials)"
finish
