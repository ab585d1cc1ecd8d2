#!/usr/bin/env bash
# run.sh -- runs every cairn benchmark in a scratch directory and prints a summary against the targets.
#
# usage: bash bench/run.sh BUILD_DIR      (BUILD_DIR configured with -DCAIRN_BENCH=ON and built)
# env:   CAIRN_BENCH_DIR            scratch directory (default /tmp/cairn-bench; needs ~5 GiB free)
#        CAIRN_BENCH_RUNS           timed runs per contender (default 5)
#        CAIRN_BENCH_TINY_RUNS      runs for the 10x10 workload (default 101; each is microseconds)
#        CAIRN_BENCH_SETTLE         seconds to wait before each scratch write (default 2.5; README)
#        CAIRN_BENCH_PHASES         subset of: tiny many big rss pack peers python s3 compress ckpt
#                                   formats mpi (default: all)
#        CAIRN_BENCH_S3_MIB         payload of the s3 phase in MiB (default 1024, in 256 tensors)
#        CAIRN_BENCH_INSTALL_PEERS  0 = never apt-get install python3-h5py / python3-torch
set -euo pipefail

BUILD=$(cd "${1:?usage: bash bench/run.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${CAIRN_BENCH_DIR:-/tmp/cairn-bench}
RUNS=${CAIRN_BENCH_RUNS:-5}
TINY_RUNS=${CAIRN_BENCH_TINY_RUNS:-101}
SETTLE=${CAIRN_BENCH_SETTLE:-2.5}
PHASES=${CAIRN_BENCH_PHASES:-tiny many big rss pack peers python s3 compress ckpt formats mpi}
PY=/usr/bin/python3
BENCH=$BUILD/bench/bench_io
CONCAT=$BUILD/bench/npy_concat
CAIRN=$BUILD/cairn
GIB=$((1024 * 1024 * 1024))

for exe in "$BENCH" "$CONCAT" "$CAIRN"; do
  [ -x "$exe" ] || { echo "run.sh: $exe is missing: configure with -DCAIRN_BENCH=ON and build" >&2; exit 1; }
done
case "$DIR" in *' '*) echo "run.sh: CAIRN_BENCH_DIR must not contain spaces (hyperfine -N splits on them)" >&2; exit 1;; esac
mkdir -p "$DIR"
LOG=$DIR/bench.log
RESULTS=$DIR/results.txt
: > "$LOG"

say() { echo "$*" | tee -a "$LOG"; }
want() { [[ " $PHASES " == *" $1 "* ]]; }
# Removes only what this script creates, so a CAIRN_BENCH_DIR shared with other files is safe.
clean() {
  rm -rf "$DIR"/{big,many,tiny}.{raw,cairn} "$DIR"/.*.cairn-tmp-* "$DIR"/scratch.tmp "$DIR"/npy \
         "$DIR"/pack-out.* "$DIR"/pack-prep.sh "$DIR"/hf-*.json "$DIR"/peer.* "$DIR"/shapes.txt
}

# ----------------------------------------------------------------- checks
check_space() {
  local avail_kib mem_kib
  avail_kib=$(df -Pk "$DIR" | awk 'NR == 2 { print $4 }')
  mem_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  say "scratch dir $DIR: $((avail_kib / 1024)) MiB free on $(df -PT "$DIR" | awk 'NR == 2 { print $2 }'); memory available $((mem_kib / 1024)) MiB"
  if [ "$avail_kib" -lt $((5 * 1024 * 1024)) ]; then
    say "run.sh: need about 5 GiB free in $DIR (1 GiB .npy inputs + 1 GiB output + 2 GiB scratch, with margin); set CAIRN_BENCH_DIR"
    exit 1
  fi
  if [ "$mem_kib" -lt $((6 * 1024 * 1024)) ]; then
    say "run.sh: warning: under 6 GiB of memory available; the 'big' reads hold 2 GiB of buffers plus 2 GiB of page cache and may measure the disk instead"
  fi
}

machine() {
  say "cairn benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), runs=$RUNS (tiny: $TINY_RUNS)"
  say "machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)"
  say "$("$CAIRN" --version 2>/dev/null | head -1 || echo '?'), build $BUILD"
}

# ------------------------------------------------------------- bench_io
run_io() { # WORKLOAD RUNS
  "$BENCH" --workload "$1" --runs "$2" --dir "$DIR" --settle "$SETTLE" --mode all | tee -a "$LOG"
  rm -f "$DIR/$1.raw" "$DIR/$1.cairn"
}

# Peak RSS of a separate process: first the harness alone (generate 'big'),
# then the harness saving 'big' with cairn only, both under /usr/bin/time -v.
rss_of() { # LABEL ARGS...
  local label=$1 out kib
  shift
  out=$(/usr/bin/time -v "$BENCH" "$@" 2>&1 >/dev/null)
  kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' <<<"$out")
  awk -v l="$label" -v k="$kib" 'BEGIN {
    mib = k / 1024; printf "RESULT workload=big op=rss contender=%s maxrss_mib=%.1f payload_mib=1024.0 overhead_mib=%.1f\n", l, mib, mib - 1024 }' | tee -a "$LOG"
}

run_rss() {
  say ""
  say "== big / peak RSS  (/usr/bin/time -v; payload generated in-process = 1024 MiB)"
  rss_of harness --workload big --mode gen --dir "$DIR"
  rss_of cairn --workload big --mode save --runs 1 --only cairn --dir "$DIR"
  rm -f "$DIR/big.cairn"
}

# ----------------------------------------------------------------- pack
# hyperfine alternates the two commands, one run each per invocation; the
# prepare step (before every run of either) does what bench_io does before
# a save: remove both outputs, sync, wait for the balloon driver to settle,
# write and delete a scratch file twice the payload (bench/README.md).
run_pack_variant() { # OP CAIRN_FLAG CONCAT_FLAG
  local op=$1 r
  local -a specs files
  mapfile -t specs < "$DIR/npy/pack-args.txt"
  files=("${specs[@]#*=}")
  for r in $(seq 1 "$RUNS"); do
    hyperfine -N --runs 1 --style none --prepare "bash $DIR/pack-prep.sh" \
      --export-json "$DIR/hf-$op-$r.json" \
      -n cairn "$CAIRN pack $2 $DIR/pack-out.cairn ${specs[*]}" \
      -n concat "$CONCAT $3 $DIR/pack-out.concat ${files[*]}" >/dev/null
  done
  $PY "$HERE/report.py" hyperfine "$op" $(for r in $(seq 1 "$RUNS"); do echo "$DIR/hf-$op-$r.json"; done) | tee -a "$LOG"
}

run_pack() {
  say ""
  say "== pack: 256 .npy files of the 'big' shapes (1 GiB), written by the library's .npy writer"
  "$BENCH" --workload big --mode gen-npy --dir "$DIR" | tee -a "$LOG"
  cat "$DIR"/npy/*.npy > /dev/null # inputs warm in the page cache for both
  cat > "$DIR/pack-prep.sh" <<EOF
rm -f $DIR/pack-out.cairn $DIR/pack-out.concat $DIR/.pack-out.cairn.cairn-tmp-*
sync
sleep $SETTLE
dd if=/dev/zero of=$DIR/scratch.tmp bs=1M count=2048 status=none
rm -f $DIR/scratch.tmp
EOF
  if ! command -v hyperfine > /dev/null; then
    say "pack: skipped: hyperfine not installed (make deps)"
    return
  fi
  run_pack_variant pack-sync "" --sync
  run_pack_variant pack-nosync --no-sync ""
  rm -rf "$DIR"/npy "$DIR"/pack-out.* "$DIR"/hf-*.json
}

# ---------------------------------------------------------------- peers
install_peers() {
  local missing=""
  $PY -c 'import h5py' 2>/dev/null || missing="$missing python3-h5py"
  $PY -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
  [ -n "$missing" ] || return 0
  if [ "${CAIRN_BENCH_INSTALL_PEERS:-1}" = 0 ] || [ "$(id -u)" != 0 ]; then
    say "peers:$missing not installed (set CAIRN_BENCH_INSTALL_PEERS=1 and run as root to install)"
    return 0
  fi
  say "peers: installing$missing (large; CAIRN_BENCH_INSTALL_PEERS=0 skips)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing > "$DIR/apt.log" 2>&1 ||
    say "peers: apt-get install failed (see $DIR/apt.log); running without them"
}

run_peers() {
  say ""
  install_peers
  "$BENCH" --workload big --mode list > "$DIR/shapes.txt"
  $PY "$HERE/peers.py" --shapes "$DIR/shapes.txt" --dir "$DIR" --runs "$RUNS" --settle "$SETTLE" 2>&1 | tee -a "$LOG"
  rm -f "$DIR"/peer.* "$DIR/shapes.txt"
}

# The Python package (bench/python/bench_python.py) against libcairn and the
# peers; needs the extension built in place (make build does it).
run_python() {
  say ""
  if ! PYTHONPATH="$HERE/../bindings/python" $PY -c 'import cairn' 2>/dev/null; then
    say "python: skipped (the extension is not built: make build)"
    return 0
  fi
  PYTHONPATH="$HERE/../bindings/python" $PY "$HERE/python/bench_python.py" --dir "$DIR" \
    --runs "$RUNS" 2>&1 | tee -a "$LOG"
  grep '^RESULT bench=py_' "$LOG" >> "$RESULTS" || true
}

# s3:// against curl on the same loopback server (bench/bench_s3.c): moto
# with SigV4 enforced, started and stopped by tests/s3_harness.py (skipped,
# saying why, without moto_server).
run_s3() {
  say ""
  local mib=${CAIRN_BENCH_S3_MIB:-1024} rc=0
  "$PY" "$HERE/../tests/s3_harness.py" --timeout 3000 -- "$BUILD/bench/bench_s3" --mib "$mib" \
    --tensors 256 --runs "$(( RUNS < 3 ? RUNS : 3 ))" 2>&1 | tee -a "$LOG" || rc=$?
  [ "$rc" = 0 ] || say "s3: skipped or failed (exit $rc)"
}

# ----------------------------------------------------------------- main
start=$(date +%s)
clean
check_space
machine
phase() { # NAME COMMAND...: runs a phase if wanted, and says how long it took
  local name=$1 t0
  shift
  want "$name" || return 0
  t0=$(date +%s)
  "$@"
  say "[phase $name: $(( $(date +%s) - t0 )) s]"
}
phase tiny run_io tiny "$TINY_RUNS"
phase many run_io many "$RUNS"
phase big run_io big "$RUNS"
phase rss run_rss
phase pack run_pack
phase peers run_peers
phase python run_python
phase s3 run_s3
clean
grep '^RESULT ' "$LOG" > "$RESULTS" || true
$PY "$HERE/report.py" summary "$RESULTS" | tee -a "$LOG"
say ""
say "total $(( $(date +%s) - start )) s; full log $LOG, RESULT lines $RESULTS"

# ------------------------------------------------------------- compress
# Compressed native tensors (bench_compress.c): ratio, save and read speed per
# codec on N(0, 0.02) float32 weights and on float32 holding bf16 values, and
# the bytes one tensor read pulls from a compressed 1 GiB file (pread-counted
# via /proc/self/io). It prints its own summary against the compression
# targets; CAIRN_BENCH_COMPRESS=0 skips it. Needs about 1.3 GiB in $DIR.
COMPRESS=$BUILD/bench/bench_compress
if want compress && [ "${CAIRN_BENCH_COMPRESS:-1}" != 0 ] && [ -x "$COMPRESS" ]; then
  say ""
  t0=$(date +%s)
  "$COMPRESS" --dir "$DIR" --runs 3 --threads "$(nproc)" | tee -a "$LOG"
  grep '^RESULT workload=compress' "$LOG" >> "$RESULTS" || true
  say "[phase compress: $(( $(date +%s) - t0 )) s]"
fi

# ------------------------------------------------------------ checkpoints
# bench_ckpt.c: what an async checkpoint of 1 GiB costs the training loop
# (stall vs memcpy and vs a blocking save) and the step-time inflation of a
# compute loop while the background write runs, as the machine is and with
# one more busy process (--busy 1: on 2 cores, no core left idle).
# CAIRN_BENCH_CKPT=0 skips it.
if want ckpt && [ "${CAIRN_BENCH_CKPT:-1}" != 0 ] && [ -x "$BUILD/bench/bench_ckpt" ]; then
  say ""
  t0=$(date +%s)
  for busy in 0 1; do
    "$BUILD/bench/bench_ckpt" --mib 1024 --runs "$RUNS" --busy $busy --dir "$DIR/ckpt" | tee -a "$LOG"
  done
  grep '^RESULT bench=ckpt' "$LOG" >> "$RESULTS" || true
  # Before the background writer ran at idle CPU priority (issue 18): the same
  # program, alternated with that build on this machine, quiet and at load
  # averages of 9-21 (docs/CHECKPOINTS.md, "The background writer's priority").
  say "step inflation during an async 1 GiB save, before the low-priority writer:" \
      "1.00x on a quiet machine; 1.97-2.82x (first 21 steps), 2.06-2.71x (whole save) at load 9-21; 1.35-4.00x with --busy 1 there; now:" \
      "$(grep '^RESULT bench=ckpt' "$LOG" | sed -E 's/.*busy=([0-9]+).*step_inflation=([0-9.]+) step_inflation_whole=([0-9.]+).*/busy \1: \2 x, \3 x;/' | tr '\n' ' ')"
  say "[phase ckpt: $(( $(date +%s) - t0 )) s]"
fi

# ----------------------------------------------------------------- formats
# bench_formats.c with real torch: a 1 GiB state_dict (256 x 1024x1024 F32)
# saved by torch.save; read every tensor with cairn (into private buffers,
# and as zero-copy views with every page touched) vs torch.load, each in a
# fresh process, alternated, with peak RSS; open + find one tensor in the same tensors as
# native and as safetensors; `cairn convert` native -> safetensors vs a plain
# mmap + write() of the same bytes. CAIRN_BENCH_FORMATS=0 skips it.
if want formats && [ "${CAIRN_BENCH_FORMATS:-1}" != 0 ] && [ -x "$BUILD/bench/bench_formats" ] &&
   "$PY" -c 'import torch' 2>/dev/null; then
  say ""
  t0=$(date +%s)
  F=$BUILD/bench/bench_formats
  mkdir -p "$DIR/formats"
  ( cd "$DIR/formats" &&
    "$PY" -c "import torch; torch.save({f'layer{i:03d}.weight': torch.randn(1024, 1024) for i in range(256)}, 'big.pt')" &&
    for i in 1 2 3; do
      for mode in copy views; do
        "$F" rawread big.pt $mode
        /usr/bin/time -f "RESULT bench=readall_rss mode=$mode max_rss_kib=%M" "$F" readall big.pt 1 $mode
      done
      /usr/bin/time -f 'RESULT bench=torch.load_rss max_rss_kib=%M' \
        "$PY" -c "import torch, time; t0 = time.perf_counter(); x = torch.load('big.pt'); print('RESULT bench=torch.load median_s=%.4f' % (time.perf_counter() - t0))"
    done
    "$BUILD/cairn" convert big.pt big.cairn --no-progress --no-sync &&
    "$BUILD/cairn" convert big.cairn big.safetensors --no-progress --no-sync &&
    "$F" open big.cairn layer100.weight 101 && "$F" open big.safetensors layer100.weight 101 &&
    for i in 1 2 3; do
      rm -f out.bin out.safetensors
      /usr/bin/time -f 'RESULT bench=convert contender=mmapwrite wall_s=%e' "$F" mmapwrite big.cairn out.bin
      /usr/bin/time -f 'RESULT bench=convert contender=cairn wall_s=%e' "$BUILD/cairn" convert big.cairn out.safetensors --no-progress
    done ) 2>&1 | tee -a "$LOG"
  rm -rf "$DIR/formats"
  grep -E '^RESULT bench=(readall|rawread|torch.load|open|convert)' "$LOG" >> "$RESULTS" || true
  say "[phase formats: $(( $(date +%s) - t0 )) s]"
fi

# bench_mpi.c: distributed checkpoint overheads on 4 ranks (docs/DISTRIBUTED.md):
# save vs raw write()+fsync of the same bytes, the commit (from the last rank
# file durable to the checkpoint durable and visible, with its breakdown;
# and without fsyncs), a 1,000 x 1,000 manifest opened and planned, 4 -> 3
# resharded load vs pread. MPI on shared memory and loopback only.
# CAIRN_BENCH_MPI=0 skips it; CAIRN_BENCH_MPI_MIB sets MiB per rank (256).
if want mpi && [ "${CAIRN_BENCH_MPI:-1}" != 0 ] && [ -x "$BUILD/bench/bench_mpi" ] && command -v mpirun >/dev/null; then
  say ""
  t0=$(date +%s)
  MPI_MIB=${CAIRN_BENCH_MPI_MIB:-256}
  mkdir -p "$DIR/mpi"
  say "mpi: 4 ranks x $MPI_MIB MiB, medians of $RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine shows in every ratio)"
  mpi() { # NP ARGS...
    local np=$1
    shift
    OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_btl_tcp_if_include=lo \
    OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_pml=ob1 OMPI_MCA_osc=^ucx \
      timeout 1800 mpirun --allow-run-as-root --oversubscribe -np "$np" "$BUILD/bench/bench_mpi" "$@"
  }
  { mpi 4 save "$DIR/mpi" "$MPI_MIB" "$RUNS" &&
    mpi 3 load "$DIR/mpi" "$MPI_MIB" "$RUNS" &&
    rm -rf "$DIR/mpi"/* &&
    mpi 4 save "$DIR/mpi" 1 "$RUNS" nosync &&
    mpi 1 manifest "$DIR/mpi/synthetic" 1000 1000; } 2>&1 | tee -a "$LOG"
  rm -rf "$DIR/mpi"
  # the commit on an s3:// prefix (4 ranks x 8 MiB), moto on loopback
  # started by tests/s3_harness.py: from the last rank object complete to
  # the manifest created
  "$PY" "$HERE/../tests/s3_harness.py" --timeout 600 -- bash -c \
    "$(declare -f mpi); BUILD='$BUILD'; mpi 4 save \"s3://\$CAIRN_S3_BUCKET/mpi\" 8 $RUNS" \
    2>&1 | tee -a "$LOG" || say "mpi: s3 commit skipped or failed"
  grep -E '^RESULT bench=mpi_' "$LOG" >> "$RESULTS" || true
  say "[phase mpi: $(( $(date +%s) - t0 )) s]"
fi
