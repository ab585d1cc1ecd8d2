#!/usr/bin/env bash
# demo.sh -- skorch's checkpoint walkthrough, end to end, in C: examples/mlp
# trains skorch's documentation model and drives libcairn's checkpoint
# manager. Run 1 saves whenever valid_loss improves plus a train-end
# checkpoint; run 2 resumes from the best one with a lower learning rate;
# run 3 resumes from the train-end one into a new prefix; run 4 loads the
# best and predicts. Then: an export to safetensors read by plain Python,
# resuming bit for bit, a fresh process predicting the same bits, PyTorch
# (skorch trains, the C model loads its params.pt and predicts the same
# probabilities; and back: torch loads the C model's export with
# weights_only=True), and what kill -9, SIGTERM and a flipped byte do to a
# checkpoint directory. Last, Python: the same checkpoint through `import
# cairn`, and skorch's walkthrough with cairn.skorch's callbacks.
# Usage: examples/demo.sh PATH/TO/cairn   (the mlp program sits next to it)
set -euo pipefail
CLI=$(realpath "${1:-build/cairn}")
MLP=$(dirname "$CLI")/mlp
PY=/usr/bin/python3
SKORCH_TRAIN=$(dirname "$(realpath "$0")")/skorch_train.py
PY_DEMO=$(dirname "$(realpath "$0")")/python_demo.py
PYPKG=$(realpath "$(dirname "$(realpath "$0")")/../bindings/python")
WORK=$(mktemp -d /tmp/cairn-demo.XXXXXX)
pid=
# If a step fails while a background run is still going, stop it too.
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Shows a command (on stderr, so that redirecting its output keeps the file clean), then runs it.
show() {
    printf '$ %s\n' "$*" |
        sed "s|$MLP|mlp|g; s|$CLI|cairn|g; s|$SKORCH_TRAIN|examples/skorch_train.py|g; s|$PY_DEMO|examples/python_demo.py|g" >&2
}
run() { show "$@"; "$@"; }
# Waits (at most ~30 s) until FILE shows the table row of epoch N.
wait_row() {
    for _ in $(seq 600); do grep -q "^ *$2 " "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "no epoch $2 in $1" >&2; return 1
}

say "run 1: 10 epochs; checkpoint when valid_loss improves (cp '+'), and one at train end"
echo "   Linear(10, 10) ReLU Dropout(0.2) Linear(10, 10) Linear(10, 2) Softmax, NLL loss,"
echo "   SGD with momentum, on a make_classification-like data set (800 train / 200 valid)"
run "$MLP" --ckpt-dir exp1 --epochs 10 --lr 0.3 --seed 1
run "$CLI" ckpt ls exp1

say "what one checkpoint holds: the whole training state and the manager's record"
best=$("$CLI" ckpt best exp1)
run "$CLI" ls "$best"
"$CLI" meta "$best" | "$PY" -c '
import json, sys
m = json.load(sys.stdin)
short = lambda v: json.dumps(v)[:92]
for key in ("type_tag", "optimizer", "rng", "data_position", "checkpoint"):
    print(f"  {key:14s}", short(m[key]))
print("  history       ", len(m["history"]), "epochs, the last:", short(m["history"][-1]))'

say "run 2: resume from the best checkpoint with a lower learning rate: the epochs go on"
run "$MLP" --ckpt-dir exp1 --resume-from best --lr 0.1 --epochs 5 --no-train-end
echo "   (a '+' now means better than every checkpoint in exp1, run 1's included;"
echo "    --no-train-end keeps run 1's train-end checkpoint the newest one for run 3)"

say "run 3: resume from the train-end checkpoint (epoch 10) into a new prefix"
run "$MLP" --ckpt-dir exp1 --resume --resume-prefix train_end_ --prefix run3_ --epochs 3 --no-train-end
run ls exp1

say "run 4: load the best checkpoint into a fresh model and predict"
run "$MLP" --ckpt-dir exp1 --load-best --predict --save-params params.cairn > best.txt
head -5 best.txt
echo "   ..."

say "a fresh process loads the parameters alone (skorch's f_params) and predicts the same bits"
run "$MLP" --load-params params.cairn --predict > fresh.txt
run cmp best.txt fresh.txt
echo "   identical: the score and all 20 rows of probabilities, bit for bit"

say "export the best parameters to safetensors, and read them back with plain Python"
if "$MLP" --help | grep -q -- "--export"; then
    run "$MLP" --ckpt-dir exp1 --load-best --export best.safetensors
    for n in 0.weight 0.bias 3.weight 3.bias 4.weight 4.bias; do
        "$CLI" cat params.cairn "$n" > "$n.bin"
    done
    "$PY" - <<'PY'
import json, struct
import numpy as np
raw = open("best.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])              # u64 little-endian header length
header = json.loads(raw[8:8 + n])
print("  __metadata__", json.dumps(header.pop("__metadata__"))[:90], "...")
data = raw[8 + n:]
for name, t in header.items():
    b, e = t["data_offsets"]
    a = np.frombuffer(data[b:e], dtype=np.float32).reshape(t["shape"])
    same = data[b:e] == open(f"{name}.bin", "rb").read()
    print(f"  {name:9s} {t['dtype']} {str(t['shape']):9s} mean {a.mean():+.6f}",
          "== params.cairn" if same else "DIFFERS")
    assert same
PY
else
    echo "   (skipped: this build of mlp has no --export, the library no safetensors writer)"
fi

# Compares two files of probability rows: same shape, max |a - b| <= 1e-5.
same_proba() {
    "$PY" - "$1" "$2" <<'PY'
import sys
import numpy as np
a, b = (np.loadtxt(f, ndmin=2) for f in sys.argv[1:3])
d = np.abs(a - b).max() if a.shape == b.shape else float("inf")
print(f"   {a.shape[0]} rows x {a.shape[1]} classes: max |difference| {d:.1e} (tolerance 1e-5)")
sys.exit(0 if d <= 1e-5 else 1)
PY
}

say "PyTorch: skorch trains the same model, and the C program predicts with its params.pt"
if "$PY" -c 'import torch, skorch' 2>/dev/null; then
    echo "   skorch's documentation example: NeuralNetClassifier(MyModule, max_epochs=5, lr=0.1,"
    echo "   iterator_train__shuffle=True, optimizer__momentum=0.9) with Checkpoint(dirname='sk/exp')"
    run "$PY" "$SKORCH_TRAIN" train sk
    run "$CLI" ls sk/exp/params.pt
    echo "   (read by cairn's restricted pickle reader: nothing in the file runs)"
    run "$MLP" --load-torch sk/exp/params.pt --predict-npy sk/X_first20.npy > c_proba.txt
    paste -d'|' c_proba.txt sk/skorch_proba.txt | head -3 | sed 's/|/   skorch: /; s/^/   C: /'
    echo "   ..."
    same_proba c_proba.txt sk/skorch_proba.txt

    say "and back: the C-trained model exported to .pt, loaded by torch with weights_only=True"
    run "$MLP" --load-params params.cairn --export c_params.pt --predict-npy sk/X_first20.npy \
        > c_own.txt
    "$PY" -c 'import torch; sd = torch.load("c_params.pt", weights_only=True);
print("  ", type(sd).__name__, {k: tuple(v.shape) for k, v in sd.items()})'
    run "$PY" "$SKORCH_TRAIN" predict c_params.pt sk/X_first20.npy > torch_own.txt
    same_proba c_own.txt torch_own.txt
else
    echo "   (skipped: $PY cannot import torch and skorch; as root, 'make demo' installs"
    echo "    python3-torch and python3-skorch)"
fi

say "Python: import cairn -- the best checkpoint as zero-copy NumPy views; skorch with cairn's callbacks"
if PYTHONPATH=$PYPKG "$PY" -c 'import cairn' 2>/dev/null; then
    echo "   from cairn.skorch import Checkpoint, TrainEndCheckpoint, LoadInitState  # the only change"
    pybest=$("$CLI" ckpt best exp1)
    show "$PY" "$PY_DEMO" "$pybest" py
    PYTHONPATH=$PYPKG "$PY" "$PY_DEMO" "$pybest" py
else
    echo "   (skipped: the extension is not built; 'make build' builds it in bindings/python)"
fi

say "resume is exact: 3 epochs + --resume for 3 more == 6 epochs straight"
run "$MLP" --ckpt-dir exp2 --monitor none --epochs 3 > /dev/null
run "$MLP" --ckpt-dir exp2 --monitor none --resume --epochs 3
run "$MLP" --epochs 6 --save straight.cairn > /dev/null
run "$CLI" diff --tensors-only straight.cairn exp2/ckpt-00000006.cairn

say "kill -9 in the middle of training: the directory verifies, and --resume goes on"
# (in the background, so that $! is mlp itself, not a shell running it)
show "$MLP" --ckpt-dir exp3 --monitor none --keep-last 3 --epochs 100000 --sleep-per-epoch 20 "&"
"$MLP" --ckpt-dir exp3 --monitor none --keep-last 3 --epochs 100000 --sleep-per-epoch 20 \
    > crash.txt 2>&1 &
pid=$!
wait_row crash.txt 5
show kill -9 $pid
{ kill -9 $pid; wait $pid; } 2>/dev/null || echo "   (killed: exit status $?)"
pid=
tail -2 crash.txt
run "$CLI" ckpt verify exp3
run "$MLP" --ckpt-dir exp3 --monitor none --keep-last 3 --resume --epochs 2

say "SIGTERM (a scheduler preempting the job): save at the end of this epoch, stop, exit 0"
show "$MLP" --ckpt-dir exp4 --epochs 100000 --sleep-per-epoch 100 "&"
"$MLP" --ckpt-dir exp4 --epochs 100000 --sleep-per-epoch 100 > term.txt 2> term.err &
pid=$!
wait_row term.txt 2
run kill -TERM $pid
wait $pid
echo "   exit status 0"
pid=
tail -1 term.txt
head -1 term.err
run "$CLI" ckpt ls exp4

say "flip one byte of the newest checkpoint: verify names it, --resume falls back past it"
newest=exp2/ckpt-00000006.cairn
off=$("$CLI" ls "$newest" --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='params/0.weight'][0]['offset'] + 17)")
printf '\x5a' | dd of="$newest" bs=1 seek="$off" conv=notrunc status=none
if run "$CLI" ckpt verify exp2; then echo "corruption went unnoticed" >&2; exit 1; fi
run "$MLP" --ckpt-dir exp2 --monitor none --resume --epochs 1

say "demo complete: skorch's checkpoint workflow, exact resumes, and crashes that lose nothing committed"
