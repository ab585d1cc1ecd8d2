#!/usr/bin/env bash
# cli_diff.sh -- `cairn diff` is a contract scripts rely on: its lines, its
# --json report, its numbers (checked against NumPy) and its exit codes
# (0 identical, 1 different, 2 usage, 3 I/O). Metadata differences are
# covered by tests/test_diff.c, which can write metadata.
. "$(dirname "$0")/lib/cli.sh"
CHECK_SHOWS="out.txt err.txt"
expect_out() { # expect_out DESCRIPTION EXPECTED_STDOUT (exact, of the last check)
    if [ "$(cat out.txt)" = "$2" ]; then pass=$((pass+1)); else
        fail=$((fail+1)); echo "FAIL: $1: got:"; cat out.txt; echo "wanted:"; echo "$2"; fi
}
py_check() { # py_check DESCRIPTION PYTHON_CODE (out.txt holds the last stdout)
    if "$PY" -c "$2"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAIL: $1"; fi
}

skip_unless_python "import numpy" "numpy not importable by $PY"
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(7)
w = rng.standard_normal((64, 32)).astype(np.float32)
np.save('w.npy', w)
np.save('w64.npy', w.astype(np.float64))                  # dtype change
np.save('wT.npy', w.reshape(32, 64))                      # shape change
v = w.copy()
idx = rng.choice(w.size, 37, replace=False)
v.flat[idx] += rng.standard_normal(37).astype(np.float32) * 0.01
v.flat[idx[0]] = 0.0                                      # a zero on one side
np.save('v.npy', v)
np.save('r.npy', w * np.float32(1 + 1e-3))                 # relative change 1e-3
w0 = w.copy(); w0.flat[idx[1]] = 0.0; np.save('w0.npy', w0)  # b == 0 -> max rel inf
np.save('b.npy', np.arange(32, dtype=np.int64))
np.save('b_be.npy', np.arange(32, dtype='>i8'))           # big-endian: not zero-copy
np.save('f.npy', np.asfortranarray(rng.standard_normal((5, 7))))
np.save('f_c.npy', np.ascontiguousarray(np.load('f.npy')))
nan1 = np.array([1.0, np.nan, 3.0], dtype=np.float32)
np.save('nan1.npy', nan1); np.save('nan1b.npy', nan1.copy())
nan2 = nan1.view(np.uint32).copy(); nan2[1] ^= 1        # another NaN payload
np.save('nan2.npy', nan2.view(np.float32))
np.save('zero.npy', np.array([0.0, 1.0])); np.save('negzero.npy', np.array([-0.0, 1.0]))
m = np.iinfo(np.uint64).max
np.save('u1.npy', np.array([m, 0, 7], dtype=np.uint64))
np.save('u2.npy', np.array([0, m, 7], dtype=np.uint64))
np.save('i1.npy', np.array([np.iinfo(np.int64).min], dtype=np.int64))
np.save('i2.npy', np.array([np.iinfo(np.int64).max], dtype=np.int64))
c = (rng.standard_normal(50) + 1j * rng.standard_normal(50)).astype(np.complex64)
d = c.copy(); d[3] += 0.5j; d[9] = 0
np.save('c1.npy', c); np.save('c2.npy', d)
big = rng.standard_normal(300_001).astype(np.float32)     # several 64Ki slices
big2 = big.copy(); big2[rng.choice(big.size, 1000, replace=False)] *= 2
big2[-1] += 1
np.save('big1.npy', big); np.save('big2.npy', big2)
h = np.array([1.0, np.inf, -np.inf, 0.5], dtype=np.float16)
h2 = h.copy(); h2[1] = 1.0
np.save('h.npy', h); np.save('h2.npy', h2)
np.save('s.npy', np.array(3.5)); np.save('e.npy', np.zeros((0, 3), dtype=np.uint8))
PY

# help and usage
check "diff --help" 0 "$CLI" diff --help
expect_grep "help shows the synopsis" "usage: cairn diff A B" out.txt
expect_grep "help documents tolerances" "atol + rtol\*|b|" out.txt
check "main --help" 0 "$CLI" --help
expect_grep "main help lists diff" "^  diff A B" out.txt
check "diff without files" 2 "$CLI" diff
check "diff with one file" 2 "$CLI" diff w.npy
check "diff with three files" 2 "$CLI" diff w.npy w.npy w.npy
check "diff unknown option" 2 "$CLI" diff w.npy w.npy --frobnicate
check "--atol without value" 2 "$CLI" diff w.npy w.npy --atol
check "--atol not a number" 2 "$CLI" diff w.npy w.npy --atol abc
check "--atol negative" 2 "$CLI" diff w.npy w.npy --atol -1
check "--rtol nan" 2 "$CLI" diff w.npy w.npy --rtol nan
check "--rtol inf" 2 "$CLI" diff w.npy w.npy --rtol inf
check "missing file A is an I/O error" 3 "$CLI" diff nope.cairn w.npy
check "missing file B is an I/O error" 3 "$CLI" diff w.npy nope.cairn
expect_grep "names the missing file" "nope.cairn" err.txt
echo "plain text" > text.txt
check "unknown format is bad input" 1 "$CLI" diff w.npy text.txt

# identical: same file, other tensor order, other alignment, other format
"$CLI" pack m.cairn w=w.npy b=b.npy f=f.npy h=h.npy s=s.npy e=e.npy
"$CLI" pack m2.cairn e=e.npy s=s.npy h=h.npy f=f_c.npy b=b_be.npy w=w.npy --align 4096
check "a file against itself" 0 "$CLI" diff m.cairn m.cairn
expect_out "identical output" "identical"
check "order, alignment, byte order, Fortran order do not matter" 0 "$CLI" diff m.cairn m2.cairn
expect_out "identical despite layout" "identical"
check "--json of identical files" 0 "$CLI" diff m.cairn m2.cairn --json
py_check "identical json" "
import json; r = json.load(open('out.txt'))
assert r['identical'] is True and r['differences'] == 0 and r['mode'] == 'bitwise', r
assert r['only_in_a'] == r['only_in_b'] == r['dtype_shape'] == r['values'] == r['metadata'] == []
"
check "npy vs npy" 0 "$CLI" diff w.npy w.npy
check "big-endian npy vs little-endian npy" 0 "$CLI" diff b.npy b_be.npy
check "Fortran-order npy vs C-order npy" 0 "$CLI" diff f.npy f_c.npy
"$CLI" pack arr.cairn array=w.npy
check "npy vs cairn, same name and values" 0 "$CLI" diff w.npy arr.cairn
check "npy vs cairn, other names" 1 "$CLI" diff w.npy m.cairn
expect_out "across formats: only-in lines" "only in A: array (F32 [64, 32])
only in B: b (I64 [32])
only in B: e (U8 [0, 3])
only in B: f (F64 [5, 7])
only in B: h (F16 [4])
only in B: s (F64 [])
only in B: w (F32 [64, 32])
7 differences"

# only in A / only in B, sorted by name, grouped
"$CLI" pack x.cairn zeta=b.npy alpha=s.npy mid=w.npy
"$CLI" pack y.cairn mid=w.npy beta=e.npy omega=h.npy
check "only-in both ways" 1 "$CLI" diff x.cairn y.cairn
expect_out "only-in lines" "only in A: alpha (F64 [])
only in A: zeta (I64 [32])
only in B: beta (U8 [0, 3])
only in B: omega (F16 [4])
4 differences"
check "only-in --json" 1 "$CLI" diff x.cairn y.cairn --json
py_check "only-in json" "
import json; r = json.load(open('out.txt'))
assert r['identical'] is False and r['differences'] == 4
assert r['only_in_a'] == [{'name': 'alpha', 'dtype': 'F64', 'shape': []},
                          {'name': 'zeta', 'dtype': 'I64', 'shape': [32]}], r['only_in_a']
assert [t['name'] for t in r['only_in_b']] == ['beta', 'omega']
"

# dtype and shape changes; such tensors are not compared by value
"$CLI" pack d64.cairn w=w64.npy b=b.npy
"$CLI" pack dT.cairn w=wT.npy b=b.npy
"$CLI" pack d32.cairn w=w.npy b=b.npy
check "dtype change" 1 "$CLI" diff d32.cairn d64.cairn
expect_out "dtype line" "dtype/shape: w: F32 [64, 32] vs F64 [64, 32]
1 difference"
check "shape change" 1 "$CLI" diff d32.cairn dT.cairn
expect_out "shape line" "dtype/shape: w: F32 [64, 32] vs F32 [32, 64]
1 difference"
check "dtype change --json" 1 "$CLI" diff d32.cairn dT.cairn --json
py_check "dtype/shape json" "
import json; r = json.load(open('out.txt'))
assert r['dtype_shape'] == [{'name': 'w', 'a': {'dtype': 'F32', 'shape': [64, 32]},
                             'b': {'dtype': 'F32', 'shape': [32, 64]}}], r
"

# value changes: counts and maxima exactly as NumPy computes them in float64
cat > stats.py <<'PY'
import json, sys, numpy as np
def stats(fa, fb):
    a = np.load(fa).astype(np.complex128 if np.load(fa).dtype.kind == 'c' else np.float64).ravel()
    b = np.load(fb).astype(a.dtype).ravel()
    ok = ~(np.isnan(a) | np.isnan(b))
    d = np.zeros(a.shape)
    same = a == b
    d[ok & ~same] = np.abs(a - b)[ok & ~same]
    rel = np.zeros(a.shape)
    nz = ok & (b != 0)
    rel[nz] = d[nz] / np.abs(b[nz])
    rel[ok & (b == 0) & (a != 0)] = np.inf
    differ = np.load(fa).view(np.uint8).reshape(a.size, -1) != np.load(fb).view(np.uint8).reshape(a.size, -1)
    return int(differ.any(axis=1).sum()), a.size, d.max(), rel.max()
PY
for pair in "w v" "w0 v" "c1 c2" "big1 big2"; do
    set -- $pair
    "$CLI" pack A.cairn "t=$1.npy"; "$CLI" pack B.cairn "t=$2.npy"
    check "values $1 vs $2" 1 "$CLI" diff A.cairn B.cairn
    py_check "values line $1 vs $2" "
import sys; sys.path.insert(0, '.'); from stats import stats
k, n, ma, mr = stats('$1.npy', '$2.npy')
assert k > 0
want = 'values: t: %d of %d elements differ, max abs %.6g, max rel %.6g\n1 difference\n' % (k, n, ma, mr)
got = open('out.txt').read()
assert got == want, (got, want)
"
    check "values --json $1 vs $2" 1 "$CLI" diff A.cairn B.cairn --json
    py_check "values json $1 vs $2" "
import sys, json, math; sys.path.insert(0, '.'); from stats import stats
k, n, ma, mr = stats('$1.npy', '$2.npy')
v = json.load(open('out.txt'))['values'][0]
assert v['name'] == 't' and v['count'] == n and v['differing'] == k and v['nan_mismatches'] == 0, v
assert float(v['max_abs']) == ma, (v['max_abs'], ma)
assert float(v['max_rel']) == mr or (math.isinf(mr) and v['max_rel'] == 'inf'), (v['max_rel'], mr)
"
done
"$CLI" pack A.cairn t=w0.npy; "$CLI" pack B.cairn t=v.npy
check "b == 0, a != 0 gives max rel inf" 1 "$CLI" diff B.cairn A.cairn
expect_grep "inf spelled out" "max rel inf$" out.txt

# NaN, -0.0, Inf
check "NaNs with equal bits are equal" 0 "$CLI" diff nan1.npy nan1b.npy
check "NaNs with other bits differ" 1 "$CLI" diff nan1.npy nan2.npy
expect_out "NaN mismatch line" "values: array: 1 of 3 elements differ, max abs 0, max rel 0, 1 with NaN
1 difference"
check "NaN payloads equal numerically" 0 "$CLI" diff nan1.npy nan2.npy --atol 0
check "-0.0 vs 0.0 differs bitwise" 1 "$CLI" diff negzero.npy zero.npy
expect_out "-0 line" "values: array: 1 of 2 elements differ, max abs 0, max rel 0
1 difference"
check "-0.0 == 0.0 with --atol 0" 0 "$CLI" diff negzero.npy zero.npy --atol 0
check "-0.0 == 0.0 with --rtol 0" 0 "$CLI" diff negzero.npy zero.npy --rtol 0
check "Inf vs finite" 1 "$CLI" diff h.npy h2.npy
expect_grep "Inf difference" "1 of 4 elements differ, max abs inf, max rel inf" out.txt
check "Inf is not close to a finite value" 1 "$CLI" diff h.npy h2.npy --rtol 1000
check "Inf --json" 1 "$CLI" diff h.npy h2.npy --json
py_check "inf as a string in json" "
import json; v = json.load(open('out.txt'))['values'][0]
assert v['max_abs'] == 'inf' and v['max_rel'] == 'inf', v
"

# integers: exact differences at the extremes
check "U64 extremes" 1 "$CLI" diff u1.npy u2.npy
expect_out "U64 line" "values: array: 2 of 3 elements differ, max abs 18446744073709551615, max rel inf
1 difference"
check "U64 extremes --json" 1 "$CLI" diff u1.npy u2.npy --json
py_check "U64 difference exact in json" "
import json; v = json.load(open('out.txt'))['values'][0]
assert int(v['max_abs']) == 2**64 - 1 and v['differing'] == 2, v
"
check "I64 min vs max" 1 "$CLI" diff i1.npy i2.npy --json
py_check "I64 difference exact" "
import json; v = json.load(open('out.txt'))['values'][0]
assert int(v['max_abs']) == 2**64 - 1, v
"
"$PY" -c "import numpy as np; np.save('u3.npy', np.array([2**64-1, 0, 9], dtype=np.uint64))"
check "U64 small difference" 1 "$CLI" diff u1.npy u3.npy --json
py_check "small integer difference is a JSON integer" "
import json; v = json.load(open('out.txt'))['values'][0]
assert v['max_abs'] == 2 and isinstance(v['max_abs'], int), v
"
check "integers within atol" 0 "$CLI" diff u1.npy u3.npy --atol 2
check "integers beyond atol" 1 "$CLI" diff u1.npy u3.npy --atol 1.999

# tolerances, numpy.isclose style; the maxima still span every element
check "rtol above the change" 0 "$CLI" diff w.npy r.npy --rtol 2e-3
expect_out "identical with rtol" "identical"
check "rtol below the change" 1 "$CLI" diff w.npy r.npy --rtol 1e-4 --json
py_check "rtol json matches numpy.isclose" "
import json, numpy as np
a, b = np.load('w.npy').astype(np.float64), np.load('r.npy').astype(np.float64)
r = json.load(open('out.txt')); v = r['values'][0]
assert r['mode'] == 'numeric' and r['rtol'] == 1e-4 and r['atol'] == 0, r
assert v['differing'] == int((~np.isclose(a, b, rtol=1e-4, atol=0, equal_nan=True)).sum()), v
assert v['max_abs'] == np.abs(a - b).max(), v
"
check "atol only" 1 "$CLI" diff w.npy v.npy --atol 0.005 --json
py_check "atol json matches numpy.isclose" "
import json, numpy as np
a, b = np.load('w.npy').astype(np.float64), np.load('v.npy').astype(np.float64)
v = json.load(open('out.txt'))['values'][0]
k = int((~np.isclose(a, b, rtol=0, atol=0.005, equal_nan=True)).sum())
assert 0 < k < 37 and v['differing'] == k, (v, k)
"
check "atol and rtol together" 0 "$CLI" diff w.npy v.npy --atol 10 --rtol 1

# --tensors-only on metadata-less files changes nothing
check "--tensors-only identical" 0 "$CLI" diff m.cairn m2.cairn --tensors-only
check "--tensors-only different" 1 "$CLI" diff x.cairn y.cairn --tensors-only
expect_grep "--tensors-only still reports tensors" "4 differences" out.txt

# tensors of more than 16 MiB without a zero-copy view that ranged reads
# serve (compressed native, HDF5) are compared in 4 MiB windows: the same
# report as the whole arrays give, differences on both sides of a border
"$PY" - <<'PY'
import numpy as np
n = 5 * (1 << 20)                                          # 20 MiB of F32: 5 windows
a = (np.arange(n, dtype=np.float32) % 1000) / 7
b = a.copy()
for i in (0, (1 << 20) - 1, 1 << 20, 2_500_000, n - 1):
    b[i] += 1
np.save('wa.npy', a); np.save('wb.npy', b)
try:
    import h5py
except ImportError:
    h5py = None
if h5py:
    for name, x in (('wa.h5', a), ('wb.h5', b)):
        with h5py.File(name, 'w') as f:
            f.create_dataset('x', data=x.reshape(5, 1024, 1024), chunks=(1, 256, 1024),
                             compression='gzip')
PY
"$CLI" convert wa.npy wa.cairn --compress zstd --no-progress >/dev/null
"$CLI" convert wb.npy wb.cairn --compress zstd --no-progress >/dev/null
check "whole arrays" 1 "$CLI" diff wa.npy wb.npy --json
mv out.txt whole.json
check "compressed, in windows" 1 "$CLI" diff wa.cairn wb.cairn --json
py_check "windows report what the whole arrays do" "
import json
w, r = json.load(open('whole.json'))['values'], json.load(open('out.txt'))['values']
w[0]['name'] = r[0]['name']
assert r == w and r[0]['differing'] == 5, (r, w)
"
if [ -f wa.h5 ]; then
    check "HDF5, in windows" 1 "$CLI" diff wa.h5 wb.h5 --json
    py_check "HDF5 windows report what the whole arrays do" "
import json
w, r = json.load(open('whole.json'))['values'], json.load(open('out.txt'))['values']
for k in ('differing', 'max_abs', 'max_rel', 'count'):
    assert r[0].get(k) == w[0].get(k), (k, r, w)
"
else
    echo "h5py missing: HDF5 windows not checked"
fi

# a corrupt tensor is reported, with the usual exit code for bad input
cp m.cairn bad.cairn
off=$("$CLI" ls m.cairn --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='w'][0]['offset'] + 4)")
printf '\x7f' | dd of=bad.cairn bs=1 seek="$off" conv=notrunc status=none
check "diff sees changed bytes" 1 "$CLI" diff m.cairn bad.cairn
expect_grep "the damaged tensor" "^values: w: 1 of 2048 elements differ" out.txt

finish
