"""Run under mpirun by test_dist.py: cairn.dist through mpi4py.

    dist_worker.py save DIR [zstd]   every dtype torch and NumPy share (and
        BF16 through torch), sharded by rows, columns, 2-D blocks and uneven
        rows (empty boxes when there are more ranks than rows), plus
        replicated NumPy arrays and torch tensors and metadata;
    dist_worker.py load DIR...       other splits on this many ranks, as
        torch tensors and NumPy arrays, every element compared bitwise;
    dist_worker.py errors DIR        (2+ ranks) a save over an existing
        checkpoint, a layout the ranks disagree on and one rank's bad value:
        every rank raises, naming the problem, and nothing is committed.
Prints "ok" on rank 0 when every rank agrees."""
import faulthandler
import os
import signal
import sys

import numpy as np
import torch
from mpi4py import MPI

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CAIRN_PYTHONPATH") or os.path.dirname(HERE))
import cairn  # noqa: E402
import cairn.dist  # noqa: E402

faulthandler.register(signal.SIGUSR1)  # a hung run shows where, when killed
comm = MPI.COMM_WORLD
me, size = comm.Get_rank(), comm.Get_size()

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64]


def global_tensor(name, dtype, shape):
    g = torch.Generator().manual_seed(sum(map(ord, name)))
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(shape, generator=g, dtype=torch.float64 if not dtype.is_complex
                           else torch.complex128).to(dtype)
    return torch.randint(-100 if dtype != torch.uint8 else 0, 100, shape, generator=g,
                         dtype=torch.int64).to(dtype)


def split(n, parts, p, uneven=False):
    if not uneven:
        return n * p // parts, n * (p + 1) // parts
    w = parts * (parts + 1) // 2
    return n * (p * (p + 1) // 2) // w, n * ((p + 1) * (p + 2) // 2) // w


def box(shape, scheme, rank, ranks):
    """(offset, extent) of this rank under a split scheme."""
    off, ext = [0] * len(shape), list(shape)
    if scheme == "blocks" and len(shape) > 1:
        pr = max(d for d in range(1, ranks + 1) if ranks % d == 0 and d * d <= ranks)
        pc = ranks // pr
        (a, b), (c, d) = split(shape[0], pr, rank // pc), split(shape[1], pc, rank % pc)
        return [a, c] + off[2:], [b - a, d - c] + ext[2:]
    axis = 1 if scheme == "cols" and len(shape) > 1 else 0
    lo, hi = split(shape[axis], ranks, rank, scheme == "uneven")
    off[axis], ext[axis] = lo, hi - lo
    return off, ext


SCHEMES = ["rows", "cols", "blocks", "uneven"]
TENSORS = [(f"t.{str(dt).split('.')[1]}", dt, (11, 6)) for dt in DTYPES] + [
    ("cube", torch.float32, (5, 4, 3)), ("tiny", torch.int32, (2, 7)),
    ("wide", torch.float64, (3, 40))]


def do_save(path, zstd):
    tensors = {}
    for i, (name, dt, shape) in enumerate(TENSORS):
        g = global_tensor(name, dt, shape)
        off, ext = box(shape, SCHEMES[i % 4], me, size)
        local = g[tuple(slice(o, o + e) for o, e in zip(off, ext))].clone()
        # torch for even tensors, NumPy for odd ones (bf16 stays torch)
        if i % 2 and dt != torch.bfloat16:
            local = local.numpy()
        tensors[name] = cairn.dist.Shard(local, global_shape=shape, offset=off)
    tensors["repl.np"] = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensors["repl.pt"] = global_tensor("repl.pt", torch.bfloat16, (4, 5))
    tensors["step"] = np.array(41)
    cairn.dist.save(comm, path, tensors, metadata={"lr": 0.1, "ranks": size},
                    compress="zstd" if zstd else None, shuffle=zstd, sync=False)


def do_load(paths):
    bad = 0
    for path in paths:
        requests, want = {}, {}
        for i, (name, dt, shape) in enumerate(TENSORS):
            off, ext = box(shape, SCHEMES[(i + 1 + me) % 4], me, size)
            requests[name] = tuple(slice(o, o + e) for o, e in zip(off, ext))
            want[name] = global_tensor(name, dt, shape)[requests[name]]
        requests["repl.np"] = (1, slice(None))
        requests["repl.pt"] = ...
        requests["step"] = ...
        got = cairn.dist.load(comm, path, requests, framework="pt")
        for name, w in want.items():
            g = got[name]
            if g.dtype != w.dtype or g.shape != w.shape or not torch.equal(g, w):
                print(f"rank {me}: {path}: {name}: got {g.dtype} {tuple(g.shape)}", flush=True)
                bad += 1
        bad += not torch.equal(got["repl.np"], torch.arange(4, 8, dtype=torch.float32))
        bad += not torch.equal(got["repl.pt"], global_tensor("repl.pt", torch.bfloat16, (4, 5)))
        bad += int(got["step"]) != 41
        np_got = cairn.dist.load(comm, path, {"cube": (slice(1, 4), 2)})["cube"]
        bad += not np.array_equal(np_got, global_tensor("cube", torch.float32,
                                                        (5, 4, 3))[1:4, 2].numpy())
    return bad


def expect(exc_type, needle, fn):
    try:
        fn()
    except exc_type as e:
        if needle in str(e):
            return 0
        print(f"rank {me}: {exc_type.__name__} without '{needle}': {e}", flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - any other error is a failure
        print(f"rank {me}: {type(e).__name__} instead of {exc_type.__name__}: {e}", flush=True)
        return 1
    print(f"rank {me}: no {exc_type.__name__}", flush=True)
    return 1


def do_errors(root):
    bad = 0
    good = os.path.join(root, "good")
    cairn.dist.save(comm, good, {"x": np.arange(4)}, sync=False)
    bad += expect(cairn.ExistsError, "never replaced",
                  lambda: cairn.dist.save(comm, good, {"x": np.arange(4)}, sync=False))
    # the ranks disagree on the global shape
    lie = os.path.join(root, "lie")
    bad += expect(cairn.MismatchError, "'w'", lambda: cairn.dist.save(
        comm, lie, {"w": cairn.dist.Shard(np.zeros((1, 3)), global_shape=(size, 3 + me),
                                          offset=(me, 0))}, sync=False))
    # rank 1 hands over something that is no array: everyone fails
    odd = os.path.join(root, "odd")
    value = object() if me == 1 else np.zeros(2)
    if me == 1:
        bad += expect(TypeError, "", lambda: cairn.dist.save(comm, odd, {"v": value}))
    else:
        bad += expect(cairn.ArgumentError, "Python error",
                      lambda: cairn.dist.save(comm, odd, {"v": value}))
    comm.Barrier()
    if me == 0:
        left = sorted(os.listdir(root))
        if left != ["good"]:
            print(f"after the failed saves the directory holds {left}", flush=True)
            bad += 1
        with cairn.open(good) as f:  # without MPI: one archive
            bad += not np.array_equal(f["x"], np.arange(4))
    return bad


def main():
    bad = 0
    if sys.argv[1] == "save":
        do_save(sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "zstd")
    elif sys.argv[1] == "errors":
        bad = do_errors(sys.argv[2])
    else:
        bad = do_load(sys.argv[2:])
    total = comm.allreduce(bad)
    if me == 0:
        print("ok" if total == 0 else f"{total} failures", flush=True)
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
