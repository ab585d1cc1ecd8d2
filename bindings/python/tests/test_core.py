"""Round trips of every dtype and edge shape, every format, metadata of every
type, save_bytes/load_bytes, the streaming Writer, slices, convert, errors."""
import math
import os

import numpy as np
import pytest

import cairn

DTYPES = ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", "c8", "c16"]
SHAPES = [(), (0,), (3, 0, 2), (5, 7), (2, 1, 2, 1, 2, 1, 1, 2)]


def make(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape)) if shape else 1
    dt = np.dtype(dtype)
    if dt.kind == "b":
        a = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    elif dt.kind == "c":
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    else:
        a = rng.standard_normal(n).astype(dt)
    return a.reshape(shape)


def variants(a):
    """The same values laid out as C, Fortran, non-contiguous and big-endian."""
    yield "c", a
    yield "fortran", np.array(a, order="F")
    if a.ndim:
        strided = np.repeat(a, 2, axis=0)[::2]
        assert not strided.flags.c_contiguous or a.shape[0] <= 1 or a.size == 0
        yield "strided", strided
    if a.dtype.itemsize > 1 and a.dtype.kind != "b":
        yield "big-endian", a.astype(a.dtype.newbyteorder(">"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_numpy_round_trip(tmp_path, dtype, shape):
    a = make(dtype, shape)
    tensors = {name: v for name, v in variants(a)}
    path = tmp_path / "t.cairn"
    cairn.save(tensors, path)
    with cairn.open(path) as f:
        assert sorted(f.keys()) == sorted(tensors)
        for name in tensors:
            got = f[name]
            assert got.shape == a.shape and got.dtype == a.dtype.newbyteorder("<")
            assert not got.flags.writeable
            np.testing.assert_array_equal(got, a)
            assert got.tobytes() == np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
            copy = f.get(name, copy=True)
            assert copy.flags.writeable
            np.testing.assert_array_equal(copy, a)
    back = cairn.load_bytes(cairn.save_bytes(tensors))
    for name in tensors:
        np.testing.assert_array_equal(back[name], a)


TORCH_DTYPES = ["float64", "float32", "float16", "bfloat16", "int8", "int16", "int32", "int64",
                "uint8", "bool", "complex64", "complex128"]


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_torch_round_trip(tmp_path, dtype, shape):
    torch = pytest.importorskip("torch")
    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    if dt.is_floating_point or dt.is_complex:
        t = torch.randn(shape, generator=g, dtype=dt if dt != torch.bfloat16 else torch.float32)
        t = t.to(dt)
    elif dt == torch.bool:
        t = torch.randint(0, 2, shape, generator=g).bool()
    else:
        t = torch.randint(-100 if dt != torch.uint8 else 0, 100, shape, generator=g).to(dt)
    ts = {"c": t, "t": t.transpose(0, 1) if t.dim() >= 2 else t.clone()}
    path = tmp_path / "t.cairn"
    cairn.save(ts, path)
    with cairn.open(path) as f:
        if dt == torch.bfloat16:
            assert f.info("c").dtype == "BF16" and f["c"].dtype == np.uint16
        for name, want in ts.items():
            got = f.torch(name)
            assert got.dtype == dt and tuple(got.shape) == tuple(want.shape)
            assert torch.equal(got, want)
    back = cairn.load(path, framework="pt")
    assert all(torch.equal(back[k], v) for k, v in ts.items())


FORMAT_CASES = {
    ".cairn": ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", "c8", "c16"],
    ".safetensors": ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?"],
    ".npz": ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?", "c8", "c16"],
    ".npy": ["f4"],
    ".pt": ["f8", "f4", "f2", "i1", "i2", "i4", "i8", "u1", "?", "c8", "c16"],
    ".gguf": ["f4", "f2", "i8"],
    ".params": ["f8", "f4", "f2", "i1", "i4", "i8", "u1"],
    ".h5": ["f8", "f4", "i4", "u1"],
}


@pytest.mark.parametrize("ext", sorted(FORMAT_CASES))
def test_every_format_through_open(tmp_path, ext):
    dtypes = FORMAT_CASES[ext]
    tensors = {f"t{i}": make(d, (3, 4), seed=i) for i, d in enumerate(dtypes)}
    if ext == ".npy":
        tensors = {"t0": tensors["t0"]}
    path = tmp_path / f"m{ext}"
    cairn.save(tensors, path)
    with cairn.open(path) as f:
        assert len(f) == len(tensors), f.keys()
        for name, want in tensors.items():
            key = name if name in f else f.keys()[0]
            np.testing.assert_array_equal(f[key], want)
            np.testing.assert_array_equal(f.get_slice(key)[1:3], want[1:3])
    if ext == ".npz":
        cairn.save(tensors, tmp_path / "c.npz", compress=True)
        with cairn.open(tmp_path / "c.npz") as f:
            np.testing.assert_array_equal(f["t1"], tensors["t1"])
            assert f.info("t1").stored_bytes < f.info("t1").raw_bytes + 200


def test_sharded_safetensors(tmp_path):
    tensors = {f"layer{i}.w": make("f4", (64, 64), seed=i) for i in range(6)}
    path = tmp_path / "model.safetensors"
    cairn.save(tensors, path, shard_size=40_000, metadata={"k": "v"})
    names = sorted(os.listdir(tmp_path))
    assert "model.safetensors.index.json" in names and len(names) > 2, names
    with cairn.open(tmp_path / "model.safetensors.index.json") as f:
        assert sorted(f.keys()) == sorted(tensors)
        for k, v in tensors.items():
            np.testing.assert_array_equal(f[k], v)


def test_metadata_of_every_type(tmp_path):
    meta = {"none": None, "t": True, "f": False, "i": -(2**63), "big": 2**63 - 1,
            "x": 1.5, "nan": float("nan"), "inf": float("-inf"), "negzero": -0.0,
            "s": "ünï\x00code", "b": b"\x00\xff", "l": [1, [2, {"k": "v"}], None],
            "tuple": (1, 2), "nested": {"a": {"b": {"c": []}}}, "np": np.float32(2.5),
            "npint": np.int64(7), "ref": cairn.TensorRef("w")}
    path = tmp_path / "m.cairn"
    cairn.save({"w": np.zeros(2)}, path, metadata=meta)
    with cairn.open(path) as f:
        got = f.metadata()
    assert math.isnan(got.pop("nan")) and math.copysign(1, got["negzero"]) == -1
    assert got["tuple"] == [1, 2] and got["np"] == 2.5 and got["npint"] == 7
    assert isinstance(got["ref"], cairn.TensorRef) and got["ref"] == "w"
    for k, v in meta.items():
        if k not in ("nan", "tuple", "np", "npint"):
            assert got[k] == v, k
    with pytest.raises(TypeError):
        cairn.save({"w": np.zeros(2)}, tmp_path / "bad.cairn", metadata={"o": object()})
    with pytest.raises(ValueError):
        cairn.save({"w": np.zeros(2)}, tmp_path / "bad.cairn", metadata={"ü\x00": 1})
    with pytest.raises(OverflowError):
        cairn.save({"w": np.zeros(2)}, tmp_path / "bad.cairn", metadata={"o": 2**64})
    assert not os.path.exists(tmp_path / "bad.cairn")


def test_writer_streams_and_exception_leaves_nothing(tmp_path):
    path = tmp_path / "w.cairn"
    with cairn.Writer(path, metadata={"k": 1}) as w:
        for i in range(5):
            w.add(f"t{i}", np.full((100,), i, np.int32))
        assert not path.exists()  # nothing until commit
    assert cairn.load(path)["t3"][0] == 3
    with pytest.raises(RuntimeError):
        with cairn.Writer(tmp_path / "x.cairn") as w:
            w.add("a", np.ones(10))
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == ["w.cairn"]
    with pytest.raises(cairn.ExistsError):
        with cairn.Writer(tmp_path / "y.cairn") as w:
            w.add("a", np.ones(3))
            w.add("a", np.ones(3))
    assert os.listdir(tmp_path) == ["w.cairn"]
    # An existing file is replaced only by a complete new one.
    with pytest.raises(ValueError):
        with cairn.Writer(path) as w:
            w.add("z", np.ones(3))
            raise ValueError
    assert sorted(cairn.load(path)) == [f"t{i}" for i in range(5)]


def test_compression_and_slices_read_only_their_chunks(tmp_path):
    a = np.arange(400_000, dtype=np.float32).reshape(1000, 400)
    path = tmp_path / "z.cairn"
    cairn.save({"a": a}, path, compress="zstd:3", shuffle=True, chunk_size=65536)
    with cairn.open(path) as f:
        info = f.info("a")
        assert info.codec == "zstd" and info.filter == "shuffle" and info.chunk_count > 1
        assert info.stored_bytes < info.raw_bytes
        assert not info.zero_copy
        np.testing.assert_array_equal(f["a"], a)
        s = f.get_slice("a")
        assert s.shape == (1000, 400)
        np.testing.assert_array_equal(s[10:20], a[10:20])
        np.testing.assert_array_equal(s[-1], a[-1])
        np.testing.assert_array_equal(s[990:], a[990:])
        np.testing.assert_array_equal(s[5:50:7, 3], a[5:50:7, 3])
        np.testing.assert_array_equal(s[50:5:-3], a[50:5:-3])
        np.testing.assert_array_equal(s[7:7], a[7:7])
        with pytest.raises(IndexError):
            s[1000]
        np.testing.assert_array_equal(f.get("a", dtype="F64"), a.astype(np.float64))


def test_convert_between_formats(tmp_path):
    tensors = {"w": make("f4", (4, 3)), "b": make("i8", (3,))}
    cairn.save(tensors, tmp_path / "a.cairn", metadata={"note": "x"})
    cairn.convert(tmp_path / "a.cairn", tmp_path / "a.safetensors")
    with pytest.warns(UserWarning, match="metadata left out"):
        cairn.convert(tmp_path / "a.safetensors", tmp_path / "a.npz")
    cairn.convert(tmp_path / "a.npz", tmp_path / "c.pt")
    back = cairn.load(tmp_path / "c.pt")
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k], v)
    with cairn.open(tmp_path / "a.safetensors") as f:
        assert f.metadata()["note"] == "x"


def test_errors_are_exceptions_with_the_library_message(tmp_path):
    with pytest.raises(cairn.IOError) as e:
        cairn.open(tmp_path / "missing.cairn")
    assert isinstance(e.value, OSError) and "missing.cairn" in str(e.value)
    assert e.value.status == 3
    (tmp_path / "junk.bin").write_bytes(b"not a model at all" * 10)
    with pytest.raises(cairn.Error):
        cairn.open(tmp_path / "junk.bin")
    cairn.save({"a": np.ones(2)}, tmp_path / "a.cairn")
    with cairn.open(tmp_path / "a.cairn") as f:
        with pytest.raises(KeyError) as e:
            f["nope"]
        assert isinstance(e.value, cairn.NotFoundError) and str(e.value).endswith("'nope'")
        assert "nope" not in f and "a" in f
    with pytest.raises(ValueError):
        f["a"]  # closed
    with pytest.raises(cairn.UnsupportedError):
        cairn.save({"a": np.ones(2)}, tmp_path / "a.safetensors", compress="zstd")
    with pytest.raises(TypeError):
        cairn.save({"a": np.array(["x"])}, tmp_path / "s.cairn")
    with pytest.raises(ValueError):
        cairn.save({"a": np.ones([1] * 9)}, tmp_path / "r.cairn")


def test_reprs_info_and_version(tmp_path):
    assert cairn.__version__ == cairn.library_version
    cairn.save({"a": np.ones((2, 2))}, tmp_path / "a.cairn")
    f = cairn.open(tmp_path / "a.cairn")
    assert "2 tensors" not in repr(f) and "1 tensors" in repr(f)
    assert f.info()["format"] == "cairn" and f.info()["tensor_count"] == 1
    assert "Slice" in repr(f.get_slice("a"))
    f.verify()
    f.close()
    assert "closed" in repr(f)
    w = cairn.Writer(None)
    assert "<memory>" in repr(w)
    w.abort()


def test_pread_backend_and_verify(tmp_path):
    a = make("f4", (64, 64))
    path = tmp_path / "a.cairn"
    cairn.save({"a": a}, path)
    with cairn.open(path, backend="pread", verify=True) as f:
        assert not f.info("a").zero_copy
        np.testing.assert_array_equal(f["a"], a)
    raw = bytearray(path.read_bytes())
    with cairn.open(path) as f:
        off = f.info("a").offset
    raw[off + 5] ^= 0x40
    path.write_bytes(bytes(raw))
    with pytest.raises(cairn.ChecksumError):
        cairn.open(path, verify=True)
    with cairn.open(path) as f:
        with pytest.raises(cairn.CorruptError):
            f.get("a", verify=True)


def test_load_of_many_small_tensors(tmp_path):
    """load(copy=True) reads the small tensors of a file in one call into one
    allocation: every array is still right, private, writable and alone."""
    rng = np.random.default_rng(5)
    src = {}
    for i in range(300):
        dt = [np.float32, np.int8, np.float64, np.uint16, np.bool_][i % 5]
        shape = [(7,), (3, 5), (), (0, 4), (2, 1, 3)][i % 5]
        src[f"t{i:03d}"] = (rng.standard_normal(shape) * 50).astype(dt)
    src["big"] = rng.standard_normal(40000).astype(np.float32)  # over the shared block size
    src["same"] = src["t001"]  # stored once (an alias), loaded as one object
    path = tmp_path / "m.cairn"
    cairn.save(src, path, sync=False)
    got = cairn.load(path)
    assert list(got) == sorted(src)
    for name, a in src.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape, name
        assert np.array_equal(got[name], a), name
        assert got[name].flags.writeable, name
    assert got["same"] is got["t001"]
    before = got["t006"].copy()
    got["t005"][...] = 99  # a neighbour in the shared block
    assert np.array_equal(got["t006"], before)
    with cairn.open(path) as f:
        with pytest.raises(ValueError):
            f._f.read_many(np.empty(8, np.uint8), np.array([0, 2, 4, 8], np.uint64))
