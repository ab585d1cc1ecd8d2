# hostile_gen.py -- hostile and edge-case .pt, joblib and pickle files for
# tests/test_hostile.c, made by real torch, numpy and joblib (and by hand
# where a writer would never produce them).
#
#   hostile_gen.py OUTDIR
#
# Writes the files and OUTDIR/manifest.txt, one line per check:
#   FILE <tab> refuse <tab> STATUS <tab> TEXT   opening must fail with STATUS, message holding TEXT
#   FILE <tab> array <tab> NAME <tab> NBYTES    opens (inert); tensor NAME has NBYTES bytes
#   FILE <tab> data <tab> KEY <tab> NBYTES      opens (inert); the joblib array under root key KEY
#                                               stays in the tree, its "data" NBYTES bytes long
#   FILE <tab> inflate <tab> NAME <tab> NBYTES  LIMIT by default; with max_inflate = 2 x NBYTES
#                                               it opens and tensor NAME reads as NBYTES bytes
#   FILE <tab> list <tab> KEY <tab> COUNT       opens (inert); root key KEY is a list of COUNT
#                                               items, held packed
# NBYTES always comes from NumPy or torch (arr.nbytes, t.nbytes), never from cairn's rules.
import collections
import io
import os
import pickle
import sys
import zipfile
import zlib

import joblib
import numpy as np
import torch

out = sys.argv[1]
man = open(os.path.join(out, "manifest.txt"), "w")
CORRUPT, UNSUPPORTED, LIMIT = 4, 5, 7


def line(*fields):
    man.write("\t".join(str(f) for f in fields) + "\n")


# ------------------------------------------------------------- .pt files

def tsave(name, obj):
    torch.save(obj, os.path.join(out, name))
    return name


# Finding 1: count x element size wraps (2^62 x 4 = 2^64) or the count itself does.
line(tsave("wrap.pt", {"x": torch.zeros(1).expand(2 ** 62)}), "refuse", CORRUPT, "overflows")
# Finding 2: one stored byte expanded to 80 MiB; 1 MiB of storage expanded 80 times fits
# the ratio limit (100 x what the file holds).
big = torch.zeros(1, dtype=torch.uint8).expand(80 << 20)
line(tsave("expand.pt", {"x": big}), "inflate", "x", big.numel() * big.element_size())
ratio = torch.zeros(1 << 20, dtype=torch.uint8).expand(80, 1 << 20)
line(tsave("expand_ratio.pt", {"x": ratio}), "array", "x", ratio.numel() * ratio.element_size())


# Finding 8: one storage key declared with two classes, or two sizes. torch.load keeps
# the first declaration, so such a file reads differently in torch and must be refused.
class Storage:
    def __init__(self, cls, key, numel):
        self.pid = ("storage", cls, key, "cpu", numel)


class Tensor:
    def __init__(self, storage, size, stride=(1,)):
        size = size if isinstance(size, tuple) else (size,)
        self.args = (storage, 0, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class PtPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def handmade_pt(name, obj, storages):
    buf = io.BytesIO()
    PtPickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(os.path.join(out, name), "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/version", "3\n")
        for key, data in storages.items():
            z.writestr("archive/data/" + key, data)
    return name


s16 = {"0": bytes(16)}
a = Storage(torch.FloatStorage, "0", 4)
ok = handmade_pt("twice_same.pt", {"a": Tensor(a, 4), "b": Tensor(Storage(torch.FloatStorage, "0", 4), 2)}, s16)
line(ok, "array", "b", 8)
# torch itself refuses to make this one: 2^64 elements over one stored float.
line(handmade_pt("wrap2.pt", {"x": Tensor(a, (2 ** 32, 2 ** 32), (0, 0))}, s16), "refuse", CORRUPT,
     "overflows")
twice = handmade_pt("twice_class.pt", {"a": Tensor(a, 4), "b": Tensor(Storage(torch.IntStorage, "0", 4), 4)}, s16)
assert torch.load(os.path.join(out, twice))["b"].dtype == torch.float32  # torch keeps the first
line(twice, "refuse", CORRUPT, "declared again")
line(handmade_pt("twice_size.pt", {"a": Tensor(a, 4), "b": Tensor(Storage(torch.FloatStorage, "0", 2), 2)}, s16),
     "refuse", CORRUPT, "declared again")

# Finding 3: a list of 1M small ints referenced 40 times (40 MB even packed), in a few KB
# once deflated.
K = 1 << 20
p = bytearray(b"\x80\x02}q\x00(X\x01\x00\x00\x00a]q\x01")
p += (b"(" + b"K\x07" * 1000 + b"e") * (K // 1000)
for key in "bcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN":
    p += b"X\x01\x00\x00\x00" + key.encode() + b"h\x01"
p += b"u."
shared = bytes(p)
with zipfile.ZipFile(os.path.join(out, "shared.pt"), "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", shared)
    z.writestr("archive/version", "3\n")
line("shared.pt", "refuse", LIMIT, "expand too far")
open(os.path.join(out, "shared.joblib"), "wb").write(zlib.compress(shared, 9))
line("shared.joblib", "refuse", LIMIT, "expand too far")
# Four references as a plain pickle: 2 MB the file holds in full, 32 MB of tree at most.
p4 = bytes(p[: p.index(b"X\x01\x00\x00\x00e")]) + b"u."
back = pickle.loads(p4)
assert sorted(back) == ["a", "b", "c", "d"] and back["d"] is back["a"]
open(os.path.join(out, "shared4.pkl"), "wb").write(p4)
line("shared4.pkl", "list", "d", len(back["d"]))

# ----------------------------------------------------------- joblib dtypes

# Finding 7: every kind, byte order and size NumPy pickles; "after" follows the array in
# the stream, so it reads right only if the array took exactly its bytes.
DTYPES = ["b1", "i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "u1", "<u2", ">u2", "<u4", ">u4",
          "<u8", ">u8", "<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "<g", ">g", "<c8", ">c8",
          "<c16", ">c16", "<G", "S1", "S7", "<U1", ">U1", "<U10", ">U10", "V1", "V5",
          "<M8[ns]", ">M8[s]", "<m8[us]", ">m8[D]",
          # records (fields): a V of the record's size, e.g. scikit-learn's tree nodes
          [("a", "<f4"), ("b", ">i2")], [("left", "<i8"), ("t", "<f8"), ("v", "<f4", (2,))],
          {"names": ["x"], "formats": ["<u2"], "offsets": [2], "itemsize": 7},
          [("in", [("p", "u1"), ("q", ">u4")]), ("r", "S3")]]
CAIRN_DTYPES = set("b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8 c16".split())
for n, s in enumerate(DTYPES):
    dt = np.dtype(s)
    x = np.zeros(3, dtype=dt)
    if dt.kind in "SU":
        x = np.array(["a", "b" * dt.itemsize, ""], dtype=dt)
    elif dt.kind == "V" and dt.fields:  # records: any bytes are a valid record
        x = np.frombuffer(bytes(range(3 * dt.itemsize)), dtype=dt).copy()
    elif dt.kind == "V":
        x = np.frombuffer(bytes(range(3 * dt.itemsize)), dtype=dt)
    name = "dtype%02d.joblib" % n
    after = np.arange(3, dtype="<i8")
    joblib.dump({"x": x, "after": after}, os.path.join(out, name))
    back = joblib.load(os.path.join(out, name))
    assert back["x"].dtype.itemsize == dt.itemsize and (back["after"] == after).all()
    line(name, "array", "after", after.nbytes)
    code = dt.str[1:]
    if dt.fields:
        assert code == "V%d" % dt.itemsize
    if code in CAIRN_DTYPES:
        line(name, "array", "x", x.nbytes)
    else:
        line(name, "data", "x", x.nbytes)

# The element size of S, U and V comes from the dtype's state, not the code's digits.
buf = io.BytesIO()
joblib.dump({"x": np.array(["a", "bcd", "ef"]), "after": np.arange(3)}, buf)
u3 = buf.getvalue()
assert u3.count(b"U3") == 1 and u3.count(b"NNNK\x0cK\x04K\x08") == 1


def patched(name, old, new):
    data = u3.replace(old, new)
    open(os.path.join(out, name), "wb").write(data)
    return data


data = patched("u_digits.joblib", b"U3", b"U9")  # NumPy: still 12 bytes an element
assert joblib.load(io.BytesIO(data))["x"].dtype.itemsize == 12
line("u_digits.joblib", "data", "x", 36)
line("u_digits.joblib", "array", "after", 24)
patched("u_object.joblib", b"NNNK\x0cK\x04K\x08", b"NNNK\x0cK\x04K\x3f")  # flags: objects
line("u_object.joblib", "refuse", UNSUPPORTED, "Python objects")
patched("u_odd.joblib", b"NNNK\x0cK\x04K\x08", b"NNNK\x0dK\x04K\x08")  # 13 bytes: no U size
line("u_odd.joblib", "refuse", UNSUPPORTED, "multiple of 4")
joblib.dump({"o": np.array([1, "x", None], dtype=object)}, os.path.join(out, "object.joblib"))
line("object.joblib", "refuse", UNSUPPORTED, "Python objects")
joblib.dump({"r": np.array([(1, "x")], dtype=[("i", "<i4"), ("o", "O")])},
            os.path.join(out, "record_object.joblib"))
line("record_object.joblib", "refuse", UNSUPPORTED, "Python objects")
joblib.dump({"names": np.array(["a", "bcd", "\u00e9x"]), "w": np.arange(5.0)},
            os.path.join(out, "unicode.joblib"), compress=3)
line("unicode.joblib", "data", "names", 36)
line("unicode.joblib", "array", "w", 40)

# Finding 9: two arrays whose paths spell one name.
joblib.dump({"a.b": np.arange(3), "a": {"b": np.arange(2)}}, os.path.join(out, "name_dot.joblib"))
line("name_dot.joblib", "refuse", UNSUPPORTED, "both named 'a.b'")
joblib.dump({"a.0": np.arange(3), "a": [np.arange(2)]}, os.path.join(out, "name_list.joblib"))
line("name_list.joblib", "refuse", UNSUPPORTED, "both named 'a.0'")
pickle.dump({"a.b": np.arange(3), "a": {"b": np.arange(2)}}, open(os.path.join(out, "name_dot.pkl"), "wb"),
            protocol=4)
line("name_dot.pkl", "refuse", UNSUPPORTED, "both named 'a.b'")
man.close()
