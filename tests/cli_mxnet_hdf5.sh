#!/usr/bin/env bash
# cli_mxnet_hdf5.sh -- `ls`, `meta`, `cat`, `verify` and `convert` on MXNet
# .params and HDF5 files: tensors byte-identical through .npz -> .params ->
# .h5 -> .cairn, h5py reading what cairn wrote, attributes in `meta`.
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy, h5py" "numpy or h5py missing"
"$PY" - <<'PY'
import numpy as np, h5py
rng = np.random.default_rng(5)
np.savez('m.npz', **{'arg:fc_weight': rng.standard_normal((4, 3)).astype(np.float32),
                     'aux:bn_mean': np.arange(5, dtype=np.int64)})
with h5py.File('src.h5', 'w') as f:
    f['layer/w'] = np.arange(6, dtype='>f8').reshape(2, 3)
    f['layer'].attrs['units'] = 3
PY
check "npz to params" 0 "$CLI" convert m.npz m.params
check "ls params" 0 "$CLI" ls m.params
expect_grep "ls names" "arg:fc_weight" out.txt
check "info params" 0 "$CLI" info m.params
expect_grep "format" "mxnet" out.txt
check "verify params" 0 "$CLI" verify m.params
check "params to h5" 0 "$CLI" convert m.params m.h5
check "h5 to cairn" 0 "$CLI" convert m.h5 m.cairn
check "params to hdf5 by name" 0 "$CLI" convert m.params m.out --to hdf5
for name in arg:fc_weight aux:bn_mean; do
    "$CLI" cat m.npz "$name" >a.bin 2>/dev/null
    for f in m.params m.h5 m.cairn m.out; do
        "$CLI" cat "$f" "$name" >b.bin 2>/dev/null
        if cmp -s a.bin b.bin; then pass=$((pass+1)); else
            fail=$((fail+1)); echo "FAIL: $name differs in $f"; fi
    done
done
check "h5py reads cairn's h5" 0 "$PY" -c "
import h5py, numpy as np
f = h5py.File('m.h5', 'r')
assert f['aux:bn_mean'][()].tolist() == [0, 1, 2, 3, 4]
assert f['arg:fc_weight'].shape == (4, 3)"
check "meta h5" 0 "$CLI" meta src.h5
expect_grep "attribute in the tree" '"layer@units": 3' out.txt
check "cat big-endian h5" 0 "$CLI" cat src.h5 layer/w
check "verify h5" 0 "$CLI" verify src.h5
check "h5 with metadata to params warns" 0 "$CLI" convert src.h5 s.params
expect_grep "warning names the key" "layer@units" err.txt
printf 'not a params file' >bad.params
check "garbage refused" 1 "$CLI" ls bad.params
finish
