#!/usr/bin/env bash
# demo.sh -- the end-to-end story so far: NumPy arrays in, one durable .cairn
# archive, inspect it, verify every byte, unpack it, and check that NumPy
# reads back exactly what went in. Usage: examples/demo.sh PATH/TO/cairn
set -euo pipefail
CLI=$(realpath "${1:-build/cairn}")
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/cairn-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. make a few arrays with NumPy (weights, biases, a bf16-free mix of dtypes)"
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(7)
np.save('fc1_weight.npy', rng.standard_normal((10, 64)).astype(np.float32))
np.save('fc1_bias.npy', np.zeros(64, np.float32))
np.save('fc2_weight.npy', rng.standard_normal((64, 2)).astype(np.float16))
np.save('step.npy', np.array(1200, np.int64))
np.save('labels.npy', np.array([0, 1], dtype='>i4'))          # big-endian on purpose
np.save('embed.npy', np.asfortranarray(rng.standard_normal((8, 5))))  # Fortran order
print("wrote", ", ".join(sorted(__import__('glob').glob('*.npy'))))
PY

say "2. pack them into one archive (written to a temp file, fsynced, renamed)"
"$CLI" pack model.cairn fc1.weight=fc1_weight.npy fc1.bias=fc1_bias.npy \
    fc2.weight=fc2_weight.npy step=step.npy labels=labels.npy embed=embed.npy
ls -l model.cairn

say "3. what is inside"
"$CLI" info model.cairn
"$CLI" ls model.cairn
"$CLI" show model.cairn fc1.weight --count 5

say "4. verify every byte (checksums of every tensor, the index and the trailer)"
"$CLI" verify model.cairn

say "5. flip one byte of a payload: verify names the damaged tensor"
cp model.cairn damaged.cairn
off=$("$CLI" ls model.cairn --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='fc1.weight'][0]['offset'] + 17)")
printf '\x5a' | dd of=damaged.cairn bs=1 seek="$off" conv=notrunc status=none
if "$CLI" verify damaged.cairn; then echo "corruption went unnoticed" >&2; exit 1; fi

say "6. unpack to .npy and compare with the originals in NumPy"
"$CLI" unpack model.cairn out
"$PY" - <<'PY'
import numpy as np
pairs = {'fc1.weight': 'fc1_weight', 'fc1.bias': 'fc1_bias', 'fc2.weight': 'fc2_weight',
         'step': 'step', 'labels': 'labels', 'embed': 'embed'}
for name, src in pairs.items():
    a, b = np.load(src + '.npy'), np.load('out/' + name + '.npy')
    assert a.shape == b.shape and np.array_equal(a, b), name
    print(f"  {name:12s} {str(b.dtype):8s} {str(b.shape):10s} identical")
PY

say "demo complete: every array came back bit-identical"
