# The distributed checkpoint manager keeps the single-process manager's
# rules (monitored metric min/max, keep_best/keep_last/keep_every, the
# triggers, the reasons recorded) and saves at the same step on every rank
# when any rank catches SIGTERM/SIGINT/SIGUSR1.
. "$(dirname "$0")/lib.bash"
mkdir -p "$WORK/parity"
run_mpi 3 mpi_ckpt_policy parity "$WORK/parity" || fail "parity with the single-process manager"
run_mpi 3 mpi_ckpt_policy signal "$WORK/signal" || fail "signals agreed across ranks"
finish
