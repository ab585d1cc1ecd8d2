#!/usr/bin/env bash
# cli_hostile.sh -- hostile inputs at the command line: FIFOs and devices
# (given directly, as a shard named by an index, as a key file) are refused
# at once instead of blocking; names holding ESC, BEL, CR and newline print
# escaped in every human-readable output and exactly in JSON; HDF5 objects
# that are neither tensors nor metadata are named in a warning by ls and
# convert.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy" "numpy missing"

# --- FIFOs and devices: refused within the timeout, naming the kind
mkfifo fifo.safetensors
for cmd in ls info meta verify; do
    check "$cmd FIFO" 3 timeout 10 "$CLI" $cmd fifo.safetensors
    expect_grep "$cmd FIFO named" "a FIFO, not a regular file" err.txt
done
check "cat FIFO" 3 timeout 10 "$CLI" cat fifo.safetensors x
check "convert from FIFO" 3 timeout 10 "$CLI" convert fifo.safetensors out.cairn
check "ls char device" 3 timeout 10 "$CLI" ls /dev/zero
expect_grep "device named" "a character device" err.txt
"$PY" - <<'PY'
import json, struct
def st(path, tensors):
    hdr, data = {}, b''
    for name, payload in tensors:
        hdr[name] = {'dtype': 'U8', 'shape': [len(payload)],
                     'data_offsets': [len(data), len(data) + len(payload)]}
        data += payload
    h = json.dumps(hdr).encode()
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + data)
st('real-00001-of-00002.safetensors', [('a', b'\x01\x02')])
json.dump({'metadata': {}, 'weight_map': {'a': 'real-00001-of-00002.safetensors',
                                          'b': 'model-00002-of-00002.safetensors'}},
          open('model.safetensors.index.json', 'w'))
st('names.safetensors', [('title\x1b]0;pwned\x07', b'\x01'), ('cr\rforged', b'\x02'),
                         ('nl\nrow', b'\x03'), ('c1\u009b2J', b'\x04'), ('back\\slash', b'\x05')])
PY
mkfifo model-00002-of-00002.safetensors
check "shard FIFO" 3 timeout 10 "$CLI" ls model.safetensors.index.json
expect_grep "shard FIFO named" "a FIFO" err.txt
check "key file FIFO" 3 timeout 10 "$CLI" verify names.safetensors --pubkey fifo.safetensors

# --- terminal escapes: no control byte but the line ends, in every text output
no_controls() { # no_controls DESCRIPTION FILE: no C0 byte but \n, no DEL, no C1 (UTF-8 \xc2\x80-\x9f)
    if LC_ALL=C grep -q -P '[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]' "$2"; then
        bad "$1: raw control characters:"; cat -v "$2"
    else ok; fi
}
check "ls names" 0 "$CLI" ls names.safetensors
no_controls "ls" out.txt
expect_grep "ls shows ESC escaped" 'title\\x1b]0;pwned\\x07' out.txt
expect_grep "ls shows CR escaped" 'cr\\x0dforged' out.txt
expect_grep "ls shows C1 escaped" 'c1\\xc2\\x9b2J' out.txt
expect_grep "ls shows backslash escaped" 'back\\x5cslash' out.txt
[ "$(wc -l <out.txt)" = 5 ] && ok || bad "ls: a name forged a row: $(wc -l <out.txt) lines"
check "ls --json exact" 0 "$PY" -c "
import json, subprocess, sys
out = subprocess.run([sys.argv[1], 'ls', 'names.safetensors', '--json'], capture_output=True).stdout
names = sorted(t['name'] for t in json.loads(out))
assert names == sorted(['title\x1b]0;pwned\x07', 'cr\rforged', 'nl\nrow', 'c1\u009b2J', 'back\\\\slash']), names
" "$CLI"
check "show name" 0 "$CLI" show names.safetensors "$(printf 'nl\nrow')"
no_controls "show" out.txt
expect_grep "show name escaped" 'nl\\x0arow' out.txt
check "cat missing name" 1 "$CLI" cat names.safetensors "$(printf 'no\x1b[2Jsuch')"
no_controls "error message" err.txt
check "unpack" 0 "$CLI" unpack names.safetensors unpacked
no_controls "unpack" err.txt

# --- one shape rule everywhere; diff checks CRCs; show frees on read errors
"$PY" - <<'PY'
import numpy as np
h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 18446744073709551615, 0), }"
h += b' ' * (118 - len(h)) + b'\n'
open('huge0.npy', 'wb').write(b'\x93NUMPY\x01\x00' + len(h).to_bytes(2, 'little') + h)
np.savez('ok.npz', x=np.arange(100, dtype='f4'))
b = bytearray(open('ok.npz', 'rb').read())
i = b.find(b'\x00\x00\x80\x3f')
b[i + 2] ^= 1
open('stale.npz', 'wb').write(bytes(b))
np.savez_compressed('z.npz', x=np.arange(4096, dtype='f4'))
b = bytearray(open('z.npz', 'rb').read())
b[len(b) // 2] ^= 0x55
open('zbad.npz', 'wb').write(bytes(b))
PY
for cmd in ls info verify; do
    check "$cmd npy shape over the rule" 1 "$CLI" $cmd huge0.npy
    expect_grep "$cmd names the rule" "counting each zero dimension as 1" err.txt
done
check "convert npy shape over the rule" 1 "$CLI" convert huge0.npy h.safetensors
check "diff of a stale CRC" 1 "$CLI" diff stale.npz stale.npz
expect_grep "diff names the CRC" "CRC-32 mismatch" err.txt
check "diff of a stale CRC against the good file" 1 "$CLI" diff ok.npz stale.npz
check "show of a damaged deflated member (no leak under ASan)" 1 "$CLI" show zbad.npz x
check "cat of a damaged deflated member" 1 "$CLI" cat zbad.npz x

# --- a member compressed far beyond the default budget: refused naming the
# limit and the CLI's way to raise it; CAIRN_MAX_INFLATE reads it, bad values refused
"$PY" -c "import numpy as np; np.savez_compressed('zeros.npz', z=np.zeros(20 << 20, dtype='f4'))"
check "ls of a 400:1 member over the default budget" 1 "$CLI" ls zeros.npz
expect_grep "the limit is named" "over the decompression limit" err.txt
expect_grep "the CLI's setting is named" "CAIRN_MAX_INFLATE=SIZE" err.txt
check "cat with CAIRN_MAX_INFLATE=128M" 0 env CAIRN_MAX_INFLATE=128M "$CLI" cat zeros.npz z
[ "$(stat -c %s out.txt)" = $((80 << 20)) ] && ok || bad "cat with CAIRN_MAX_INFLATE wrote $(stat -c %s out.txt) bytes"
check "verify with CAIRN_MAX_INFLATE=1G" 0 env CAIRN_MAX_INFLATE=1G "$CLI" verify zeros.npz
check "CAIRN_MAX_INFLATE=lots refused" 2 env CAIRN_MAX_INFLATE=lots "$CLI" ls zeros.npz
check "CAIRN_MAX_INFLATE overflowing refused" 2 env CAIRN_MAX_INFLATE=99999999999G "$CLI" ls zeros.npz
rm -f zeros.npz

# --- safetensors "cairn.meta" holding one escape ({"$bytes": ...}) is not a
# cairn tree (metadata is a map): read as the plain map, and it survives a convert
"$PY" - <<'PY'
import json, struct
text = '{"$bytes":"s' + 'Y' * 127 + '"}'
hdr = json.dumps({"__metadata__": {"cairn.meta": text},
                  "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, separators=(",", ":")).encode()
open("escroot.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + b"\x07")
PY
check "meta of a cairn.meta that is one escape" 0 "$CLI" meta escroot.safetensors
expect_grep "kept as the plain entry" '"cairn.meta"' out.txt
check "convert it" 0 "$CLI" convert escroot.safetensors escroot2.safetensors
check "meta after convert" 0 "$CLI" meta escroot2.safetensors
expect_grep "the entry survives the convert" '"cairn.meta": "{\\"\$bytes' out.txt

# --- HDF5: what neither the tensors nor the tree carry is named
if "$PY" -c "import h5py" 2>/dev/null; then
    "$PY" - <<'PY'
import numpy as np, h5py
with h5py.File('s.h5', 'w') as f:
    f['w'] = np.arange(4, dtype='f4')
    f['vocab'] = np.array(['a', 'b'], dtype=h5py.string_dtype())
    f['rec\x1bord'] = np.array([(1, 2.5)], dtype=[('id', 'i4'), ('x', 'f8')])
PY
    check "ls h5" 0 "$CLI" ls s.h5
    expect_grep "ls warns" "warning: s.h5: 1 HDF5 object is neither tensors nor metadata" err.txt
    expect_grep "ls names it" "'rec\\\\x1bord' (a compound type" err.txt
    check "convert h5" 0 "$CLI" convert s.h5 s.safetensors
    expect_grep "convert warns" "'rec\\\\x1bord'" err.txt
    check "meta has the strings" 0 "$CLI" meta s.h5
    expect_grep "vocab in the tree" '"vocab"' out.txt
else
    echo "h5py missing: the HDF5 warning checks are skipped"
fi
finish
