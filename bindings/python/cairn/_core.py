"""The core API: save, Writer, open, load, convert (docs/PYTHON.md)."""
import array
import collections
import math
import os
import warnings
import weakref

import numpy as np

from . import _cairn
from . import _dtypes as D

# Which extension writes which format (the library's table, include/cairn.h
# cairn_format_extensions): ".pt" -> 6, ...
_EXTENSIONS = {ext: code for code in range(1, 32)
               for ext in (_cairn.format_extensions(code) or "").split()}
# Formats that store a tied tensor once (cairn_writer_add_alias).
_ALIAS_FORMATS = {1, 6}

_OPEN_VERIFY, _OPEN_NO_MMAP, _OPEN_INERT = 0x1, 0x2, 0x4
_WRITE_NO_SYNC, _WRITE_COMPRESS = 0x1, 0x2
_FILTER_SHUFFLE = 1


class TensorRef(str):
    """A metadata value that names a tensor of the same archive (a cairn
    tensor reference, docs/FORMAT.md §6)."""

    __slots__ = ()

    def __repr__(self):
        return f"TensorRef({str.__repr__(self)})"


def _value_hook(obj):
    """Converts what the C converter does not know: NumPy scalars become
    Python numbers; anything else is returned as is (and refused)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    return obj


_cairn._set_value_hook(_value_hook, TensorRef)

TensorInfo = collections.namedtuple(
    "TensorInfo", "name dtype shape raw_bytes stored_bytes offset alignment codec "
                  "checksum zero_copy filter level chunk_size chunk_count")
TensorInfo.__doc__ = """What the file says about one tensor: dtype is cairn's name ('F32',
'BF16'; NumPy views of BF16/FP8 are uint16/uint8), codec 'none' or the compressor, checksum
the XXH3-64 of the stored bytes or None, zero_copy whether f[name] is a view of the file."""


def _format_code(format, path=None):
    if format is None:
        if path is None:
            return 1
        return _EXTENSIONS.get(os.path.splitext(os.fspath(path))[1].lower(), 1)
    if isinstance(format, int):
        return format
    code = _cairn.format_from_name(format)
    if not code and format.lower() != "auto":
        # Also the extension without its dot: "pt", "h5", "params".
        code = _EXTENSIONS.get("." + format.lower().lstrip("."), 0)
        if not code:
            raise ValueError(f"unknown format {format!r}; one of "
                             f"{sorted(set(_cairn.format_name(c) for c in _EXTENSIONS.values()))}")
    return code


def _codec(compress):
    """(codec, level) from None/False, True (zstd), or 'zstd:3', 'lz4', ..."""
    if compress is None or compress is False:
        return 0, 0
    if compress is True:
        compress = "zstd"
    return _cairn.codec_parse(compress)


def _info_tuple(t):
    (name, dtype, shape, raw, stored, offset, align, codec, has_sum, checksum, zc, filt, level,
     chunk, chunks) = t
    return TensorInfo(name, D.NAMES.get(dtype, str(dtype)), shape, raw, stored, offset, align,
                      _cairn.codec_name(codec), checksum if has_sum else None, zc,
                      "shuffle" if filt == _FILTER_SHUFFLE else "none", level, chunk, chunks)


def _alias_key(arr, code, shape):
    """What makes two inputs the same tensor: same memory, dtype and shape."""
    if not isinstance(arr, np.ndarray) or arr.size == 0:
        return None
    return _cairn.buffer_address(arr), code, shape


class Writer:
    """Streaming save: ``with cairn.Writer(path) as w: w.add(name, array)``.

    Each add writes that tensor's bytes straight from its memory (the GIL
    released), so saving a model larger than RAM needs memory for about one
    tensor. Nothing appears at `path` until the ``with`` block ends without
    an exception: then the library commits atomically (temporary file,
    fsync, rename, directory fsync). An exception, or abort(), leaves nothing.
    With path=None the archive is built in memory and commit() returns bytes.

    format: 'cairn' (default), 'safetensors', 'npz', 'npy', 'gguf', 'pt',
    'mxnet', 'hdf5' or None to choose by the path's extension.
    compress: None, True (zstd) or 'CODEC[:LEVEL]' (zstd, lz4, lz4hc, zlib,
    bz2) for .cairn; True deflates .npz members. shuffle: byte-shuffle
    multi-byte dtypes before compressing. sync=False skips the fsyncs (still
    atomic, not durable). shard_size (bytes, .safetensors only): a sharded
    model NAME-0000K-of-0000N.safetensors + NAME.safetensors.index.json,
    which needs declare() first (save() does it). Tensors that are the same memory (tied weights)
    are stored once where the format has aliases (.cairn, .pt).
    """

    def __init__(self, path=None, *, metadata=None, format=None, compress=None, shuffle=False,
                 sync=True, alignment=0, chunk_size=0, threads=0, shard_size=0):
        self.path = None if path is None else os.fspath(path)
        self.format = _format_code(format, self.path)
        codec, level = (0, 0) if self.format != 1 else _codec(compress)
        flags = 0 if sync else _WRITE_NO_SYNC
        if compress and self.format == 4:
            flags |= _WRITE_COMPRESS
        elif compress and self.format != 1:
            raise _cairn.UnsupportedError(
                f"compress={compress!r}: only .cairn files (and .npz, compress=True) compress")
        self._w = _cairn.Writer(self.path, format=self.format, flags=flags, alignment=alignment,
                                codec=codec, level=level,
                                filter=_FILTER_SHUFFLE if shuffle else 0,
                                chunk_size=chunk_size, threads=threads,
                                shard_size=shard_size)
        self._seen = {}
        self._alive = {}  # alias keys of arrays that outlive the save (see _write_all)
        self._result = None
        if metadata is not None:
            try:
                self.set_metadata(metadata)
            except BaseException:
                self.abort()
                raise

    def add(self, name, tensor, *, compress=None, shuffle=None):
        """Writes one tensor (NumPy array, torch CPU tensor, or any buffer).
        compress/shuffle override the writer's for this tensor (.cairn)."""
        code, shape, buf, owner = D.as_buffer(tensor)
        key = None
        if self.format in _ALIAS_FORMATS and owner is not None:
            key = _alias_key(buf, code, shape)
        if key is not None and key in self._alive:  # (save(): kept alive by its list)
            self._w.add_alias(name, self._alive[key])
            return
        if key is not None and key in self._seen:
            # The same memory is the same tensor only while its first owner
            # lives (freed memory may hold the next array).
            first, ref = self._seen[key]
            if ref() is not None:
                self._w.add_alias(name, first)
                return
        if compress is None and shuffle is None:
            self._w.add(name, code, shape, buf)
        else:
            codec, level = _codec(compress) if compress is not None else (1, 0)
            self._w.add(name, code, shape, buf, codec=codec, level=level,
                        filter=_FILTER_SHUFFLE if shuffle else 0)
        if key is not None:
            try:
                self._seen[key] = (name, weakref.ref(owner))
            except TypeError:  # an owner without weak references: no aliasing
                pass

    def declare(self, tensors):
        """Announces every tensor before the first add: a sequence of
        (name, dtype, shape), dtype a cairn name ('F32') or NumPy dtype.
        safetensors and GGUF then write each payload once, in place
        (otherwise they spool it); a sharded save needs it."""
        self._w.declare([(n, D.code_of(dt), tuple(shape)) for n, dt, shape in tensors])

    def add_alias(self, name, existing):
        """Adds `name` as a second name of the already added tensor `existing`."""
        self._w.add_alias(name, existing)

    def set_metadata(self, metadata):
        """Sets the metadata tree: a dict of str keys whose values are None,
        bool, int (int64), float, str, bytes, lists/tuples, dicts and
        TensorRef. Replaces any tree set before."""
        self._w.set_metadata(metadata)

    def commit(self):
        """Finishes the save: atomic commit (path) or the bytes (memory)."""
        self._result = self._w.commit()
        return self._result

    def abort(self):
        """Discards everything written so far; nothing appears at path."""
        self._w.abort()

    @property
    def closed(self):
        return not self._w.open

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        if self._w.open:
            self.commit()
        return False

    def __repr__(self):
        state = "open" if self._w.open else "closed"
        where = self.path if self.path is not None else "<memory>"
        return f"<cairn.Writer {where!r} {_cairn.format_name(self.format)} {state}>"


def _write_all(w, tensors, declare=False):
    # A list, which keeps every array alive until the save ends.
    items = list(tensors.items()) if hasattr(tensors, "items") else list(tensors)
    if declare:
        items = [(name, D.as_buffer(t)) for name, t in items]
        w._w.declare([(name, code, shape) for name, (code, shape, _, _) in items])
        for name, (code, shape, buf, _) in items:
            w._w.add(name, code, shape, buf)
        return
    # Writer.add, inlined for the common case (a C-contiguous little-endian
    # NumPy array): 20,000 small tensors cost a few microseconds each in
    # Python otherwise. Anything else takes Writer.add. `items` keeps every
    # array alive, so the same memory is the same tensor without a weak
    # reference per array (w._alive; those cost allocations and collections).
    add, fast, seen, alive, address = w._w.add, D.FAST, w._seen, w._alive, _cairn.buffer_address
    aliasing = w.format in _ALIAS_FORMATS
    ndarray = np.ndarray
    for name, t in items:
        code = fast.get(t.dtype) if type(t) is ndarray and t.flags.c_contiguous else None
        if code is None:
            w.add(name, t)
            continue
        shape = t.shape
        if not aliasing or not t.size:
            add(name, code, shape, t)
            continue
        key = (address(t), code, shape)
        first = alive.get(key)
        if first is None and seen:
            first = seen.get(key)
            first = first[0] if first is not None and first[1]() is not None else None
        if first is not None:
            w._w.add_alias(name, first)
            continue
        add(name, code, shape, t)
        alive[key] = name


def save(tensors, path, *, metadata=None, format=None, compress=None, shuffle=False, sync=True,
         alignment=0, chunk_size=0, threads=0, shard_size=0):
    """Saves a mapping name -> array (NumPy, torch CPU tensor, buffer) to
    `path`, atomically, in the format of its extension (.cairn, .safetensors,
    .npz, .npy, .gguf, .pt, .h5, .params). See Writer for the options."""
    with Writer(path, metadata=metadata, format=format, compress=compress, shuffle=shuffle,
                sync=sync, alignment=alignment, chunk_size=chunk_size, threads=threads,
                shard_size=shard_size) as w:
        _write_all(w, tensors, declare=bool(shard_size))


def save_bytes(tensors, *, metadata=None, format="cairn", compress=None, shuffle=False,
               alignment=0, chunk_size=0, threads=0):
    """The bytes `save` would write, in memory (sktime's save(path=None))."""
    w = Writer(None, metadata=metadata, format=format, compress=compress, shuffle=shuffle,
               alignment=alignment, chunk_size=chunk_size, threads=threads)
    try:
        _write_all(w, tensors)
    except BaseException:
        w.abort()
        raise
    return w.commit()


class Slice:
    """f.get_slice(name): indexing reads only the rows asked for (for
    compressed tensors, only the chunks holding them)."""

    def __init__(self, file, index, info):
        self._file, self._index, self._info = file, index, info
        self.shape, self.dtype = info.shape, info.dtype

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __getitem__(self, key):
        shape = self.shape
        if not shape:
            return self._file._read(self._index, self._info)[key]
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = key[0], key[1:]
        rows = shape[0]
        row_elems = 1
        for d in shape[1:]:
            row_elems *= d
        if isinstance(first, (int, np.integer)):
            i = int(first)
            if i < 0:
                i += rows
            if not 0 <= i < rows:
                raise IndexError(f"index {int(first)} is out of bounds for axis 0 with size {rows}")
            start, stop, step, squeeze = i, i + 1, 1, True
        elif isinstance(first, slice):
            start, stop, step = first.indices(rows)
            squeeze = False
        elif first is Ellipsis:
            return self._file._read(self._index, self._info)[key]
        else:
            raise TypeError(f"get_slice: axis 0 takes an int or a slice, not {type(first).__name__}")
        if step > 0:
            lo, hi = start, max(start, stop)
            local = slice(None, None, step)
        else:
            hi = start + 1
            lo = stop + 1 if stop >= -1 else 0
            lo = min(lo, hi)
            local = slice(None, None, step)
        part = self._file._read(self._index, self._info, lo, hi, row_elems)
        return part[((0,) if squeeze else (local,)) + tuple(rest)]

    def __repr__(self):
        return f"<cairn.Slice {self._info.name!r} {self.dtype} {list(self.shape)}>"


class File:
    """An open archive (cairn.open). A mapping-like, read-only object:

    f.keys(), len(f), name in f, iteration; f.metadata(); f.info(name);
    f[name] -> read-only NumPy array viewing the file's mapping (no copy;
    compressed or big-endian tensors are read into a new array);
    f.get(name, copy=True) -> a private writable array; f.get_slice(name)[a:b];
    f.torch(name) -> torch tensor (BF16 as torch.bfloat16).

    Views stay valid after close() and after this object is gone: each keeps
    the file mapped until the last view is released. A file may be read from
    several threads at once; reads release the GIL.
    """

    def __init__(self, path=None, *, inert=False, verify=False, backend="mmap", format=None,
                 threads=0, max_inflate=0, public_key=None, _buffer=None):
        if backend not in ("mmap", "pread"):
            raise ValueError(f"backend must be 'mmap' or 'pread', not {backend!r}")
        flags = ((_OPEN_VERIFY if verify else 0) | (_OPEN_INERT if inert else 0) |
                 (_OPEN_NO_MMAP if backend == "pread" else 0))
        fmt = 0 if format is None else _format_code(format)
        if isinstance(public_key, (str, os.PathLike)):
            public_key = _cairn.key_load_public(public_key)
        self._f = _cairn.File(None if path is None else os.fspath(path), _buffer, flags=flags,
                              format=fmt, threads=threads, max_inflate=max_inflate,
                              public_key=public_key)
        self._names = None
        self._index = None
        self._file_info = None

    # -- mapping protocol -------------------------------------------------
    def keys(self):
        """Tensor names, in the file's order (name order for .cairn)."""
        if self._names is None:
            self._names = self._f.names()
        return list(self._names)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return self._f.count()

    def __contains__(self, name):
        try:
            self._find(name)
            return True
        except (KeyError, TypeError):
            return False

    def items(self):
        return [(n, self[n]) for n in self.keys()]

    def values(self):
        return [self[n] for n in self.keys()]

    def _find(self, name):
        if not isinstance(name, str):
            raise TypeError(f"tensor names are str, not {type(name).__name__}")
        index, t = self._f.find(name)
        return index, _info_tuple(t)

    # -- information --------------------------------------------------------
    def info(self, name=None):
        """info(name) -> TensorInfo; info() -> a dict about the file (format,
        version, tensor_count, file_size, payload_bytes, ...)."""
        if name is None:
            return self._f.info()
        return self._find(name)[1]

    def metadata(self):
        """The metadata tree as Python values (dict, list, int, float, str,
        bytes, bool, None, TensorRef); NaN, infinities and -0.0 kept."""
        return self._f.metadata()

    @property
    def format(self):
        if self._file_info is None:
            self._file_info = self._f.info()
        return self._file_info["format"]

    @property
    def path(self):
        return self._f.path

    @property
    def closed(self):
        return self._f.closed

    # -- tensors --------------------------------------------------------------
    def _view(self, index, info):
        buf = self._f.view(index)
        if buf is None:
            return None
        arr = np.frombuffer(buf, dtype=D.NUMPY[D.code_of(info.dtype)])
        return arr.reshape(info.shape)

    def _read(self, index, info, lo=None, hi=None, row_elems=1, dtype=None, verify=False):
        code = D.code_of(info.dtype) if dtype is None else D.code_of(dtype)
        npdt = D.NUMPY[code]
        if lo is None:
            out = np.empty(info.shape, dtype=npdt)
            self._f.read_into(index, out, code, verify=verify)
            return out
        out = np.empty((hi - lo,) + tuple(info.shape[1:]), dtype=npdt)
        self._f.read_into(index, out, code, first=lo * row_elems, count=(hi - lo) * row_elems,
                          verify=verify)
        return out

    def __getitem__(self, name):
        index, info = self._find(name)
        arr = self._view(index, info)
        if arr is None:
            arr = self._read(index, info)
            arr.flags.writeable = False
        return arr

    def get(self, name, *, copy=False, dtype=None, verify=False):
        """The tensor as a NumPy array: a read-only view of the file when
        possible (copy=False), else a new private writable array. dtype
        converts on read where cairn allows it (widening ints, any float to
        any float: 'F32', np.float64, ...). verify checks its checksum."""
        index, info = self._find(name)
        if not copy and dtype is None and not verify:
            arr = self._view(index, info)
            if arr is not None:
                return arr
        return self._read(index, info, dtype=dtype, verify=verify)

    def get_slice(self, name):
        """A Slice: s[a:b], s[i], s[a:b, :, 3] read only rows a..b."""
        index, info = self._find(name)
        return Slice(self, index, info)

    def torch(self, name, *, copy=False):
        """The tensor as a torch tensor (BF16 as torch.bfloat16). Without a
        copy it views a private copy-on-write mapping of the file: no bytes
        are read until touched, writes stay in this process. Tensors with no
        such view (compressed, in memory, other formats) are read into new
        memory."""
        import torch

        index, info = self._find(name)
        return _to_torch(torch, self, index, info, copy)

    # -- life cycle -----------------------------------------------------------
    def verify(self, name=None):
        """Checks every byte (name=None) or one tensor's checksum; raises
        ChecksumError / CorruptError naming what is wrong."""
        self._f.verify(-1 if name is None else self._find(name)[0])

    def close(self):
        """Ends reading. Views already made stay valid (they keep the
        mapping alive); the file is unmapped when the last one is gone."""
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        where = self.path if self.path is not None else "<memory>"
        if self.closed:
            return f"<cairn.File {where!r} closed>"
        return f"<cairn.File {where!r} {self.format}, {len(self)} tensors>"


def _to_torch(torch, file, index, info, copy):
    table, _ = D.torch_dtypes(torch)
    code = D.code_of(info.dtype)
    if code not in table:
        # torch 1.13 has no uint16/32/64: widen losslessly; FP8 stays bytes.
        widen = {D.U16: D.I32, D.U32: D.I64, D.F8_E4M3: D.U8, D.F8_E5M2: D.U8}
        if code not in widen:
            raise _cairn.UnsupportedError(f"tensor {info.name!r}: torch has no {info.dtype}")
        if widen[code] == D.U8:
            return torch.from_numpy(np.array(file.get(info.name), copy=True))
        return torch.from_numpy(file._read(index, info, dtype=widen[code]))
    dtype = table[code]
    if not copy and info.raw_bytes > 0:
        buf = file._f.cow_view(index)
        if buf is not None:
            return torch.frombuffer(buf, dtype=dtype).reshape(info.shape)
    out = torch.empty(info.shape, dtype=dtype)
    if info.raw_bytes:
        target = out.view(torch.int16) if dtype == torch.bfloat16 else out
        file._f.read_into(index, target.numpy(), code)
    return out


def open(path, *, inert=False, verify=False, backend="mmap", format=None, threads=0,
         max_inflate=0, public_key=None):
    """Opens an archive in any format cairn reads (.cairn, .safetensors and
    sharded index.json, .npy, .npz, .gguf, .pt/.pth and skorch checkpoint
    directories, .params, .h5/.keras, and with inert=True pickle/joblib as
    data). Only the index is read; tensors are read when asked for.

    verify: check every checksum now. backend: 'mmap' (zero-copy views) or
    'pread' (network file systems; views become reads). public_key: 32 bytes
    or a key file; the file's signature must verify."""
    return File(path, inert=inert, verify=verify, backend=backend, format=format,
                threads=threads, max_inflate=max_inflate, public_key=public_key)


def open_bytes(data, *, inert=False, verify=False, format=None, threads=0, max_inflate=0):
    """Opens an archive held in memory (bytes-like; a non-bytes object is
    copied once so it cannot change under the reader)."""
    return File(None, inert=inert, verify=verify, format=format, threads=threads,
                max_inflate=max_inflate, _buffer=data)


def _shared_groups(f, infos=None):
    """index -> representative index for tensors stored once under several
    names (aliases of .cairn, shared storages of .pt). infos: f._f.infos()
    when the caller has it."""
    if f.format not in ("cairn", "torch"):
        return {}
    if infos is None:
        infos = f._f.infos()
    first, rep = {}, {}
    for i, t in enumerate(infos):
        # (offset, stored bytes, dtype, shape, codec) of the raw info tuple
        if t[4] == 0:
            continue
        key = (t[5], t[4], t[1], t[2], t[7])
        at = first.setdefault(key, i)
        if at != i:
            rep[i] = at
    return rep


# Tensors up to this size are read, in one call, into one allocation that
# they then share (each a NumPy view into it): per tensor that is a slice
# instead of an allocation and a call into the library. Larger ones get
# their own memory.
_SHARED_BLOCK_MAX = 1 << 16


def _load_np_copies(f, infos, rep):
    """load(copy=True) into NumPy: private, writable arrays."""
    plan, placed, at = array.array("Q"), {}, 0
    numpy_of = D.NUMPY
    for i, t in enumerate(infos):
        raw, code, shape = t[3], t[1], t[2]
        if i in rep or not 0 < raw <= _SHARED_BLOCK_MAX or code not in numpy_of:
            continue
        dt = numpy_of[code]
        count = raw // dt.itemsize
        if count * dt.itemsize != raw or math.prod(shape) != count:
            continue
        plan.extend((i, code, at, raw))
        placed[i] = (dt, count, at)
        at += (raw + 63) & ~63  # 64-byte aligned, like the file's payloads
    block = np.empty(at, np.uint8)
    if placed:
        f._f.read_many(block, plan)
    out, by_index = {}, {}
    for i, t in enumerate(infos):
        name = t[0]
        if i in rep:
            out[name] = by_index[rep[i]]
            continue
        slot = placed.get(i)
        if slot is None:
            a = f._read(i, _info_tuple(t))
        else:
            dt, count, off = slot
            a = np.frombuffer(block, dt, count, off)
            if len(t[2]) != 1:
                a = a.reshape(t[2])
        by_index[i] = out[name] = a
    return out


def _load_file(f, framework, copy):
    infos = f._f.infos()
    rep = _shared_groups(f, infos)
    torch = None
    if framework in ("pt", "torch"):
        import torch
    elif framework not in ("np", "numpy"):
        raise ValueError(f"framework must be 'np' or 'pt', not {framework!r}")
    elif copy:
        return _load_np_copies(f, infos, rep)
    out, by_index = {}, {}
    for i, t in enumerate(infos):
        info = _info_tuple(t)
        if i in rep:
            out[info.name] = by_index[rep[i]]
            continue
        if torch is not None:
            a = _to_torch(torch, f, i, info, copy)
        else:
            a = f._view(i, info)
            if a is None:
                a = f._read(i, info)
                a.flags.writeable = False
        by_index[i] = out[info.name] = a
    return out


def load(path, *, framework="np", copy=True, verify=False, backend="mmap", inert=False,
         format=None):
    """Every tensor of `path` in a dict name -> array. framework='np' gives
    NumPy arrays, 'pt' torch tensors. copy=True (default) gives private,
    writable memory; copy=False read-only views of the file (NumPy) or
    copy-on-write mappings (torch). Tensors stored once under several names
    come back as one shared object."""
    with open(path, verify=verify, backend=backend, inert=inert, format=format) as f:
        return _load_file(f, framework, copy)


def load_bytes(data, *, framework="np", verify=False, format=None):
    """load() of an archive held in memory (the bytes of save_bytes)."""
    with open_bytes(data, verify=verify, format=format) as f:
        return _load_file(f, framework, True)


def convert(src, dst, *, format=None, compress=None, shuffle=False, sync=True, metadata=True,
            inert=False, verify=True):
    """Rewrites `src` (any format cairn reads) as `dst` (the format of its
    extension, or `format`), tensor by tensor with zero-copy reads where
    possible. metadata=True keeps the tree where `dst` can hold it (a
    warning says when it cannot), False drops it, a dict replaces it.
    Tensors stored once under several names stay shared where dst allows."""
    with open(src, inert=inert, verify=verify) as f:
        rep = _shared_groups(f)
        with Writer(dst, format=format, compress=compress, shuffle=shuffle, sync=sync) as w:
            tree = f.metadata() if metadata is True else (metadata or None)
            if tree:
                try:
                    w.set_metadata(tree)
                except _cairn.UnsupportedError as e:
                    if metadata is not True:
                        raise
                    warnings.warn(f"cairn.convert: metadata left out: {e}", stacklevel=2)
            names = {}
            for i in range(len(f)):
                info = _info_tuple(f._f.tensor_info(i))
                names[i] = info.name
                if i in rep and w.format in _ALIAS_FORMATS:
                    w.add_alias(info.name, names[rep[i]])
                    continue
                arr = f._view(i, info)
                if arr is None:
                    arr = f._read(i, info)
                code = D.code_of(info.dtype)
                w._w.add(info.name, code, info.shape, arr)
