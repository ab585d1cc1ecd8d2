#!/usr/bin/python3
"""bench_python.py -- the Python package against the C library and the peers.

A benchmark, not a test: it prints medians and ratios (RESULT lines for
bench/run.sh's results.txt) and fails nothing. Run by bench/run.sh (phase
"python"), or alone:

    PYTHONPATH=bindings/python /usr/bin/python3 bench/python/bench_python.py [--small]

Workloads (float32, warm page cache):
  big    SIZE MiB in COUNT arrays (default 1024 MiB / 256)
  many   MANY arrays of 1024 float32 (4 KiB; default 20,000)
  tiny   one 10x10 array

Measured, each the median of --runs:
  save big: cairn.save vs the C library's save of the same bytes (the
    extension's writer called per tensor: libcairn with no Python layer)
    vs torch.save (also + fsync) / np.save / np.savez / pickle 5 / h5py /
    cairn.save(sync=False); fsync on for cairn, torch+fsync and the C save
    (the others do not fsync); peak RSS of cairn.save
    in a fresh process against the data size;
  open + a view of every tensor (no payload touched);
  load big into private memory: cairn.load(framework="pt") vs torch.load,
    and every peer's load;
  many: cairn.save and cairn.load vs the C library's save and read loop;
  tiny: save_bytes + load_bytes round trip.
"""
import argparse
import os
import pickle
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import cairn
from cairn import _cairn
from cairn import _dtypes

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from peers import before_save  # noqa: E402  (bench/peers.py: bench_io's preparation)

MiB = 1 << 20


def median_time(fn, runs, setup=None):
    times = []
    for _ in range(runs):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_times(fa, fb, runs, prepare=None):
    """Medians of fa and fb timed in alternation, so that a busy disk or
    neighbour hits both alike; prepare(0) before fa, prepare(1) before fb
    (untimed)."""
    ta, tb = [], []
    for _ in range(runs):
        for k, fn, out in ((0, fa, ta), (1, fb, tb)):
            if prepare:
                prepare(k)
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def result(bench, **fields):
    print("RESULT bench=" + bench + "".join(f" {k}={v}" for k, v in fields.items()), flush=True)


def c_save(path, tensors, sync=True):
    """libcairn's save of the same bytes, with no Python layer in between."""
    w = _cairn.Writer(path, format=1, flags=0 if sync else 1)
    for name, a in tensors.items():
        w.add(name, _dtypes.F32, a.shape, a)
    w.commit()


def c_read_all(path):
    f = _cairn.File(path)
    out = []
    for i in range(f.count()):
        info = f.tensor_info(i)
        a = np.empty(info[2], np.float32)
        f.read_into(i, a, _dtypes.F32)
        out.append(a)
    f.close()
    return out


def rm(path):
    if os.path.isdir(path):
        for n in os.listdir(path):
            os.unlink(os.path.join(path, n))
        os.rmdir(path)
    elif os.path.exists(path):
        os.unlink(path)


def peers(d, tensors):
    """(name, save(path), load(path), path) of every peer that imports."""
    out = [("cairn", lambda p: cairn.save(tensors, p), lambda p: cairn.load(p), "p.cairn"),
           ("cairn-nosync", lambda p: cairn.save(tensors, p, sync=False), lambda p: cairn.load(p),
            "p3.cairn")]
    out.append(("np.savez", lambda p: np.savez(p, **tensors),
                lambda p: dict(np.load(p)), "p.npz"))

    def npy_save(p):
        os.makedirs(p)
        for k, v in tensors.items():
            np.save(os.path.join(p, k + ".npy"), v)

    def npy_load(p):
        return {k: np.load(os.path.join(p, k + ".npy")) for k in tensors}
    out.append(("np.save", npy_save, npy_load, "npy"))

    def pk_save(p):
        with open(p, "wb") as f:
            pickle.dump(tensors, f, protocol=5)

    def pk_load(p):
        with open(p, "rb") as f:
            return pickle.load(f)
    out.append(("pickle5", pk_save, pk_load, "p.pkl"))
    try:
        import torch
        tt = {k: torch.from_numpy(v) for k, v in tensors.items()}
        out.append(("torch", lambda p: torch.save(tt, p), lambda p: torch.load(p), "p.pt"))

        def torch_fsync(p):
            with open(p, "wb") as f:
                torch.save(tt, f)
                f.flush()
                os.fsync(f.fileno())
        out.append(("torch+fsync", torch_fsync, lambda p: torch.load(p), "p4.pt"))
        out.append(("cairn->pt", lambda p: cairn.save(tt, p),
                    lambda p: cairn.load(p, framework="pt"), "p2.cairn"))
    except ImportError:
        print("(torch not importable: skipped)")
    try:
        import h5py

        def h5_save(p):
            with h5py.File(p, "w") as f:
                for k, v in tensors.items():
                    f.create_dataset(k, data=v)

        def h5_load(p):
            with h5py.File(p, "r") as f:
                return {k: f[k][()] for k in f}
        out.append(("h5py", h5_save, h5_load, "p.h5"))
    except ImportError:
        print("(h5py not importable: skipped)")
    return [(n, s, l, os.path.join(d, p)) for n, s, l, p in out]


def peak_rss_of_save(d, size_mib, count):
    """(RSS before the data exists, peak RSS after one cairn.save) of a
    fresh process: the save's own memory is peak - before - data."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent.
    code = f"""
import numpy as np, cairn
def kib(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
base = kib("VmHWM:")
n = {size_mib} * {MiB} // 4 // {count}
ts = {{f"t{{i:03d}}": np.full(n, i, np.float32) for i in range({count})}}
cairn.save(ts, {os.path.join(d, 'rss.cairn')!r})
print(base, kib("VmHWM:"))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    before, after = (int(x) for x in out.stdout.split())
    rm(os.path.join(d, "rss.cairn"))
    return before * 1024, after * 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.environ.get("CAIRN_BENCH_DIR", "/tmp/cairn-bench"))
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--many", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=int(os.environ.get("CAIRN_BENCH_RUNS", 5)))
    ap.add_argument("--settle", type=float,
                    default=float(os.environ.get("CAIRN_BENCH_SETTLE", 2.5)),
                    help="seconds to wait before each scratch write (bench/README.md)")
    ap.add_argument("--tiny-runs", type=int, default=1001)
    ap.add_argument("--small", action="store_true", help="64 MiB, 2000 small arrays, 3 runs")
    a = ap.parse_args()
    if a.small:
        a.size_mib, a.many, a.runs, a.tiny_runs, a.settle = 64, 2000, 3, 201, 0.0
    d = os.path.join(a.dir, "python")
    os.makedirs(d, exist_ok=True)
    print(f"cairn {cairn.__version__} Python benchmarks: big {a.size_mib} MiB / {a.count}, "
          f"many {a.many} x 4 KiB, runs {a.runs}, dir {d}")

    n = a.size_mib * MiB // 4 // a.count
    big = {f"t{i:03d}": np.random.default_rng(i).standard_normal(n, dtype=np.float32)
           for i in range(a.count)}
    p, pc = os.path.join(d, "big.cairn"), os.path.join(d, "big_c.cairn")

    # -- save big: the Python layer against libcairn itself ---------------------
    # Before every timed save of 'big', for every contender: the previous
    # outputs removed, sync, settle, a scratch file twice the payload written
    # and deleted (bench_io's preparation, bench/README.md "Traps").
    def prepare_big(path):
        rm(path)
        before_save(d, a.size_mib * MiB, a.settle)
    t_py, t_c = paired_times(lambda: cairn.save(big, p), lambda: c_save(pc, big), a.runs,
                             prepare=lambda k: prepare_big((p, pc)[k]))
    gbs = a.size_mib / 1024
    print(f"save big      cairn.save {t_py:.3f} s ({gbs / t_py:.2f} GiB/s)   C library "
          f"{t_c:.3f} s   ratio {t_py / t_c:.2f} (target <= 1.10)")
    result("py_save_big", cairn_s=f"{t_py:.4f}", c_s=f"{t_c:.4f}", ratio=f"{t_py / t_c:.3f}")
    before, after = peak_rss_of_save(d, a.size_mib, a.count)
    over = (after - before - a.size_mib * MiB) / MiB
    print(f"peak RSS      {after / MiB:.0f} MiB = interpreter and imports {before / MiB:.0f} MiB"
          f" + data {a.size_mib} MiB + {max(over, 0):.0f} MiB for the save (target <= 64)")
    result("py_save_rss", max_rss_mib=f"{after / MiB:.0f}", over_data_mib=f"{over:.0f}")

    # -- open + a view of every tensor --------------------------------------------
    def open_views():
        with cairn.open(p) as f:
            return [f[k] for k in f.keys()]
    t_open = median_time(open_views, max(a.runs, 21))
    print(f"open + views  {t_open * 1e3:.3f} ms for {a.count} tensors (target <= 2 ms)")
    result("py_open_views", ms=f"{t_open * 1e3:.4f}")

    # -- peers: save and load side by side -----------------------------------------
    # Contenders alternate within each run (A B C ... A B C ...), each save
    # after the same preparation (prepare_big). Only "cairn" and
    # "torch+fsync" are durable (fsync); every other save ends in the page
    # cache.
    contenders = peers(d, big)
    save_t = {c[0]: [] for c in contenders}
    load_t = {c[0]: [] for c in contenders}
    for _ in range(a.runs):
        for name, save, _load, path in contenders:
            prepare_big(path)
            t0 = time.perf_counter()
            save(path)
            save_t[name].append(time.perf_counter() - t0)
    for _ in range(a.runs):
        for name, _save, load, path in contenders:
            t0 = time.perf_counter()
            load(path)
            load_t[name].append(time.perf_counter() - t0)
    rows = []
    for name, _save, _load, path in contenders:
        size = (os.path.getsize(path) if os.path.isfile(path) else
                sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)))
        rows.append((name, statistics.median(save_t[name]), statistics.median(load_t[name]),
                     size))
        rm(path)
    print(f"\n{'big: ' + str(a.size_mib) + ' MiB':22s} {'save s':>9s} {'load s':>9s} {'MiB':>8s}"
          "   (medians of one run; fsync only for cairn and torch+fsync)")
    for name, ts, tl, size in rows:
        print(f"{name:22s} {ts:9.3f} {tl:9.3f} {size / MiB:8.1f}")
        result("py_peer", contender=name, save_s=f"{ts:.4f}", load_s=f"{tl:.4f}")
    by = {r[0]: r for r in rows}
    if "torch" in by:
        print(f"cairn.save / torch.save {by['cairn'][1] / by['torch'][1]:.2f} (target <= 0.5; "
              "cairn fsyncs, torch does not); like with like: "
              f"cairn.save(sync=False) / torch.save {by['cairn-nosync'][1] / by['torch'][1]:.2f}, "
              f"cairn.save / (torch.save + fsync) {by['cairn'][1] / by['torch+fsync'][1]:.2f};"
              f"  cairn.load(pt) / torch.load {by['cairn->pt'][2] / by['torch'][2]:.2f} "
              f"(target <= 1)")
        result("py_vs_torch", save_ratio=f"{by['cairn'][1] / by['torch'][1]:.3f}",
               nosync_ratio=f"{by['cairn-nosync'][1] / by['torch'][1]:.3f}",
               sync_ratio=f"{by['cairn'][1] / by['torch+fsync'][1]:.3f}",
               load_pt_ratio=f"{by['cairn->pt'][2] / by['torch'][2]:.3f}")
    rm(p)
    rm(pc)
    del big

    # -- many small tensors --------------------------------------------------------
    many = {f"m{i:05d}": np.full(1024, i, np.float32) for i in range(a.many)}
    pm, pmc = os.path.join(d, "many.cairn"), os.path.join(d, "many_c.cairn")
    def prepare_many(k):
        rm((pm, pmc)[k])
        before_save(d, a.many * 4096, a.settle)
    t_py, t_c = paired_times(lambda: cairn.save(many, pm, sync=False),
                             lambda: c_save(pmc, many, sync=False), a.runs, prepare=prepare_many)
    l_py, l_c = paired_times(lambda: cairn.load(pm), lambda: c_read_all(pmc), a.runs)
    print(f"\nmany {a.many}: save {t_py:.3f} s vs C {t_c:.3f} s (ratio {t_py / t_c:.2f}); "
          f"load {l_py:.3f} s vs C {l_c:.3f} s (ratio {l_py / l_c:.2f}); target <= 2")
    result("py_many", save_s=f"{t_py:.4f}", c_save_s=f"{t_c:.4f}", load_s=f"{l_py:.4f}",
           c_load_s=f"{l_c:.4f}")
    rm(pm)
    rm(pmc)

    # -- tiny round trip -------------------------------------------------------------
    tiny = {"x": np.ones((10, 10), np.float32)}
    t = median_time(lambda: cairn.load_bytes(cairn.save_bytes(tiny)), a.tiny_runs)
    pt = os.path.join(d, "tiny.cairn")
    tf = median_time(lambda: cairn.load(cairn.save(tiny, pt, sync=False) or pt), a.tiny_runs)
    print(f"tiny 10x10: save_bytes + load_bytes {t * 1e6:.1f} us (target <= 50 us); "
          f"file round trip without fsync {tf * 1e6:.1f} us")
    result("py_tiny", us=f"{t * 1e6:.2f}", file_us=f"{tf * 1e6:.2f}")
    rm(pt)
    os.rmdir(d)
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
