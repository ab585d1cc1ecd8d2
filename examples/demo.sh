#!/usr/bin/env bash
# demo.sh -- the end-to-end story: train skorch's documentation model in C
# (examples/mlp), checkpoint the whole training state, resume it in another
# process bit for bit, export the parameters, predict the same bits in a
# fresh process, and take the parameters to NumPy and back.
# Usage: examples/demo.sh PATH/TO/cairn   (the mlp program sits next to it)
set -euo pipefail
CLI=$(realpath "${1:-build/cairn}")
MLP=$(dirname "$CLI")/mlp
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/cairn-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Shows a command (on stderr, so that redirecting its output keeps the file clean), then runs it.
run() { printf '$ %s\n' "$*" | sed "s|$MLP|mlp|g; s|$CLI|cairn|g" >&2; "$@"; }

say "1. train for 2 epochs in C, then save the whole training state"
echo "   Linear(10, 10) ReLU Dropout(0.2) Linear(10, 10) Linear(10, 2) Softmax, NLL loss,"
echo "   SGD with momentum, on a make_classification-like data set (800 train / 200 valid)"
run "$MLP" --epochs 2 --save half.cairn

say "2. what the checkpoint holds: tensors and a typed metadata tree"
run "$CLI" ls half.cairn
"$CLI" meta half.cairn | "$PY" -c '
import json, sys
m = json.load(sys.stdin)
short = lambda v: json.dumps(v)[:96]
for key in ("type_tag", "config", "optimizer", "rng", "data_position"):
    print(f"  {key:14s}", short(m[key]))
print("  history       ", len(m["history"]), "epochs, the last:", short(m["history"][-1]))'

say "3. resume in a new process: the epochs go on at 3"
run "$MLP" --load half.cairn --epochs 2 --save resumed.cairn

say "4. the same 4 epochs without stopping, and the comparison"
run "$MLP" --epochs 4 --save straight.cairn
run "$CLI" diff --tensors-only straight.cairn resumed.cairn
echo "   the metadata differs in the epoch timings only:"
run "$CLI" diff straight.cairn resumed.cairn || true

say "5. the same with Adam (moments and step count are part of the state)"
"$MLP" --optimizer adam --epochs 4 --save adam-straight.cairn >/dev/null 2>&1
"$MLP" --optimizer adam --epochs 2 --save adam-half.cairn >/dev/null 2>&1
"$MLP" --load adam-half.cairn --epochs 2 --save adam-resumed.cairn >/dev/null 2>&1
run "$CLI" diff --tensors-only adam-straight.cairn adam-resumed.cairn

say "6. train on to epoch 10, export the parameters only (skorch's f_params), predict"
run "$MLP" --load resumed.cairn --epochs 6 --save-params params.cairn --predict | tee trained.txt
run "$CLI" ls params.cairn

say "7. a fresh process builds a new model, loads the parameters and predicts"
run "$MLP" --load-params params.cairn --predict > fresh.txt
head -4 fresh.txt
echo "   ..."
sed -n '/^valid_acc/,$p' trained.txt > trained-predictions.txt
run cmp trained-predictions.txt fresh.txt
echo "   identical: all 20 rows of probabilities, bit for bit"

say "8. a checkpoint of another kind, or for another network, is refused"
if run "$MLP" --load params.cairn; then echo "loaded a params file as a checkpoint" >&2; exit 1; fi
if run "$MLP" --load resumed.cairn --num-units 20; then echo "ignored --num-units" >&2; exit 1; fi

say "9. to NumPy and back: unpack to .npy (PyTorch layout, weight [out, in]), pack again"
run "$CLI" unpack params.cairn npy
"$PY" - <<'PY'
import numpy as np
for name in ("0.weight", "0.bias", "3.weight", "3.bias", "4.weight", "4.bias"):
    a = np.load(f"npy/{name}.npy")
    print(f"  {name:9s} {str(a.dtype):8s} {str(a.shape):9s} mean {a.mean():+.6f}")
PY
run "$CLI" pack repacked.cairn 0.weight=npy/0.weight.npy 0.bias=npy/0.bias.npy \
    3.weight=npy/3.weight.npy 3.bias=npy/3.bias.npy 4.weight=npy/4.weight.npy 4.bias=npy/4.bias.npy
run "$CLI" diff --tensors-only params.cairn repacked.cairn

say "10. flip one byte of the checkpoint: verify names the tensor, resuming refuses"
cp resumed.cairn damaged.cairn
off=$("$CLI" ls resumed.cairn --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='params/0.weight'][0]['offset'] + 17)")
printf '\x5a' | dd of=damaged.cairn bs=1 seek="$off" conv=notrunc status=none
if run "$CLI" verify damaged.cairn; then echo "corruption went unnoticed" >&2; exit 1; fi
if run "$MLP" --load damaged.cairn; then echo "resumed from a damaged file" >&2; exit 1; fi

say "demo complete: resumed == uninterrupted, and a fresh process predicts the same bits"
