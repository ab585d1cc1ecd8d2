#!/usr/bin/python3
"""peers.py -- saves and loads the 'big' workload with numpy, torch and h5py, each as a ratio to raw write()/read() in the same run."""
import argparse
import os
import statistics
import sys
import time

try:
    import numpy as np
except ImportError:
    print("peers: skipped: numpy not installed (apt-get install python3-numpy)")
    sys.exit(0)

SCRATCH_BLOCK = b"\xa5" * (1 << 20)


def load_shapes(path):
    """Reads `bench_io --mode list --workload big`: NAME RANK D0 [D1] per line."""
    shapes = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                shapes.append((parts[0], tuple(int(d) for d in parts[2:])))
    return shapes


def make_arrays(shapes):
    rng = np.random.default_rng(0)
    return {name: rng.random(shape, dtype=np.float32) for name, shape in shapes}


def before_save(directory, nbytes, settle):
    """Untimed, before every save, as bench_io.c does (see bench/README.md):
    sync, wait for the balloon driver to hand freed memory back to the host,
    then write and delete a scratch file twice the payload, so the save
    reuses host-backed pages instead of pages the host must fault back in."""
    os.sync()
    time.sleep(settle)
    path = os.path.join(directory, "scratch.tmp")
    with open(path, "wb", buffering=0) as f:
        left = 2 * nbytes
        while left > 0:
            n = min(left, len(SCRATCH_BLOCK))
            write_all(f, SCRATCH_BLOCK[:n])
            left -= n
    os.unlink(path)


def write_all(f, buf):
    view = memoryview(buf).cast("B")
    while len(view):
        n = f.write(view)
        view = view[n:]


# Each contender: (save(path, arrays), load(path, arrays, dst)). `dst` are
# preallocated, already touched buffers for the APIs that can fill caller
# memory (raw readinto, h5py read_direct); numpy and torch allocate their own.

def raw_save(path, arrays):
    with open(path, "wb", buffering=0) as f:
        for a in arrays.values():
            write_all(f, a)


def raw_load(path, arrays, dst):
    with open(path, "rb", buffering=0) as f:
        for name in arrays:
            view = memoryview(dst[name]).cast("B")
            while len(view):
                n = f.readinto(view)
                if not n:
                    raise IOError(f"{path}: short read")
                view = view[n:]


def numpy_save(path, arrays):
    np.savez(path, **arrays)


def numpy_load(path, arrays, dst):
    with np.load(path) as z:
        for name in arrays:
            z[name]


def torch_funcs():
    import torch

    def save(path, arrays):
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)

    def load(path, arrays, dst):
        torch.load(path)

    return save, load


def h5py_funcs():
    import h5py

    def save(path, arrays):
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)

    def load(path, arrays, dst):
        with h5py.File(path, "r") as f:
            for k in arrays:
                f[k].read_direct(dst[k])

    return save, load


def contenders():
    found = [("raw", ".raw", raw_save, raw_load), ("numpy-savez", ".npz", numpy_save, numpy_load)]
    for name, ext, factory in (("torch", ".pt", torch_funcs), ("h5py", ".h5", h5py_funcs)):
        try:
            save, load = factory()
            found.append((name, ext, save, load))
        except ImportError:
            print(f"peers: {name}: skipped: not installed")
    return found


def report(op, who, times, raw, nbytes):
    med = statistics.median(times)
    ratio = med / statistics.median(raw)
    paired = statistics.median(t / r for t, r in zip(times, raw))
    print(f"  {who:12s} {med:10.4f} {min(times):10.4f} {max(times):10.4f} "
          f"{nbytes / med / 1e6:9.1f} {ratio:7.3f} {paired:7.3f}")
    print(f"RESULT workload=big op={op} contender={who} runs={len(times)} bytes={nbytes} "
          f"median_s={med:.6f} min_s={min(times):.6f} max_s={max(times):.6f} "
          f"mb_s={nbytes / med / 1e6:.1f} ratio={ratio:.4f} paired_ratio={paired:.4f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shapes", required=True, help="output of bench_io --mode list --workload big")
    ap.add_argument("--dir", default="/tmp/cairn-bench")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=2.5, help="seconds to wait before each scratch write")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    arrays = make_arrays(load_shapes(args.shapes))
    nbytes = sum(a.nbytes for a in arrays.values())
    dst = {k: np.ones_like(v) for k, v in arrays.items()}  # touched now, untimed
    who = contenders()
    print(f"peers: {len(arrays)} float32 arrays, {nbytes} bytes, {args.runs} runs, "
          f"python {sys.version.split()[0]}, numpy {np.__version__}", flush=True)
    saves = {c[0]: [] for c in who}
    loads = {c[0]: [] for c in who}
    for _ in range(args.runs):
        for name, ext, save, load in who:  # alternate contenders within each run
            path = os.path.join(args.dir, "peer" + ext)
            before_save(args.dir, nbytes, args.settle)
            t0 = time.perf_counter()
            save(path, arrays)
            saves[name].append(time.perf_counter() - t0)
            t0 = time.perf_counter()  # the file is warm: it was just written
            load(path, arrays, dst)
            loads[name].append(time.perf_counter() - t0)
            os.unlink(path)
    for op, table, note in (("peer-save", saves, "into the page cache, no fsync"),
                            ("peer-load", loads, "warm page cache")):
        print(f"\n== big / {op}  ({note}; ratio to raw of the same run)")
        print(f"  {'who':12s} {'median s':>10s} {'min s':>10s} {'max s':>10s} {'MB/s':>9s} "
              f"{'ratio':>7s} {'paired':>7s}")
        for name, _, _, _ in who:
            report(op, name, table[name], table["raw"], nbytes)


if __name__ == "__main__":
    main()
