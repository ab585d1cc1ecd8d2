#!/usr/bin/env bash
# cli_mlp.sh -- examples/mlp keeps its promises: a checkpoint resumes bit for
# bit (SGD and Adam), exported params predict the same bits in a fresh
# process, the history survives, training learns, and errors exit 1/2/3.
. "$(dirname "$0")/lib/cli.sh"
MLP=$(dirname "$CLI")/mlp

[ -x "$MLP" ] || { echo "no mlp binary at $MLP"; echo "0 passed, 1 failed"; exit 1; }

# Every tensor of A and B has the same name, dtype, shape and bytes.
same_tensors() {
    if "$CLI" diff --help >/dev/null 2>&1; then
        "$CLI" diff --tensors-only "$1" "$2" >diff.txt
        return
    fi
    "$CLI" ls "$1" >ls1.txt && "$CLI" ls "$2" >ls2.txt && cmp -s ls1.txt ls2.txt || return 1
    awk '{print $1}' ls1.txt | while read -r name; do
        "$CLI" cat "$1" "$name" >t1.bin && "$CLI" cat "$2" "$name" >t2.bin && cmp -s t1.bin t2.bin ||
            { echo "tensor $name differs"; exit 1; }
    done
}

# The metadata of A and B is the same but for the epoch durations.
same_state() {
    "$CLI" meta "$1" >m1.json && "$CLI" meta "$2" >m2.json && "$PY" - <<'PY'
import json
a, b = json.load(open('m1.json')), json.load(open('m2.json'))
for m in (a, b):
    for e in m['history']:
        del e['dur']
assert a == b, [k for k in a if a[k] != b.get(k)]
PY
}

# 1. Four epochs straight == two epochs, save, load, two more: every tensor,
#    and every part of the state (generators, data position, optimizer
#    scalars, history) but the timings.
for opt in sgd adam; do
    check "$opt: 4 epochs" 0 "$MLP" --optimizer "$opt" --epochs 4 --save a-$opt.cairn
    check "$opt: 2 epochs" 0 "$MLP" --optimizer "$opt" --epochs 2 --save b-$opt.cairn
    check "$opt: resume for 2 more" 0 "$MLP" --load b-$opt.cairn --epochs 2 --save c-$opt.cairn
    expect_grep "$opt: the resumed table goes on at epoch 3" "^ *3 " out.txt
    if grep -q "^ *1 " out.txt; then bad "$opt: the resumed run restarted at epoch 1"; else ok; fi
    if same_tensors a-$opt.cairn c-$opt.cairn; then ok; else bad "$opt: resumed tensors differ"; cat diff.txt 2>/dev/null; fi
    if same_state a-$opt.cairn c-$opt.cairn; then ok; else bad "$opt: resumed state differs"; fi
    check "$opt: verify" 0 "$CLI" verify c-$opt.cairn
done
# ... and the check can fail: another seed gives other tensors.
check "seed 1" 0 "$MLP" --epochs 4 --seed 1 --save d.cairn
if same_tensors a-sgd.cairn d.cairn >/dev/null 2>&1; then bad "another seed gave identical tensors"; else ok; fi

# 2. Exported params predict the same bits in a fresh process (from the
#    params file, from the whole checkpoint, and after --load).
check "train, save, predict" 0 "$MLP" --epochs 3 --save full.cairn --save-params p.cairn --predict
sed -n '/^valid_acc/,$p' out.txt >trained.txt
[ "$(grep -c '0x1\.' trained.txt)" = 20 ] && ok || bad "--predict did not print 20 rows of hex floats"
check "fresh model from params" 0 "$MLP" --load-params p.cairn --predict
cmp -s out.txt trained.txt && ok || { bad "--load-params predictions differ"; diff out.txt trained.txt; }
check "fresh model from a checkpoint's params" 0 "$MLP" --load-params full.cairn --predict
cmp -s out.txt trained.txt && ok || bad "--load-params of a checkpoint predicts differently"
check "predict after --load" 0 "$MLP" --load full.cairn --epochs 0 --predict
cmp -s out.txt trained.txt && ok || bad "--load --predict predicts differently"
check "params file tensors" 0 "$CLI" ls p.cairn
for n in 0.weight 0.bias 3.weight 3.bias 4.weight 4.bias; do expect_grep "params $n" "^$n " out.txt; done
expect_grep "0.weight is [out, in]" "^0.weight  *F32  *\[10, 10\]" out.txt
expect_grep "4.weight is [out, in]" "^4.weight  *F32  *\[2, 10\]" out.txt

# 3. The history of the resumed file: epochs 1..4, every field a number.
check "meta" 0 "$CLI" meta c-sgd.cairn
"$PY" - <<'PY' && ok || bad "history of the resumed checkpoint"
import json
m = json.load(open('out.txt'))
h = m['history']
assert [e['epoch'] for e in h] == [1, 2, 3, 4], h
for e in h:
    assert set(e) == {'epoch', 'train_loss', 'valid_acc', 'valid_loss', 'dur'}, e
assert m['type_tag'] == {'kind': 'mlp', 'schema_version': 1}, m['type_tag']
assert m['data_position']['epoch'] == 4 and m['optimizer']['step'] == 4 * 7, m['optimizer']
PY

# 4. It learns: loss falls and validation accuracy ends far above the 55.5%
#    of always answering the majority class.
for opt in sgd adam; do
    check "$opt: 10 epochs" 0 "$MLP" --optimizer "$opt" --epochs 10
    "$PY" - "$opt" <<'PY' && ok || bad "$opt: did not learn"
import sys
rows = [l.split() for l in open('out.txt') if l.split() and l.split()[0].isdigit()]
assert [int(r[0]) for r in rows] == list(range(1, 11)), rows
first, last = [float(x) for x in rows[0][1:4]], [float(x) for x in rows[-1][1:4]]
assert last[0] < first[0] - 0.1, (first, last)   # train_loss
assert last[2] < first[2], (first, last)         # valid_loss
assert last[1] > 0.7, (first, last)              # valid_acc
PY
done

# 5. Errors: I/O 3, bad input 1 (naming the kind or the option), usage 2.
check "--load of a missing file" 3 "$MLP" --load missing.cairn
check "--load of a params file (no kind)" 1 "$MLP" --load p.cairn
expect_grep "the message names the kind" "'mlp'" err.txt
check "--load of a non-cairn file" 1 "$MLP" --load out.txt
check "--load with another --num-units" 1 "$MLP" --load b-sgd.cairn --num-units 20 --epochs 1
expect_grep "the message names the option" "num-units" err.txt
check "--load with another --optimizer" 1 "$MLP" --load b-sgd.cairn --optimizer adam
check "--load-params into another --num-units" 1 "$MLP" --load-params p.cairn --num-units 20
check "--load-params of a missing file" 3 "$MLP" --load-params missing.cairn
check "--save into a missing directory" 3 "$MLP" --epochs 1 --save no/such/dir/x.cairn
check "bad option" 2 "$MLP" --frobnicate
expect_grep "usage text" "usage: mlp" err.txt
check "bad number" 2 "$MLP" --epochs ten
check "bad optimizer" 2 "$MLP" --optimizer rmsprop
check "missing value" 2 "$MLP" --save
check "--load and --load-params" 2 "$MLP" --load a --load-params b
check "--help" 0 "$MLP" --help
expect_grep "help lists --load" "--load PATH" out.txt

finish
