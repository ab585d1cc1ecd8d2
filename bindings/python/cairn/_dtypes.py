"""Dtype tables: cairn's codes (include/cairn.h, docs/FORMAT.md §5) and how
NumPy and PyTorch hold them, plus turning user objects into buffers."""
import sys

import numpy as np

from . import _cairn

# cairn dtype codes, pinned by the format.
F64, F32, F16, BF16, F8_E4M3, F8_E5M2 = 1, 2, 3, 4, 5, 6
I8, I16, I32, I64, U8, U16, U32, U64, BOOL, C64, C128 = 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17

# NumPy has no bfloat16 or FP8 (and ml_dtypes is not in Debian): those are
# shown as the unsigned integers of the same width, bit for bit.
NUMPY = {
    F64: np.dtype("<f8"), F32: np.dtype("<f4"), F16: np.dtype("<f2"), BF16: np.dtype("<u2"),
    F8_E4M3: np.dtype("u1"), F8_E5M2: np.dtype("u1"), I8: np.dtype("i1"), I16: np.dtype("<i2"),
    I32: np.dtype("<i4"), I64: np.dtype("<i8"), U8: np.dtype("u1"), U16: np.dtype("<u2"),
    U32: np.dtype("<u4"), U64: np.dtype("<u8"), BOOL: np.dtype("?"), C64: np.dtype("<c8"),
    C128: np.dtype("<c16"),
}
# NumPy kind + itemsize -> code (byte order handled separately).
FROM_NUMPY = {
    ("f", 8): F64, ("f", 4): F32, ("f", 2): F16, ("i", 1): I8, ("i", 2): I16, ("i", 4): I32,
    ("i", 8): I64, ("u", 1): U8, ("u", 2): U16, ("u", 4): U32, ("u", 8): U64, ("b", 1): BOOL,
    ("c", 8): C64, ("c", 16): C128,
}
NAMES = {code: _cairn.dtype_name(code) for code in NUMPY}
# Native little-endian NumPy dtypes -> code: the fast path of as_buffer.
FAST = {dt: code for (kind, size), code in FROM_NUMPY.items()
        for dt in [np.dtype(f"<{kind}{size}") if size > 1 else np.dtype(f"{kind}{size}")]}
LITTLE = sys.byteorder == "little"


def code_of(dtype):
    """The cairn code of a NumPy dtype, a cairn name ('BF16') or a code."""
    if isinstance(dtype, int):
        if dtype not in NUMPY:
            raise ValueError(f"invalid cairn dtype code {dtype}")
        return dtype
    if isinstance(dtype, str):
        code = _cairn.dtype_from_name(dtype)
        if code:
            return code
    dt = np.dtype(dtype)
    code = FROM_NUMPY.get((dt.kind, dt.itemsize))
    if code is None:
        raise TypeError(f"cairn cannot store NumPy dtype {dt}")
    return code


def _torch_module(obj):
    mod = type(obj).__module__
    return mod == "torch" or mod.startswith("torch.")


def torch_dtypes(torch):
    """code <-> torch dtype (torch 1.13 has no unsigned 16/32/64-bit or FP8)."""
    table = {F64: torch.float64, F32: torch.float32, F16: torch.float16, BF16: torch.bfloat16,
             I8: torch.int8, I16: torch.int16, I32: torch.int32, I64: torch.int64,
             U8: torch.uint8, BOOL: torch.bool, C64: torch.complex64, C128: torch.complex128}
    return table, {v: k for k, v in table.items()}


def as_buffer(obj):
    """(code, shape, buffer, owner) for a NumPy array, a torch CPU tensor or
    any object with the buffer protocol. The buffer is C-contiguous and
    little-endian: the array's own memory when it already is (no copy; then
    `owner` is `obj`, which keeps that memory alive), else one converted
    copy of this one tensor (owner None)."""
    if type(obj) is np.ndarray and obj.flags.c_contiguous:
        code = FAST.get(obj.dtype)
        if code is not None:
            return code, obj.shape, obj, obj
    if _torch_module(obj) and hasattr(obj, "detach"):
        import torch

        t = obj.detach()
        ptr = t.data_ptr()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.is_conj():
            t = t.resolve_conj()
        if t.is_neg():
            t = t.resolve_neg()
        t = t.contiguous()
        owner = obj if t.data_ptr() == ptr else None
        if t.dtype == torch.bfloat16:
            return BF16, tuple(t.shape), t.view(torch.int16).numpy(), owner
        _, codes = torch_dtypes(torch)
        if t.dtype not in codes:
            raise TypeError(f"cairn cannot store torch dtype {t.dtype}")
        return codes[t.dtype], tuple(t.shape), t.numpy(), owner
    arr = obj if isinstance(obj, np.ndarray) else np.asarray(obj)
    owner = obj
    if arr.dtype.fields is not None or arr.dtype.kind in "OUSVMm":
        raise TypeError(f"cairn cannot store NumPy dtype {arr.dtype}")
    code = code_of(arr.dtype)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not LITTLE):
        arr, owner = arr.astype(arr.dtype.newbyteorder("<")), None
    if not arr.flags.c_contiguous:
        arr, owner = np.ascontiguousarray(arr), None
    return code, arr.shape, arr, owner
