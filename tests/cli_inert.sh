#!/usr/bin/env bash
# cli_inert.sh -- `cairn meta FILE --inert` and `cairn ls FILE --inert` on real
# pickle.dumps and joblib.dump output (uncompressed and every compressor
# joblib has: zlib, gzip, bz2, xz, lzma, and lz4 when python's lz4 is there,
# each read to the same tree and bytes as the uncompressed dump): objects become
# {"$class", "args", "state"} nodes, NumPy arrays become tensors (a tensor
# reference in the tree), joblib's array bytes are read from the stream,
# nothing is run, and without --inert the file is refused naming the
# global. Skipped when $CAIRN_PYTHON lacks numpy or joblib.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy, joblib" "numpy/joblib absent"
cat_to() { "$CLI" cat "$@" >got.bin; } # got.bin: check itself writes out.txt

"$PY" - <<'PYEOF'
import base64, os, pickle, joblib, numpy as np
arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1.5, -2.0])}
for proto in (2, 3, 4, 5):
    with open("nested%d.pkl" % proto, "wb") as f:
        pickle.dump({"a": [1, 2, (3, "x")], "b": {"c": 1.5}, "s": b"\x00\x01",
                     "w": arrays["w"], "l": [np.array([7, 8], dtype=np.int64)]}, f, protocol=proto)
arrays["w"].tofile("w.raw")
for proto in (2, 3, 4, 5):  # an empty array: protocol 2 pickles its b"" as bytes()
    with open("empty%d.pkl" % proto, "wb") as f:
        pickle.dump({"e": np.zeros((0, 3), dtype=np.float32), "z": np.zeros(0, dtype=np.int64),
                     "w": arrays["w"]}, f, protocol=proto)
joblib.dump({"e": np.zeros((0, 3), dtype=np.float32)}, "empty.joblib")
np.array([7, 8], dtype=np.int64).tofile("l.raw")
joblib.dump(arrays, "arrays.joblib")
joblib.dump(arrays, "arrays_z.joblib", compress=3)
joblib.dump(arrays, "arrays_gz.joblib", compress=("gzip", 3))
joblib.dump(arrays, "arrays_bz2.joblib", compress=("bz2", 3))
joblib.dump(arrays, "arrays_xz.joblib", compress=("xz", 3))
joblib.dump(arrays, "arrays_lzma.joblib", compress=("lzma", 3))
try:
    import lz4.frame
    joblib.dump(arrays, "arrays_lz4.joblib", compress=("lz4", 3))
except ImportError:
    pass
arrays["b"].tofile("b.raw")
with open("w.b64", "w") as f:
    f.write(base64.b64encode(arrays["w"].tobytes()).decode())
class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))
with open("evil.pkl", "wb") as f:
    pickle.dump(Evil(), f)
try:
    from sklearn.linear_model import LinearRegression
    m = LinearRegression().fit(np.array([[1., 2], [2, 1], [3, 5], [4, 4]]), np.array([1., 2, 3, 5]))
    joblib.dump(m, "model.joblib")
    with open("model.pkl", "wb") as f:
        pickle.dump(m, f, protocol=4)
    m.coef_.tofile("coef.raw")
    np.float64(m.intercept_).tofile("intercept.raw")
    with open("coef.b64", "w") as f:
        f.write(base64.b64encode(m.coef_.tobytes()).decode())
except ImportError:
    pass
PYEOF

check "empty array in joblib" 0 "$CLI" ls empty.joblib --inert
expect_grep "joblib lists the (0, 3) array" "^e .*F32 .*\[0, 3\]" out.txt
for p in 2 3 4 5; do
    check "empty arrays, protocol $p" 0 "$CLI" ls empty$p.pkl --inert
    expect_grep "protocol $p lists the (0, 3) array" "^e .*F32 .*\[0, 3\] .* 0 " out.txt
    expect_grep "protocol $p lists the (0,) array" "^z .*I64 .*\[0\] " out.txt
    expect_grep "protocol $p lists the full array" "^w .*F32 .*\[2, 3\]" out.txt
    check "empty array cat, protocol $p" 0 "$CLI" cat empty$p.pkl e --inert
    [ ! -s out.txt ] && ok || bad "protocol $p: cat of an empty array wrote bytes"
    check "plain pickle protocol $p" 0 "$CLI" meta nested$p.pkl --inert
    expect_grep "protocol $p containers" '"c": 1.5' out.txt
    check "protocol $p arrays need --inert" 1 "$CLI" ls nested$p.pkl
    check "protocol $p ls" 0 "$CLI" ls nested$p.pkl --inert
    expect_grep "protocol $p array w" "^w .*F32 .*\[2, 3\]" out.txt
    expect_grep "protocol $p array in a list" "^l.0 .*I64" out.txt
    check "protocol $p cat w" 0 cat_to nested$p.pkl w --inert
    check "protocol $p w bytes" 0 cmp got.bin w.raw
    check "protocol $p cat l.0" 0 cat_to nested$p.pkl l.0 --inert
    check "protocol $p l.0 bytes" 0 cmp got.bin l.raw
done
compressed="arrays_z arrays_gz arrays_bz2 arrays_xz arrays_lzma"
if [ -f arrays_lz4.joblib ]; then compressed="$compressed arrays_lz4"
else echo "python's lz4 absent: joblib compress='lz4' skipped"; fi
for j in arrays $compressed; do
    check "$j refused without --inert" 1 "$CLI" meta $j.joblib
    expect_grep "$j names the global" "joblib.numpy_pickle.NumpyArrayWrapper is not allowed" err.txt
    expect_grep "$j suggests --inert" "--inert" err.txt
    check "$j as inert data" 0 "$CLI" meta $j.joblib --inert
    # an array is a tensor reference in the tree, not its wrapper and bytes
    expect_grep "$j array w is a tensor" '"\$tensor": "w"' out.txt
    expect_no_grep "$j no wrapper node" 'NumpyArrayWrapper' out.txt
    expect_no_grep "$j no array bytes" "$(cat w.b64)" out.txt
    check "ls $j --inert" 0 "$CLI" ls $j.joblib --inert
    expect_grep "$j lists w" "^w .*F32 .*\[2, 3\]" out.txt
    check "cat $j w" 0 cat_to $j.joblib w --inert
    check "$j w bytes" 0 cmp got.bin w.raw
done
# Each compressor's file: joblib's magic, then the same tree, list and bytes
# as the uncompressed dump.
declare -A magic=([arrays_z]=78 [arrays_gz]=1f8b [arrays_bz2]=425a68 [arrays_xz]=fd377a585a00
                  [arrays_lzma]=5d00 [arrays_lz4]=04224d18)
"$CLI" meta arrays.joblib --inert >plain_meta.txt
"$CLI" ls arrays.joblib --inert >plain_ls.txt
for j in $compressed; do
    m=${magic[$j]}
    got=$(od -An -tx1 -N$((${#m} / 2)) $j.joblib | tr -d ' \n')
    if [ "$got" = "$m" ]; then ok; else bad "$j starts with $got, not joblib's magic $m"; fi
    check "$j meta" 0 "$CLI" meta $j.joblib --inert
    cp out.txt meta.txt
    check "$j meta equals the uncompressed dump's" 0 cmp meta.txt plain_meta.txt
    "$CLI" ls $j.joblib --inert >ls.txt
    check "$j ls equals the uncompressed dump's" 0 cmp ls.txt plain_ls.txt
    check "$j ls" 0 "$CLI" ls $j.joblib --inert
    expect_grep "$j lists b" "^b .*F64 .*\[2\]" out.txt
    check "cat $j b" 0 cat_to $j.joblib b --inert
    check "$j b bytes" 0 cmp got.bin b.raw
done
# Damaged compressed files fail with a message naming the file, the
# compressor and the offset.
corrupt() { # corrupt IN OUT OFFSET: IN with one byte flipped (negative: from the end)
    "$PY" -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); d[int(sys.argv[3])]^=0x55; open(sys.argv[2],'wb').write(d)" "$@"
}
head -c -3 arrays_xz.joblib >trunc_xz.joblib
check "truncated xz refused" 1 "$CLI" meta trunc_xz.joblib --inert
expect_grep "truncated xz message" "trunc_xz.joblib: offset [0-9]*: the xz joblib stream is truncated" err.txt
corrupt arrays_xz.joblib bad_xz.joblib -40
check "corrupt xz refused" 1 "$CLI" meta bad_xz.joblib --inert
expect_grep "corrupt xz message" "bad_xz.joblib: offset [0-9]*: the xz joblib stream is corrupt" err.txt
head -c -9 arrays_lzma.joblib >trunc_lzma.joblib
check "truncated lzma refused" 1 "$CLI" meta trunc_lzma.joblib --inert
expect_grep "truncated lzma message" "trunc_lzma.joblib: offset [0-9]*: the lzma joblib stream" err.txt
if [ -f arrays_lz4.joblib ]; then
    head -c -1 arrays_lz4.joblib >trunc_lz4.joblib
    check "truncated lz4 refused" 1 "$CLI" meta trunc_lz4.joblib --inert
    expect_grep "truncated lz4 message" "trunc_lz4.joblib: offset [0-9]*: the lz4 joblib stream is truncated" err.txt
    # lz4.frame writes no content checksum by default: damage the frame header,
    # which has its own.
    corrupt arrays_lz4.joblib bad_lz4.joblib 5
    check "corrupt lz4 refused" 1 "$CLI" meta bad_lz4.joblib --inert
    expect_grep "corrupt lz4 message" "bad_lz4.joblib: offset [0-9]*: the lz4 joblib stream is corrupt (ERROR_" err.txt
fi
check "evil refused" 1 "$CLI" meta evil.pkl
expect_grep "evil names the global" "system is not allowed" err.txt
check "evil as inert data" 0 "$CLI" meta evil.pkl --inert
expect_grep "evil class" '"\$class": "posix.system"' out.txt
expect_grep "evil args" "touch pwned" out.txt
if [ -e pwned ]; then fail=$((fail+1)); echo "FAIL: something ran the pickle"; else pass=$((pass+1)); fi
if [ -f model.joblib ]; then
    check "model refused" 1 "$CLI" meta model.joblib
    expect_grep "model names the class" "sklearn.linear_model._base.LinearRegression is not allowed" err.txt
    check "model inert" 0 "$CLI" meta model.joblib --inert
    expect_grep "model class" '"\$class": "sklearn.linear_model._base.LinearRegression"' out.txt
    expect_grep "coef_ is a tensor" '"\$tensor": "state.coef_"' out.txt
    check "ls model --inert" 0 "$CLI" ls model.joblib --inert
    expect_grep "model lists coef_" "^state.coef_ .*F64" out.txt
    for file in model.joblib model.pkl; do
        check "cat $file coef_" 0 cat_to $file state.coef_ --inert
        check "$file coef_ equals numpy's" 0 cmp got.bin coef.raw
        check "cat $file intercept_" 0 cat_to $file state.intercept_ --inert
        check "$file intercept_ equals numpy's" 0 cmp got.bin intercept.raw
    done
    check "model.pkl inert" 0 "$CLI" meta model.pkl --inert
    expect_grep "model.pkl coef_ is a tensor" '"\$tensor": "state.coef_"' out.txt
    expect_no_grep "model.pkl no reconstruct node" "numpy.core.multiarray._reconstruct" out.txt
fi
# Many small arrays sharing one dtype object (the pickler memoizes it; issue
# 13.3): each array is a tensor whose dtype is not copied into the tree, so
# an ordinary dump of 50,000 one-element arrays (100,000 in protocol 2),
# each of which took ~1,800 B of a tree of 16 x the file's bytes + 16 MiB,
# is read, for protocols 2, 4, 5 and joblib; a list of 2^18 ints shared by
# 60 keys is still refused by that budget.
"$PY" - <<'GEN' || bad "generating the many-array files failed"
import pickle, joblib, numpy as np
def many(n): return {'layer%06d' % i: np.full(1, i, dtype=np.float32) for i in range(n)}
arrays = many(50000)
for p in (4, 5):
    pickle.dump(arrays, open('many%d.pkl' % p, 'wb'), protocol=p)
# protocol 2 spends more of the file's bytes on each array: twice as many
pickle.dump(many(100000), open('many2.pkl', 'wb'), protocol=2)
joblib.dump(arrays, 'many.joblib')
big = list(range(1 << 18))
with_big = dict(arrays, **{'shared%02d' % i: big for i in range(60)})
pickle.dump(with_big, open('shared_list.pkl', 'wb'), protocol=4)
joblib.dump(with_big, 'shared_list.joblib')
np.full(1, 49999, dtype=np.float32).tofile('last.raw')
GEN
for f in many2.pkl many4.pkl many5.pkl many.joblib; do
    want=50000; [ $f = many2.pkl ] && want=100000
    check "$f: $want arrays as inert data" 0 "$CLI" ls $f --inert
    n=$(grep -c '^layer[0-9]* .*F32 .*\[1\]' out.txt)
    if [ "$n" = $want ]; then ok; else bad "$f lists $n arrays, not $want"; fi
    check "cat $f layer049999" 0 cat_to $f layer049999 --inert
    check "$f layer049999 bytes" 0 cmp got.bin last.raw
done
for f in shared_list.pkl shared_list.joblib; do
    check "$f: a list shared by 60 keys refused" 1 "$CLI" ls $f --inert
    expect_grep "$f names the budget" "shared objects expand too far" err.txt
done
finish
