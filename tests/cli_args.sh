#!/usr/bin/env bash
# cli_args.sh -- the command line as users type it: options anywhere
# (getopt-style) and "--" for every command, --inert accepted by every
# command that opens a file (a pickle's arrays converted, verified, diffed,
# unpacked), help that names every format, and `ls` columns aligned by
# display width for non-ASCII names. Skipped when $CAIRN_PYTHON lacks numpy.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy" "numpy absent"

"$PY" - <<'PYEOF'
import pickle, numpy as np
w = np.arange(6, dtype=np.float32).reshape(2, 3)
pickle.dump({"w": w, "b": np.array([1.5, -2.0]), "cfg": {"lr": 0.1}}, open("m.pkl", "wb"),
            protocol=4)
pickle.dump(w, open("one.pkl", "wb"), protocol=2)
w.tofile("w.raw")
np.save("w.npy", w)
PYEOF

# 9. options before positional arguments, and "--"
check "meta --inert FILE" 0 "$CLI" meta --inert m.pkl
expect_grep "meta --inert FILE prints the tree" '"lr": 0.1' out.txt
check "cat --inert FILE NAME" 0 "$CLI" cat --inert m.pkl w
cmp -s out.txt w.raw && ok || bad "cat --inert FILE NAME: wrong bytes"
check "cat FILE --inert NAME" 0 "$CLI" cat m.pkl --inert w
cmp -s out.txt w.raw && ok || bad "cat FILE --inert NAME: wrong bytes"
check "ls --json FILE" 0 "$CLI" ls --json w.npy
check "show --count 2 FILE NAME" 0 "$CLI" show --count 2 w.npy array
expect_grep "show --count first" "first:  \[0, 1, ...\]" out.txt
check "pack --no-sync OUT SPEC" 0 "$CLI" pack --no-sync p.cairn w=w.npy
check "unpack --inert IN DIR" 0 "$CLI" unpack --inert m.pkl un
cmp -s un/w.npy w.npy && ok || bad "unpack --inert: un/w.npy differs from NumPy's"
check "diff --json A B" 0 "$CLI" diff --json p.cairn p.cairn
check "verify --pubkey first" 3 "$CLI" verify --pubkey missing.pub p.cairn
check "keygen -- A B" 0 "$CLI" keygen -- k.sec k.pub
check "sign --key first" 0 "$CLI" sign --key k.sec --no-sync p.cairn
cp w.npy ./--odd.npy
check "-- makes --odd.npy a file name" 0 "$CLI" ls -- --odd.npy
expect_grep "-- reads the file" "^array " out.txt
check "without --, --odd.npy is an unknown option" 2 "$CLI" ls --odd.npy
expect_grep "names the option" "unknown option '--odd.npy'" err.txt
check "meta with two files" 2 "$CLI" meta w.npy w.npy
check "keygen refuses --inert" 2 "$CLI" keygen --inert a b

# 6. --inert for every command that opens a file
check "verify --inert" 0 "$CLI" verify m.pkl --inert
expect_grep "verify counts the arrays" "ok (2 tensors)" out.txt
check "verify without --inert refuses" 1 "$CLI" verify m.pkl
check "info --inert" 0 "$CLI" info --inert m.pkl
expect_grep "info names the format" "format: *pickle" out.txt
check "diff --inert" 0 "$CLI" diff m.pkl m.pkl --inert
check "convert --inert" 0 "$CLI" convert m.pkl m.safetensors --inert
check "the converted file" 0 "$CLI" cat m.safetensors w
cmp -s out.txt w.raw && ok || bad "convert --inert: w differs"
check "convert without --inert refuses" 1 "$CLI" convert m.pkl n.safetensors
[ ! -e n.safetensors ] && ok || bad "a refused convert left n.safetensors"
check "pack --inert" 0 "$CLI" pack q.cairn --inert w=one.pkl
check "the packed array" 0 "$CLI" cat q.cairn w
cmp -s out.txt w.raw && ok || bad "pack --inert: w differs"
check "pack of a two-array pickle refuses" 1 "$CLI" pack q2.cairn w=m.pkl --inert

# 10. help that names every format and --inert
check "main help" 0 "$CLI" --help
for w in .npz .safetensors .gguf .pt .params HDF5 --inert "anywhere"; do
    expect_grep "main help names $w" "$w" out.txt
done
check "convert --help" 0 "$CLI" convert --help
for w in mxnet hdf5 "\.h5" "\.params" "\.pt" "--inert"; do
    expect_grep "convert help names $w" "$w" out.txt
done
for c in info verify unpack diff convert pack; do
    check "$c --help" 0 "$CLI" $c --help
    expect_grep "$c help shows --inert" "--inert" out.txt
done

# 11. ls pads names by display width: two-byte Greek, wide CJK, a combining mark
check "pack non-ASCII names" 0 "$CLI" pack u.cairn "αβγ=w.npy" "日本語=w.npy" "abc=w.npy" \
    "$(printf 'e\xcc\x81x')=w.npy"
check "ls non-ASCII names" 0 "$CLI" ls u.cairn
"$PY" - out.txt <<'PYEOF' && ok || bad "ls columns not aligned by display width"
import sys, unicodedata
def width(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in s)
cols = set()
for line in open(sys.argv[1], encoding="utf-8"):
    cols.add(width(line[:line.index(" F32")]))
print("dtype column at", cols)
sys.exit(0 if len(cols) == 1 else 1)
PYEOF

finish
