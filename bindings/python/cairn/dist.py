"""Distributed checkpoints over MPI (mpi4py): N ranks save one checkpoint,
any M ranks load any boxes of it (docs/DISTRIBUTED.md).

    from mpi4py import MPI
    import cairn.dist

    cairn.dist.save(comm, "run/step-100", {
        "w": cairn.dist.Shard(local_rows, global_shape=(4096, 1024), offset=(r0, 0)),
        "step": np.array(100),                # replicated: identical on every rank
    }, metadata={"lr": 0.1})
    out = cairn.dist.load(comm, "run/step-100", {"w": (slice(a, b), slice(None)),
                                                 "step": ...}, framework="pt")

The directory is also one archive without MPI: ``cairn.open(path)`` gives
whole tensors, and ``cairn ls/verify/cat/convert DIR`` work on it.
"""
import os

import numpy as np

from . import _cairn
from . import _core
from . import _dtypes as D

__all__ = ["Shard", "save", "load"]

_ERRORS = {
    1: _cairn.ArgumentError, 2: _cairn.NoMemoryError, 3: _cairn.IOError,
    4: _cairn.CorruptError, 5: _cairn.UnsupportedError, 6: _cairn.NotFoundError,
    7: _cairn.LimitError, 8: _cairn.ChecksumError, 9: _cairn.DtypeError,
    10: _cairn.ExistsError, 11: _cairn.StateError, 12: _cairn.FormatError,
    13: _cairn.ArgumentError, 14: _cairn.MismatchError, 15: _cairn.SignatureError,
    16: _cairn.SignatureError,
}


class Shard:
    """This rank's box of a global tensor: `local` (a NumPy array or torch
    CPU tensor) holds the elements offset[d] <= i[d] < offset[d] +
    local.shape[d] of a tensor of `global_shape`. An empty box (some
    dimension 0) is allowed and stores nothing."""

    def __init__(self, local, *, global_shape, offset):
        self.local = local
        self.global_shape = tuple(int(d) for d in global_shape)
        self.offset = tuple(int(o) for o in offset)
        if len(self.offset) != len(self.global_shape):
            raise ValueError(f"offset {self.offset} and global_shape {self.global_shape} "
                             "differ in rank")

    def __repr__(self):
        return (f"<cairn.dist.Shard {tuple(self.local.shape)} at {self.offset} of "
                f"{self.global_shape}>")


def _dist_module():
    try:
        from . import _dist
    except ImportError as e:
        raise _cairn.UnsupportedError(
            "cairn.dist.save needs cairn._dist, built when mpi4py (python3-mpi4py), an MPI "
            f"compiler (libopenmpi-dev) and libcairn_mpi are there: {e}") from None
    return _dist


def _packed(dims):
    """Dimensions as the extension takes them: little-endian uint64 bytes."""
    return np.asarray(tuple(int(d) for d in dims), dtype="<u8").tobytes()


def save(comm, path, tensors, metadata=None, *, compress=None, shuffle=False, sync=True):
    """Collective: every rank of `comm` (an mpi4py communicator) calls it.
    `tensors` maps names to this rank's values: a Shard (its box of a
    sharded tensor) or a plain array/tensor, replicated (identical on every
    rank that adds it; written once). Each rank writes its own file; only
    when all have durably written does rank 0 commit the directory, which
    must not exist yet (ExistsError: a checkpoint is never replaced). Any
    failure on any rank raises the same error on every rank, naming it, and
    commits nothing. metadata: rank 0's is kept."""
    dist = _dist_module()
    pieces, meta, codec, level, failure = [], None, 0, 0, None
    try:
        for name, value in (tensors.items() if hasattr(tensors, "items") else tensors):
            if isinstance(value, Shard):
                code, shape, buf, _ = D.as_buffer(value.local)
                pieces.append((name, buf, code, _packed(value.global_shape),
                               _packed(value.offset), _packed(shape)))
            else:
                code, shape, buf, _ = D.as_buffer(value)
                pieces.append((name, buf, code, _packed(shape), None, None))
        meta = None if metadata is None else _core.save_bytes({}, metadata=metadata)
        codec, level = _core._codec(compress)
    except Exception as e:  # this rank still takes part, so no rank waits forever
        failure = e
        pieces = []
    status, message = dist.save(comm, os.fspath(path), pieces, meta, codec, level,
                                1 if shuffle else 0, bool(sync),
                                None if failure is None else f"{type(failure).__name__}: {failure}")
    if failure is not None:
        raise failure
    if status:
        raise _ERRORS.get(status, _cairn.Error)(message)


def _box(request, shape):
    """(offset, extent, squeeze axes) of a request: ... or a tuple of slices
    (step 1) and ints in global coordinates; missing trailing axes whole."""
    if request is Ellipsis:
        return (0,) * len(shape), tuple(shape), ()
    if not isinstance(request, tuple):
        request = (request,)
    if len(request) > len(shape):
        raise IndexError(f"{len(request)} indices for a tensor of rank {len(shape)}")
    off, ext, squeeze = [], [], []
    for axis, dim in enumerate(shape):
        key = request[axis] if axis < len(request) else slice(None)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (dim if key < 0 else 0)
            if not 0 <= i < dim:
                raise IndexError(f"index {int(key)} is out of bounds for axis {axis} "
                                 f"with size {dim}")
            off.append(i)
            ext.append(1)
            squeeze.append(axis)
        elif isinstance(key, slice):
            start, stop, step = key.indices(dim)
            if step != 1:
                raise IndexError("cairn.dist.load reads boxes: slices have step 1")
            off.append(start)
            ext.append(max(0, stop - start))
        else:
            raise TypeError(f"axis {axis}: an int or a slice, not {type(key).__name__}")
    return tuple(off), tuple(ext), tuple(squeeze)


def _as_torch(arr, code):
    import torch

    if code == D.BF16:
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


# torch 1.13 has no uint16/32/64: read those widened, losslessly.
_TORCH_WIDEN = {D.U16: D.I32, D.U32: D.I64}


def load(comm, path, requests, *, framework="np", verify=False):
    """Collective: every rank opens the checkpoint directory (if one rank
    cannot, every rank raises that rank's error), then reads, locally, the
    boxes it asks for: `requests` maps a name to ``...`` (the whole tensor)
    or a tuple of slices/ints in global coordinates. Only the saved pieces
    that meet each box are read. Returns name -> NumPy array, or torch
    tensor with framework="pt" (BF16 as torch.bfloat16). verify checks the
    checksums of every piece read."""
    if framework not in ("np", "pt"):
        raise ValueError(f"framework must be 'np' or 'pt', not {framework!r}")
    f, failure = None, None
    try:
        f = _core.open(path)
    except _cairn.Error as e:
        failure = e
    failures = comm.allgather(None if failure is None else (type(failure), str(failure)))
    for rank, fail in enumerate(failures):
        if fail is not None:
            if f is not None:
                f.close()
            cls, message = fail
            raise cls(f"rank {rank}: {message}")
    try:
        out = {}
        for name, request in requests.items():
            index, info = f._find(name)
            code = D.code_of(info.dtype)
            if framework == "pt":
                code = _TORCH_WIDEN.get(code, code)
            off, ext, squeeze = _box(request, info.shape)
            arr = np.empty(ext, dtype=D.NUMPY[code])
            f._f.read_into(index, arr, code, verify=verify, offset=off, extent=ext)
            if squeeze:
                arr = arr.reshape(tuple(e for a, e in enumerate(ext) if a not in squeeze))
            out[name] = _as_torch(arr, code) if framework == "pt" else arr
        return out
    finally:
        f.close()
