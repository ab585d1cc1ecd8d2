#!/usr/bin/env bash
# cli_mlp_torch.sh -- examples/mlp and PyTorch agree: the skorch vectors'
# params.pt predicts skorch's probabilities in C, torch-built and
# skorch-trained models predict the same in C as in torch (1e-5), and the C
# model's .pt export loads in torch with weights_only=True and predicts the
# same. Parts skip themselves without the vectors or without torch/skorch.
SRC=${CAIRN_SOURCE_DIR:-$(dirname "$0")/..}
. "$(dirname "$0")/lib/cli.sh"
MLP=$(dirname "$CLI")/mlp
VEC=${CAIRN_VECTORS:-}/skorch
ran=0
# close DESCRIPTION A B TOL: two files of probability rows agree within TOL.
close() {
    if "$PY" - "$2" "$3" "$4" <<'PY'; then ok; else bad "$1"; fi
import sys
def rows(path):
    with open(path) as f:
        return [[float(x) for x in line.split()] for line in f if line.strip()]
a, b, tol = rows(sys.argv[1]), rows(sys.argv[2]), float(sys.argv[3])
if len(a) != len(b) or any(len(r) != len(s) for r, s in zip(a, b)):
    sys.exit(f"shapes differ: {len(a)} vs {len(b)} rows")
d = max(abs(x - y) for r, s in zip(a, b) for x, y in zip(r, s))
print(f"  {len(a)} rows, max |difference| {d:.2e} (tolerance {tol:g})")
sys.exit(0 if d <= tol else 1)
PY
}

[ -x "$MLP" ] || { echo "no mlp binary at $MLP"; echo "0 passed, 1 failed"; exit 1; }
have_torch=0
"$PY" -c 'import torch, numpy' 2>/dev/null && have_torch=1
have_skorch=0
[ $have_torch = 1 ] && "$PY" -c 'import skorch, sklearn' 2>/dev/null && have_skorch=1

# 1. The vectors: skorch's own params.pt and X[:20], and its predict_proba.
if [ -f "$VEC/exp1/params.pt" ] && [ -f "$VEC/X_first20.npy" ]; then
    ran=1
    check "vectors: --load-torch --predict-npy" 0 \
        "$MLP" --load-torch "$VEC/exp1/params.pt" --predict-npy "$VEC/X_first20.npy"
    cp out.txt vec_c.txt
    "$PY" - "$VEC/exp1/params.pt.expect.json" >vec_skorch.txt <<'PY'
import json, sys
values = json.load(open(sys.argv[1]))["values"]
for row in values["predict_proba_first20"]:
    print(" ".join(repr(p) for p in row))
PY
    tol=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["values"]["tolerance"])' \
          "$VEC/exp1/params.pt.expect.json")
    close "vectors: C probabilities == skorch's predict_proba_first20" \
        vec_c.txt vec_skorch.txt "$tol"
    [ "$(wc -l <vec_c.txt)" = 20 ] && ok || bad "vectors: want 20 rows, got $(wc -l <vec_c.txt)"
    # --load-torch alone evaluates on the C program's own validation rows.
    check "vectors: --load-torch alone" 0 "$MLP" --load-torch "$VEC/exp1/params.pt"
    expect_grep "vectors: --load-torch prints the score" "valid_acc" out.txt
else
    echo "skorch vectors not found under '$VEC': that part skipped"
fi

# 2. torch builds the model (another width, float64 on disk), saves its
#    state_dict with torch.save; C predicts what torch predicts.
if [ $have_torch = 1 ]; then
    ran=1
    "$PY" - <<'PY' || bad "torch: building the models failed"
import numpy as np, torch
from torch import nn
torch.manual_seed(3)
def net(units):
    return nn.Sequential(nn.Linear(10, units), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(units, 10), nn.Linear(10, 2), nn.Softmax(dim=-1)).eval()
X = torch.randn(300, 10)  # more rows than one batch of the C model
np.save("X.npy", X.numpy())
for name, units, dtype in (("m13", 13, torch.float32), ("m7d", 7, torch.float64)):
    m = net(units).to(dtype)
    torch.save(m.state_dict(), f"{name}.pt")
    with torch.no_grad():
        p = m(X.to(dtype)).float().numpy()
    np.savetxt(f"{name}_torch.txt", p, fmt="%.9g")
# A state_dict of the wrong shape, and one with a layer missing.
bad = net(5).state_dict(); bad["3.weight"] = torch.zeros(10, 6)
torch.save(bad, "bad_shape.pt")
short = net(5).state_dict(); del short["4.bias"]
torch.save(short, "missing.pt")
PY
    for m in m13 m7d; do
        check "torch: $m --load-torch" 0 "$MLP" --load-torch $m.pt --predict-npy X.npy
        cp out.txt ${m}_c.txt
        close "torch: $m: C == torch" ${m}_c.txt ${m}_torch.txt 1e-5
    done
    check "torch: a wrong shape is refused" 1 "$MLP" --load-torch bad_shape.pt --predict-npy X.npy
    expect_grep "torch: the message names the tensor" "3.weight" err.txt
    check "torch: a missing tensor is refused" 1 "$MLP" --load-torch missing.pt
    expect_grep "torch: the message names the missing tensor" "4.bias" err.txt

    # 3. The reverse: the C model's export is a state_dict torch loads with
    #    weights_only=True, and torch predicts what C predicts.
    check "export: train and export .pt" 0 "$MLP" --epochs 2 --num-units 12 --export c.pt \
        --save-params c.cairn
    check "export: C predicts" 0 "$MLP" --load-params c.cairn --num-units 12 --predict-npy X.npy
    cp out.txt c_own.txt
    "$PY" - >torch_own.txt <<'PY' || bad "export: torch could not load c.pt with weights_only=True"
import collections, numpy as np, torch
from torch import nn
sd = torch.load("c.pt", weights_only=True)
assert type(sd) is collections.OrderedDict, type(sd)
assert list(sd) == ["0.weight", "0.bias", "3.weight", "3.bias", "4.weight", "4.bias"], list(sd)
m = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Dropout(0.2), nn.Linear(12, 10),
                  nn.Linear(10, 2), nn.Softmax(dim=-1)).eval()
m.load_state_dict(sd)
with torch.no_grad():
    p = m(torch.from_numpy(np.load("X.npy"))).numpy()
np.savetxt(__import__("sys").stdout, p, fmt="%.9g")
PY
    close "export: torch == C" c_own.txt torch_own.txt 1e-5
    # The export loads back into C through the .pt reader, bit for bit.
    check "export: --load-torch of the export" 0 "$MLP" --load-torch c.pt --predict-npy X.npy
    if cmp -s out.txt c_own.txt; then ok; else
        bad "export: --load-torch c.pt predicts other bits"; fi
else
    echo "torch not importable by $PY: torch parts skipped"
fi

# 4. skorch trains (skorch_train.py, as the demo), C predicts the same.
if [ $have_skorch = 1 ]; then
    check "skorch: train" 0 "$PY" "$SRC/examples/skorch_train.py" train sk
    check "skorch: C predicts" 0 "$MLP" --load-torch sk/exp/params.pt \
        --predict-npy sk/X_first20.npy
    cp out.txt sk_c.txt
    close "skorch: C == skorch predict_proba" sk_c.txt sk/skorch_proba.txt 1e-5
    check "skorch: torch predicts the C export" 0 "$PY" "$SRC/examples/skorch_train.py" predict \
        c.pt X.npy
    close "skorch: skorch predict_proba of c.pt == C" out.txt c_own.txt 1e-5
else
    echo "skorch not importable by $PY: skorch part skipped"
fi

# 5. Usage errors need nothing.
check "usage: --load-torch with --epochs" 2 "$MLP" --load-torch x.pt --epochs 3
check "usage: --load-torch with --load-params" 2 "$MLP" --load-torch x.pt --load-params y.cairn
check "usage: --export to an unknown extension" 2 "$MLP" --epochs 1 --export x.bin
check "usage: --predict-npy of a missing file" 3 "$MLP" --epochs 0 --predict-npy missing.npy

echo "$pass passed, $fail failed"
[ $fail = 0 ] || exit 1
[ $ran = 1 ] || exit 77
exit 0
