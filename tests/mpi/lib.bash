# Sourced by tests/mpi/*.sh: OpenMPI on shared memory and loopback only,
# every run bounded in time.
set -u
export OMPI_MCA_btl=self,vader
export OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# point-to-point through those btls (ob1), not UCX, which picks its own
# transports; no UCX one-sided component either (and jobs start faster)
export OMPI_MCA_pml=ob1
export OMPI_MCA_osc=^ucx
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIEXEC=${CAIRN_MPIEXEC:-mpirun}
# Sanitizer builds: OpenMPI unloads its plugins before exit, so LeakSanitizer
# cannot tell their allocations from cairn's at exit. The programs check
# for leaks themselves just before MPI_Finalize (tests/mpi/mpi_leak.h), with
# the full unwinder so OpenMPI's and PMIx's own leaks match lsan.supp.
HERE_MPI=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}leak_check_at_exit=0:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$HERE_MPI/lsan.supp:print_suppressions=0"
BUILD=${CAIRN_BUILD_DIR:?CAIRN_BUILD_DIR not set}
CLI=${CAIRN_CLI:-$BUILD/cairn}
TMP_ROOT=${CAIRN_TEST_TMP:-/tmp}
mkdir -p "$TMP_ROOT"
WORK=$(mktemp -d "$TMP_ROOT/mpi.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fails=0

# run_mpi N PROGRAM ARGS...: the program on N ranks, at most 60 s.
run_mpi() {
    local n=$1
    shift
    timeout -k 5 60 "$MPIEXEC" --allow-run-as-root --oversubscribe -np "$n" "$BUILD/$@"
}

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_fail WHAT PATTERN COMMAND...: the command fails and its stderr
# holds PATTERN.
expect_fail() {
    local what=$1 pattern=$2
    shift 2
    local out
    if out=$("$@" 2>&1); then
        fail "$what: succeeded: $out"
    elif ! grep -q -- "$pattern" <<<"$out"; then
        fail "$what: message lacks '$pattern': $out"
    else
        echo "ok: $what: $out"
    fi
}

finish() {
    if [ "$fails" -ne 0 ]; then
        echo "$fails failure(s)" >&2
        exit 1
    fi
    echo "all passed"
}
