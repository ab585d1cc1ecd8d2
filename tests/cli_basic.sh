#!/usr/bin/env bash
# cli_basic.sh -- the `cairn` command line is a contract: commands, output
# that scripts read, and exit codes (0 ok, 1 bad input, 2 usage, 3 I/O).
. "$(dirname "$0")/lib/cli.sh"

skip_unless_python "import numpy" "numpy not importable by $PY"
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.save('w.npy', rng.standard_normal((64, 32)).astype(np.float32))
np.save('b.npy', np.arange(32, dtype='>i8'))                       # big-endian
np.save('f.npy', np.asfortranarray(rng.standard_normal((5, 7))))   # Fortran order
np.save('h.npy', np.array([1.0, np.nan, np.inf, -np.inf, 0.5], dtype=np.float16))
np.save('s.npy', np.array(3.5))                                    # 0-d
np.save('e.npy', np.zeros((0, 3), dtype=np.uint8))                 # empty
np.save('obj.npy', np.array([{'a': 1}], dtype=object), allow_pickle=True)
PY

# help and usage
check "--help" 0 "$CLI" --help
expect_grep "help lists exit codes" "3  I/O error" out.txt
for c in pack unpack ls info meta verify cat show; do check "$c --help" 0 "$CLI" $c --help; done
check "no command" 2 "$CLI"
check "unknown command" 2 "$CLI" frobnicate
check "pack without inputs" 2 "$CLI" pack only.cairn
check "pack bad spec" 2 "$CLI" pack x.cairn noequals
check "ls without file" 2 "$CLI" ls

# pack / ls / info / verify
check "pack" 0 "$CLI" pack m.cairn w=w.npy b=b.npy f=f.npy h=h.npy s=s.npy e=e.npy
check "ls" 0 "$CLI" ls m.cairn
expect_grep "ls shows w" "^w  *F32  *\[64, 32\]  *8192  *none" out.txt
expect_grep "ls shows 0-d" "^s  *F64  *\[\]" out.txt
check "ls --json" 0 "$CLI" ls m.cairn --json
"$PY" -c "
import json; l = json.load(open('out.txt')); d = {t['name']: t for t in l}
assert d['e']['shape'] == [0, 3] and d['e']['bytes'] == 0, d['e']
assert d['b']['dtype'] == 'I64' and d['w']['codec'] == 'none'
" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: ls --json content"; }
check "info --json" 0 "$CLI" info m.cairn --json
"$PY" -c "
import json; i = json.load(open('out.txt'))
assert i['format'] == 'cairn' and i['version'] == '1.0' and i['tensors'] == 6 and i['alignment'] == 64, i
" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: info --json content"; }
check "verify" 0 "$CLI" verify m.cairn
check "meta" 0 "$CLI" meta m.cairn
expect_grep "meta of a file without metadata" "{}" out.txt

# cat gives little-endian C-order bytes; show gives statistics
check "cat" 0 "$CLI" cat m.cairn f
"$CLI" cat m.cairn f > f.bin
"$CLI" cat m.cairn b > b.bin
"$PY" -c "
import numpy as np
assert open('f.bin','rb').read() == np.ascontiguousarray(np.load('f.npy')).astype('<f8').tobytes()
assert open('b.bin','rb').read() == np.load('b.npy').astype('<i8').tobytes()
" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: cat bytes"; }
check "show" 0 "$CLI" show m.cairn h
expect_grep "show nan count" "^nan: *1" out.txt
expect_grep "show inf count" "^inf: *2" out.txt
expect_grep "show min" "^min: *0.5" out.txt
check "show missing tensor" 1 "$CLI" show m.cairn nope
expect_grep "names the tensor" "nope" err.txt
check "cat missing tensor" 1 "$CLI" cat m.cairn nope

# unpack writes NAME.npy that numpy reads back identically
check "unpack" 0 "$CLI" unpack m.cairn out
"$PY" -c "
import numpy as np
for n in 'wbfhse':
    a, b = np.load(n + '.npy'), np.load('out/' + n + '.npy')
    assert a.shape == b.shape and a.dtype.newbyteorder('<') == b.dtype.newbyteorder('<'), n
    assert a.astype(a.dtype.newbyteorder('<')).tobytes() == b.tobytes(), n
" && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: unpack round trip"; }

# bad input: object arrays refused; corrupt files name what is wrong
check "pack refuses object arrays" 1 "$CLI" pack o.cairn o=obj.npy
expect_grep "says why" "object" err.txt
test ! -e o.cairn && pass=$((pass+1)) || { fail=$((fail+1)); echo "FAIL: failed pack left a file"; }
cp m.cairn bad.cairn
off=$("$CLI" ls m.cairn --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='w'][0]['offset'] + 100)")
printf '\xff' | dd of=bad.cairn bs=1 seek="$off" conv=notrunc status=none
check "verify corrupt payload" 1 "$CLI" verify bad.cairn
expect_grep "verify names the tensor" "tensor 'w'" err.txt
expect_grep "verify says checksum" "checksum" err.txt
check "cat refuses corrupt tensor" 1 "$CLI" cat bad.cairn w
head -c 500 m.cairn > trunc.cairn
check "truncated file" 1 "$CLI" ls trunc.cairn
expect_grep "truncation explained" "truncated" err.txt
echo "plain text" > text.txt
check "unknown format" 1 "$CLI" info text.txt
check "missing file is an I/O error" 3 "$CLI" ls does-not-exist.cairn
check "unpack into an unwritable place" 3 "$CLI" unpack m.cairn /proc/forbidden
check "pack into a missing directory" 3 "$CLI" pack /nonexistent/dir/x.cairn w=w.npy

finish
