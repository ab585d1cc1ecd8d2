#!/usr/bin/env bash
# cli_convert.sh -- `cairn convert IN OUT [--to FORMAT]` between every pair of
# formats: tensors byte-identical after a round trip, metadata carried where
# the target holds it (a warning naming what it cannot), refusals that leave
# no output behind; --shard-size writes a sharded safetensors model.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy" "numpy missing"
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(3)
np.save('w.npy', rng.standard_normal((16, 8)).astype(np.float32))
np.save('h.npy', rng.standard_normal((3, 5)).astype(np.float16))
np.save('i.npy', np.arange(-5, 5, dtype=np.int64))
np.save('s.npy', np.array(2.5))
np.save('u.npy', np.arange(6, dtype=np.uint8).reshape(2, 3))
PY
check "pack" 0 "$CLI" pack m.cairn w=w.npy h=h.npy i=i.npy s=s.npy u=u.npy

# native -> X -> native: tensors identical, for every format that holds them all
for fmt in safetensors cairn npz; do
    if ! "$CLI" convert --help | grep -q "$fmt"; then continue; fi
    check "to $fmt" 0 "$CLI" convert m.cairn "m.$fmt" --to "$fmt"
    check "ls $fmt" 0 "$CLI" ls "m.$fmt"
    check "back from $fmt" 0 "$CLI" convert "m.$fmt" "back_$fmt.cairn"
    check "identical after $fmt" 0 "$CLI" diff --tensors-only m.cairn "back_$fmt.cairn"
done
# GGUF holds no U8 plain tensors: the refusal names the tensor and leaves nothing behind
check "gguf refuses U8" 1 "$CLI" convert m.cairn m.gguf
expect_grep "names the tensor" "'u'" err.txt
test ! -e m.gguf && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: a refused convert left m.gguf"; }
check "pack for gguf" 0 "$CLI" pack g.cairn w=w.npy h=h.npy i=i.npy s=s.npy
check "to gguf" 0 "$CLI" convert g.cairn g.gguf
check "gguf back" 0 "$CLI" convert g.gguf g_back.cairn
check "gguf identical" 0 "$CLI" diff --tensors-only g.cairn g_back.cairn
# safetensors <-> gguf directly
check "gguf to safetensors" 0 "$CLI" convert g.gguf g.safetensors
check "safetensors to gguf" 0 "$CLI" convert g.safetensors g2.gguf
check "through both" 0 "$CLI" diff --tensors-only g.cairn g2.gguf
# npy holds one tensor; the extension picks the format
check "npy refuses two tensors" 1 "$CLI" convert m.cairn two.npy
test ! -e two.npy && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: two.npy left behind"; }
check "one tensor to npy" 0 "$CLI" convert w.npy w2.npy
cmp -s w.npy w2.npy && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: npy -> npy not byte-identical"; }
check "npy to safetensors" 0 "$CLI" convert w.npy w.safetensors
"$PY" - <<'PY' && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: safetensors bytes"; }
import json, struct, numpy as np
b = open('w.safetensors', 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
t = h['array']
a = np.frombuffer(b[8 + n + t['data_offsets'][0]: 8 + n + t['data_offsets'][1]], '<f4').reshape(t['shape'])
assert t['dtype'] == 'F32' and np.array_equal(a, np.load('w.npy'))
PY
# metadata: carried to safetensors, warned about for npy
"$PY" - <<'PY'
import json, struct
hdr = {"__metadata__": {"epoch": "7", "note": "hi"}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
j = json.dumps(hdr).encode(); j += b' ' * (-len(j) % 8)
open('meta.safetensors', 'wb').write(struct.pack('<Q', len(j)) + j + struct.pack('<2f', 1, 2))
PY
check "safetensors to cairn keeps metadata" 0 "$CLI" convert meta.safetensors meta.cairn
check "meta" 0 "$CLI" meta meta.cairn
expect_grep "metadata carried" '"epoch": "7"' out.txt
check "to npy warns" 0 "$CLI" convert meta.cairn meta.npy
expect_grep "warning names the keys" "cannot hold 2 metadata keys, left out: epoch note" err.txt
# GGUF holds typed values but not tensor references: those keys alone are
# left out (named, with the reason), the rest is carried
"$PY" - <<'PY'
import json, struct
tree = {"note": "hi", "epoch": 7, "ref": {"$tensor": "x"}}
hdr = {"__metadata__": {"note": "hi", "cairn.meta": json.dumps(tree)}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
j = json.dumps(hdr).encode(); j += b' ' * (-len(j) % 8)
open('ref.safetensors', 'wb').write(struct.pack('<Q', len(j)) + j + struct.pack('<2f', 1, 2))
PY
check "tree with a tensor reference to gguf" 0 "$CLI" convert ref.safetensors ref.gguf
expect_grep "only the reference is left out" "cannot hold 1 metadata key, left out: ref (.*tensor reference" err.txt
check "meta gguf" 0 "$CLI" meta ref.gguf
expect_grep "typed values carried" '"epoch": 7' out.txt
expect_grep "strings carried" '"note": "hi"' out.txt
check "gguf tensors" 0 "$CLI" diff --tensors-only ref.safetensors ref.gguf
# PyTorch .pt: native -> .pt -> native identical, read by cairn's own reader
check "to pt" 0 "$CLI" convert m.cairn m.pt
check "ls pt" 0 "$CLI" ls m.pt
check "back from pt" 0 "$CLI" convert m.pt back_pt.cairn
check "identical after pt" 0 "$CLI" diff --tensors-only m.cairn back_pt.cairn
"$PY" -c 'import numpy as np; np.save("u16.npy", np.arange(4, dtype=np.uint16))'
check "pt refuses U16" 1 "$CLI" convert u16.npy u16.pt
expect_grep "names the tensor and dtype" "'array'.*U16" err.txt
test ! -e u16.pt && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: a refused convert left u16.pt"; }
if "$PY" -c 'import torch' 2>/dev/null; then
    # torch loads what cairn wrote (weights_only), and a file torch wrote
    # survives .pt -> cairn -> .pt: the same tensors and containers.
    "$PY" - <<'PY' && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: torch reads m.pt"; }
import collections, numpy as np, torch
sd = torch.load("m.pt", weights_only=True)
assert type(sd) is collections.OrderedDict and list(sd) == ["h", "i", "s", "u", "w"], list(sd)
for k in sd:
    assert np.array_equal(sd[k].numpy(), np.load(f"{k}.npy")), k
w = torch.arange(12.0).reshape(3, 4)
obj = {"model": collections.OrderedDict([("fc.weight", w), ("fc.bias", torch.ones(3, dtype=torch.float64))]),
       "epoch": 7, "names": ["a", "b"], "tied": w, "mask": torch.tensor([True, False])}
torch.save(obj, "t.pt")
PY
    check "torch file to cairn" 0 "$CLI" convert t.pt t.cairn
    check "and back to pt" 0 "$CLI" convert t.cairn t2.pt
    "$PY" - <<'PY' && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: t.pt -> cairn -> t2.pt"; }
import torch
a, b = torch.load("t.pt", weights_only=True), torch.load("t2.pt", weights_only=True)
def same(x, y):
    if isinstance(x, torch.Tensor):
        return type(y) is torch.Tensor and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and list(x) == list(y) and all(same(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return type(y) is list and len(x) == len(y) and all(map(same, x, y))
    return type(x) is type(y) and x == y
assert same(a, b), (a, b)
PY
else
    echo "torch not importable: torch.load checks of .pt conversions skipped"
fi
# sharded safetensors (--shard-size): m.cairn holds, in its (name) order,
# h 30 bytes, i 80, s 8, u 6, w 512. With 100 bytes a shard: [h] [i s u] [w],
# w larger than a shard sits alone.
mkdir -p sh
check "sharded" 0 "$CLI" convert m.cairn sh/model.safetensors --shard-size 100
for f in model-00001-of-00003.safetensors model-00002-of-00003.safetensors \
         model-00003-of-00003.safetensors model.safetensors.index.json; do
    test -f "sh/$f" && ok || bad "sharded: no sh/$f"
done
test ! -e sh/model.safetensors && ok || bad "sharded: a plain sh/model.safetensors was written too"
check "ls index" 0 "$CLI" ls sh/model.safetensors.index.json
for t in h i s u w; do expect_grep "ls lists $t" "^$t " out.txt; done
check "index identical" 0 "$CLI" diff --tensors-only m.cairn sh/model.safetensors.index.json
"$PY" - <<'PY' && ok || bad "sharded: index or shard contents"
import json, struct, numpy as np
idx = json.load(open('sh/model.safetensors.index.json'))
want = {'h': 1, 'i': 2, 's': 2, 'u': 2, 'w': 3}
assert idx['metadata'] == {'total_size': 30 + 80 + 8 + 6 + 512}, idx['metadata']
assert idx['weight_map'] == {t: 'model-%05d-of-00003.safetensors' % k for t, k in want.items()}, idx
dt = {'F32': '<f4', 'F16': '<f2', 'I64': '<i8', 'F64': '<f8', 'U8': 'u1'}
for k in (1, 2, 3):
    b = open('sh/model-%05d-of-00003.safetensors' % k, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop('__metadata__', None)
    assert sorted(h) == sorted(t for t, s in want.items() if s == k), (k, h)
    for t, e in h.items():
        lo, hi = e['data_offsets']
        a = np.frombuffer(b[8 + n + lo:8 + n + hi], dt[e['dtype']]).reshape(e['shape'])
        assert np.array_equal(a, np.load(t + '.npy')), t
PY
check "sharded again replaces the files" 0 "$CLI" convert m.cairn sh/model.safetensors --shard-size 100
check "still identical" 0 "$CLI" diff --tensors-only m.cairn sh/model.safetensors.index.json
# everything fits: one plain file, no index, no shard names
check "fits in one shard" 0 "$CLI" convert m.cairn fit.safetensors --shard-size 1K
test -f fit.safetensors && ok || bad "fits: no fit.safetensors"
test ! -e fit.safetensors.index.json && ! ls fit-0* >/dev/null 2>&1 && ok || bad "fits: an index or shard was written"
check "fits identical" 0 "$CLI" diff --tensors-only m.cairn fit.safetensors
# K is 1024, KB 1000 (huggingface_hub's "5GB"): x 1000 bytes + y 10 bytes
"$PY" -c 'import numpy as np; np.save("x.npy", np.zeros(250, np.float32)); np.save("y.npy", np.ones(10, np.uint8))'
check "pack xy" 0 "$CLI" pack xy.cairn x=x.npy y=y.npy
check "1K fits 1010 bytes" 0 "$CLI" convert xy.cairn k.safetensors --shard-size 1K
test -f k.safetensors && test ! -e k.safetensors.index.json && ok || bad "1K: not one plain file"
check "1kb does not" 0 "$CLI" convert xy.cairn kb.safetensors --shard-size 1kb
test -f kb-00001-of-00002.safetensors && test -f kb-00002-of-00002.safetensors && ok || bad "1KB: not two shards"
check "1KB index" 0 "$CLI" diff --tensors-only xy.cairn kb.safetensors.index.json
# metadata: every shard carries it, but keys holding tensor references
# (a shard names only its own tensors) are left out with a warning
"$PY" - <<'PY'
import json, struct
tree = {"note": "hi", "epoch": 7, "ref": {"$tensor": "x"}}
hdr = {"__metadata__": {"note": "hi", "cairn.meta": json.dumps(tree)},
       "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
       "y": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}
j = json.dumps(hdr).encode(); j += b' ' * (-len(j) % 8)
open('ref2.safetensors', 'wb').write(struct.pack('<Q', len(j)) + j + struct.pack('<4f', 1, 2, 3, 4))
PY
check "sharded with a tensor reference" 0 "$CLI" convert ref2.safetensors rs.safetensors --shard-size 8
expect_grep "reference left out, named" "leaves out metadata holding tensor references: ref (1 key)$" err.txt
test "$(grep -c warning err.txt)" = 1 && ok || bad "the warning is printed once"
check "meta of the index" 0 "$CLI" meta rs.safetensors.index.json
expect_grep "typed values in the shards" '"epoch": 7' out.txt
expect_grep "strings in the shards" '"note": "hi"' out.txt
for k in 1 2; do
    check "meta shard $k" 0 "$CLI" meta "rs-0000$k-of-00002.safetensors"
    expect_grep "shard $k carries the metadata" '"epoch": 7' out.txt
done
check "reference tensors" 0 "$CLI" diff --tensors-only ref2.safetensors rs.safetensors.index.json
# refusals: usage errors, nothing written
check "shard-size needs safetensors" 2 "$CLI" convert m.cairn bad.npz --to npz --shard-size 100
check "shard-size with --to npz" 2 "$CLI" convert m.cairn bad.safetensors --to npz --shard-size 100
expect_grep "names the rule" "safetensors only" err.txt
check "shard-size needs .safetensors" 2 "$CLI" convert m.cairn bad.bin --shard-size 100
expect_grep "names OUT" "NAME.safetensors, got 'bad.bin'" err.txt
check "shard-size with --to safetensors still needs the suffix" 2 "$CLI" convert m.cairn bad.st --to safetensors --shard-size 100
check "hidden shard names" 2 "$CLI" convert m.cairn .safetensors --shard-size 100
check "shard-size 0" 2 "$CLI" convert m.cairn bad.safetensors --shard-size 0
check "shard-size 0G" 2 "$CLI" convert m.cairn bad.safetensors --shard-size 0G
check "shard-size unparsable" 2 "$CLI" convert m.cairn bad.safetensors --shard-size lots
check "shard-size negative" 2 "$CLI" convert m.cairn bad.safetensors --shard-size -5
check "shard-size unknown unit" 2 "$CLI" convert m.cairn bad.safetensors --shard-size 5X
expect_grep "names the text" "'5X'" err.txt
check "shard-size overflow" 2 "$CLI" convert m.cairn bad.safetensors --shard-size 99999999999T
check "shard-size without a value" 2 "$CLI" convert m.cairn bad.safetensors --shard-size
! ls bad* .safetensors* >/dev/null 2>&1 && ok || bad "a refused --shard-size left output behind"
check "unwritable shards" 3 "$CLI" convert m.cairn /nonexistent/dir/x.safetensors --shard-size 100
# GGUF: a list of lists would be an array of arrays, which ggml's reader
# (gguf_init_from_file) refuses, failing the whole file: the key is left out
# with a warning, the rest is written, and no array in the file holds arrays.
"$PY" - <<'PY'
import pickle, numpy as np
pickle.dump({"nested": [[1, 2], [3]], "blobs": [b"a"], "w": np.arange(4, dtype=np.float32),
             "flat": [1, 2], "name": "m"}, open("nest.pkl", "wb"), protocol=4)
PY
check "gguf leaves arrays of arrays out" 0 "$CLI" convert nest.pkl nest.gguf --inert
expect_grep "the warning names the key" "left out:.* nested" err.txt
expect_grep "the warning names bytes in a list" "left out:.* blobs" err.txt
expect_grep "the warning says why" "array of arrays" err.txt
"$PY" - nest.gguf <<'PY' && ok || bad "nest.gguf: an array of arrays was written"
import struct, sys
d = open(sys.argv[1], "rb").read()
pos = 8
def rd(f):
    global pos
    v = struct.unpack_from("<" + f, d, pos); pos += struct.calcsize(f); return v[0]
def skip(t):
    global pos
    if t == 8: pos += rd("Q")
    elif t == 9:
        et, n = rd("I"), rd("Q")
        assert et != 9, "array of arrays"
        for _ in range(n): skip(et)
    else: pos += {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[t]
nt, nkv = rd("Q"), rd("Q")
keys = []
for _ in range(nkv):
    keys.append(d[pos + 8:pos + 8 + rd("Q")].decode()); pos += len(keys[-1].encode())
    skip(rd("I"))
assert "flat" in keys and "name" in keys and "nested" not in keys, keys
PY
# usage and I/O errors
check "no args" 2 "$CLI" convert
check "unknown --to" 2 "$CLI" convert m.cairn x.bin --to tarball
check "missing input" 3 "$CLI" convert nope.cairn x.cairn
check "unwritable output" 3 "$CLI" convert m.cairn /nonexistent/dir/x.cairn
finish
