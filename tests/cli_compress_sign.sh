#!/usr/bin/env bash
# cli_compress_sign.sh -- the command line of format 1.1: pack/convert with
# --compress and --shuffle, what ls/info show of compressed tensors, and
# keygen / sign / verify --pubkey for files and checkpoint directories, with
# their messages and exit codes (0 ok, 1 bad input, 2 usage, 3 I/O).
. "$(dirname "$0")/lib/cli.sh"
CHECK_SHOWS="out.txt err.txt"

skip_unless_python "import numpy" "numpy not importable by $PY"
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(0)
np.save('w.npy', (rng.standard_normal((512, 1024)) * 0.02).astype(np.float32))
np.save('h.npy', rng.standard_normal((300, 200)).astype(np.float16))
np.save('z.npy', np.zeros((1000,), np.int64))
np.save('s.npy', np.float64(3.5))
np.save('e.npy', np.zeros((0, 4), np.float32))
PY

# ------------------------------------------------------------- compress
check "pack --compress" 0 "$CLI" pack m.cairn w=w.npy h=h.npy z=z.npy s=s.npy e=e.npy \
    --compress zstd:3 --shuffle --chunk-size 256K --no-sync
check "ls" 0 "$CLI" ls m.cairn
expect_grep "ls shows codec, raw bytes and ratio" "^w  *F32  *\[512, 1024\]  *[0-9]*  *zstd:3+shuffle  *2097152  *1\.[0-9][0-9]x" out.txt
expect_grep "tiny tensors stay raw" "^s  *F64  *\[\]  *8  *none  *8  *1.00x" out.txt
expect_grep "zeros compress far" "^z  *I64  *\[1000\]  *[0-9]*  *zstd:3+shuffle  *8000 " out.txt
check "ls --json" 0 "$CLI" ls m.cairn --json
"$PY" -c "
import json; d = {t['name']: t for t in json.load(open('out.txt'))}
w = d['w']
assert w['codec'] == 'zstd' and w['level'] == 3 and w['filter'] == 'shuffle', w
assert w['raw_bytes'] == 2097152 and w['stored_bytes'] < w['raw_bytes'] and w['chunks'] == 8, w
assert abs(w['ratio'] - w['raw_bytes'] / w['stored_bytes']) < 1e-9
assert d['s']['codec'] == 'none' and d['e']['raw_bytes'] == 0
" && ok || bad "ls --json fields"
check "info" 0 "$CLI" info m.cairn
expect_grep "info version 1.1" "^version:     1.1" out.txt
expect_grep "info raw total" "^raw bytes:   2225160" out.txt
expect_grep "info compressed count" "^compressed:  3 of 5 tensors" out.txt
check "info --json" 0 "$CLI" info m.cairn --json
"$PY" -c "
import json; i = json.load(open('out.txt'))
assert i['version'] == '1.1' and i['raw_bytes'] == 2225160 and i['compressed_tensors'] == 3, i
assert i['stored_bytes'] < i['raw_bytes'] and i['ratio'] > 1.1 and i['signed'] is False, i
" && ok || bad "info --json fields"
check "verify compressed" 0 "$CLI" verify m.cairn
"$CLI" cat m.cairn w > w.bin && "$PY" -c "
import numpy as np; assert open('w.bin','rb').read() == np.load('w.npy').tobytes()" && ok || bad "cat of a compressed tensor"
check "unpack compressed" 0 "$CLI" unpack m.cairn un
"$PY" -c "
import numpy as np
for n in 'whzse': assert (np.load('un/%s.npy' % n) == np.load('%s.npy' % n)).all(), n
" && ok || bad "unpack round trip"
check "pack uncompressed" 0 "$CLI" pack raw.cairn w=w.npy h=h.npy z=z.npy s=s.npy e=e.npy --no-sync
check "diff compressed vs raw" 0 "$CLI" diff m.cairn raw.cairn
for c in lz4 lz4hc lz4:12 zlib:1 bz2:9 zstd:19; do
    check "convert --compress $c" 0 "$CLI" convert raw.cairn "c-${c/:/_}.cairn" --compress "$c" --no-progress --no-sync
    check "diff after $c" 0 "$CLI" diff raw.cairn "c-${c/:/_}.cairn"
done
check "convert compressed to safetensors" 0 "$CLI" convert m.cairn m.safetensors --no-sync
check "diff safetensors" 0 "$CLI" diff m.cairn m.safetensors
check "safetensors refuses --compress" 1 "$CLI" convert raw.cairn x.safetensors --compress zstd
expect_grep "says why" "cannot hold compressed tensors" err.txt
[ ! -e x.safetensors ] && ok || bad "refused convert left a file"
check "bad level is a usage error" 2 "$CLI" pack x.cairn w=w.npy --compress zstd:25
expect_grep "names the range" "1 to 19" err.txt
check "unknown codec is a usage error" 2 "$CLI" pack x.cairn w=w.npy --compress lzma
check "bad chunk size" 2 "$CLI" pack x.cairn w=w.npy --compress zstd --chunk-size 1000
check "uncompressed pack is still 1.0" 0 "$CLI" info raw.cairn
expect_grep "1.0" "^version:     1.0" out.txt

# ------------------------------------------------------------ signing
check "keygen" 0 "$CLI" keygen k.sec k.pub
expect_grep "keygen prints the key id" "^key id:     [0-9a-f]\{16\}" out.txt
[ "$(stat -c %a k.sec)" = 600 ] && ok || bad "secret key mode $(stat -c %a k.sec)"
cp k.sec k.sec.orig
check "keygen refuses to overwrite" 1 "$CLI" keygen k.sec other.pub
expect_grep "says it refuses" "refusing to overwrite" err.txt
cmp -s k.sec k.sec.orig && [ ! -e other.pub ] && ok || bad "keygen touched an existing key"
check "second key" 0 "$CLI" keygen k2.sec k2.pub
check "keygen usage" 2 "$CLI" keygen only-one
cp m.cairn signed.cairn
check "unsigned file" 1 "$CLI" verify signed.cairn --pubkey k.pub
expect_grep "not signed, not a bad signature" "not signed" err.txt
check "sign" 0 "$CLI" sign signed.cairn --key k.sec
check "verify --pubkey" 0 "$CLI" verify signed.cairn --pubkey k.pub
expect_grep "says ok and the key" "ok (5 tensors; signature by key id" out.txt
check "info shows signed" 0 "$CLI" info signed.cairn
expect_grep "signed with key id" "^signed:      yes, key id [0-9a-f]\{16\}" out.txt
check "wrong key" 1 "$CLI" verify signed.cairn --pubkey k2.pub
expect_grep "says wrong key" "wrong key" err.txt
check "plain verify of a signed file" 0 "$CLI" verify signed.cairn
check "signed file still reads" 0 "$CLI" diff signed.cairn m.cairn
cp signed.cairn tampered.cairn
printf '\x01' | dd of=tampered.cairn bs=1 seek=1000 conv=notrunc status=none
check "tampered payload" 1 "$CLI" verify tampered.cairn --pubkey k.pub
expect_grep "says changed" "changed since signing" err.txt
expect_grep "names the tensor" "tensor 'w'" err.txt
check "sign needs a key" 2 "$CLI" sign signed.cairn
check "missing key file" 3 "$CLI" sign signed.cairn --key nope.sec
chmod 644 k2.sec
check "exposed secret key" 2 "$CLI" sign signed.cairn --key k2.sec
expect_grep "says chmod" "chmod 600" err.txt
chmod 600 k2.sec

# a checkpoint directory
mkdir ck && cp m.cairn ck/ckpt-00000001.cairn && cp raw.cairn ck/ckpt-00000002.cairn
check "unsigned dir" 1 "$CLI" verify ck --pubkey k.pub
expect_grep "dir not signed" "not signed" err.txt
check "sign dir" 0 "$CLI" sign ck --key k.sec
[ -f ck/MANIFEST.cairn-sig ] && ok || bad "no manifest"
check "verify dir" 0 "$CLI" verify ck --pubkey k.pub
check "dir wrong key" 1 "$CLI" verify ck --pubkey k2.pub
expect_grep "dir wrong key says so" "wrong key" err.txt
echo note > ck/extra.txt
check "extra file" 1 "$CLI" verify ck --pubkey k.pub
expect_grep "names the extra file" "extra file (not in the manifest) 'extra.txt'" err.txt
rm ck/extra.txt
rm ck/ckpt-00000002.cairn
check "missing file" 1 "$CLI" verify ck --pubkey k.pub
expect_grep "names the missing file" "missing 'ckpt-00000002.cairn'" err.txt
cp raw.cairn ck/ckpt-00000002.cairn
printf '\x01' | dd of=ck/ckpt-00000001.cairn bs=1 seek=77 conv=notrunc status=none
check "changed file" 1 "$CLI" verify ck --pubkey k.pub
expect_grep "names the changed file" "changed (SHA-256) 'ckpt-00000001.cairn'" err.txt

finish
