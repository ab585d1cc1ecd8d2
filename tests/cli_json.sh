#!/usr/bin/env bash
# cli_json.sh -- `cairn convert FILE OUT.json` and back: Python's json.load
# reads the document and gets the values NumPy has (tolist() for numbers;
# NaN/Infinity as strings that numpy.asarray turns back into the same
# floats), and converting the JSON back gives the same bits for every
# dtype NumPy has, BF16 from a hand-made safetensors file, complex, empty
# and scalar arrays. Skipped when $CAIRN_PYTHON lacks numpy.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy" "numpy absent"

"$PY" - <<'PYEOF'
import json, struct, numpy as np
a = {
    "f64": np.array([0.1, -0.0, 1e-310, np.nan, -np.inf, 1.7976931348623157e308]),
    "f32": np.array([[0.1, -np.nan, np.inf], [1e-45, -0.0, 3.4028235e38]], dtype=np.float32),
    "f16": np.array([1.0, 65504.0, 6e-8, np.nan, -np.inf], dtype=np.float16),
    "i64": np.array([-2**63, 2**63 - 1, 0], dtype=np.int64),
    "u64": np.array([2**64 - 1, 2**63], dtype=np.uint64),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u16": np.array([[0, 65535]], dtype=np.uint16),
    "i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
    "b": np.array([True, False, True]),
    "c64": np.array([1 + 2j, -0.0 - 1j], dtype=np.complex64),
    "c128": np.array(3.5 - 0.25j),
    "scalar": np.array(2.5, dtype=np.float32),
    "empty": np.zeros((2, 0, 3), dtype=np.int16),
    "u8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
}
np.savez("a.npz", **a)
# BF16 in a hand-made safetensors file: 1.0, -3.140625, NaN, -Inf
hdr = json.dumps({"__metadata__": {"epoch": "7"},
                  "bf": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
hdr += b" " * (-len(hdr) % 8)
with open("bf.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<4H", 0x3F80, 0xC049, 0x7FC0, 0xFF80))
PYEOF

check "npz to json" 0 "$CLI" convert a.npz a.json
check "json to npz" 0 "$CLI" convert a.json back.npz
check "json detected by content" 0 "$CLI" info a.json
expect_grep "info names the format" "format: *json" out.txt
check "ls json" 0 "$CLI" ls a.json
check "diff npz json" 0 "$CLI" diff a.npz a.json
check "bf16 to json" 0 "$CLI" convert bf.safetensors bf.json
check "json to safetensors" 0 "$CLI" convert bf.json bf2.safetensors
check "bf16 bytes kept" 0 "$CLI" diff bf.safetensors bf2.safetensors
check "json round trip through cairn" 0 "$CLI" convert a.json a.cairn
check "cairn back to json" 0 "$CLI" convert a.cairn a2.json
cmp -s a.json a2.json && ok || bad "a.json -> a.cairn -> a2.json changed the text"

"$PY" - <<'PYEOF' && ok || bad "json.load disagrees with NumPy, or the round trip changed bits"
import json, sys, numpy as np
src = np.load("a.npz")
doc = json.load(open("a.json"))
assert doc["format"] == "cairn-json" and doc["version"] == 1, doc["format"]
byname = {t["name"]: t for t in doc["tensors"]}
assert sorted(byname) == sorted(src.files), sorted(byname)
def special(x):  # the strings JSON numbers cannot hold
    if isinstance(x, list):
        return [special(y) for y in x]
    return float(x) if isinstance(x, str) else x
bad = 0
for name in src.files:
    arr, t = src[name], byname[name]
    if t["dtype"] != {"f": "F", "i": "I", "u": "U", "b": "BOOL", "c": "C"}[arr.dtype.kind] + \
            ("" if arr.dtype.kind == "b" else str(arr.dtype.itemsize * 8)):
        print(name, "dtype", t["dtype"]); bad += 1
    if t["shape"] != list(arr.shape):
        print(name, "shape", t["shape"]); bad += 1
    data = t["data"]
    if arr.dtype.kind == "c":
        def pair(x):
            return [pair(y) for y in x] if isinstance(x, list) and isinstance(x[0], list) \
                else complex(special(x[0]), special(x[1]))
        got = np.array(pair(data) if arr.ndim else complex(*special(data)), dtype=arr.dtype)
    else:
        got = np.asarray(special(data), dtype=arr.dtype).reshape(arr.shape)
        # json.load gives the very numbers tolist() gives, where JSON has numbers
        finite = arr.dtype.kind != "f" or np.isfinite(arr).all()
        if finite and data != arr.tolist():
            print(name, "json.load", data, "tolist", arr.tolist()); bad += 1
    if got.tobytes() != arr.tobytes():
        print(name, "values", got, arr); bad += 1
back = np.load("back.npz")
for name in src.files:
    if back[name].dtype != src[name].dtype or back[name].tobytes() != src[name].tobytes():
        print(name, "changed by the round trip"); bad += 1
bf = json.load(open("bf.json"))
t = bf["tensors"][0]
if t["dtype"] != "BF16" or t["data"] != [1.0, -3.140625, "NaN", "-Infinity"]:
    print("bf16", t); bad += 1
if bf["metadata"].get("__metadata__", bf["metadata"]).get("epoch") != "7":
    print("metadata", bf["metadata"]); bad += 1
sys.exit(1 if bad else 0)
PYEOF

# the reader is strict: a damaged document is refused, naming where
sed 's/"data":/"dat":/' a.json > broken.json
check "damaged json refused" 1 "$CLI" ls broken.json
expect_grep "says where" "json at offset [0-9]*: a tensor's keys must be" err.txt
check "convert --help lists json" 0 "$CLI" convert --help
expect_grep "help names the json format" "hdf5, json)" out.txt
expect_grep "help names the .json extension" "\.hdf5, \.json" out.txt
finish
