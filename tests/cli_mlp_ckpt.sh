#!/usr/bin/env bash
# cli_mlp_ckpt.sh -- examples/mlp driving the checkpoint manager: monitored
# saves exactly where the metric improved, retention leaves exactly the
# expected set, --resume through the manager is bit-exact (sync and async),
# falls back past a damaged newest checkpoint, SIGTERM saves and exits 0,
# kill -9 leaves a directory that verifies and resumes, --load-best predicts
# what --load-params of the best file predicts, --export writes safetensors.
. "$(dirname "$0")/lib/cli.sh"
MLP=$(dirname "$CLI")/mlp
py() { # py DESCRIPTION [ARGS...] < script: a Python check that must exit 0
    local what=$1; shift
    if "$PY" - "$@"; then ok; else bad "$what"; fi
}
same_tensors() { "$CLI" diff --tensors-only "$1" "$2" >diff.txt; }
# The epochs of the table in out.txt (first column), as "4 5 6".
table_epochs() { awk '$1 ~ /^[0-9]+$/ {printf "%s%s", s, $1; s=" "} END {print ""}' "${1:-out.txt}"; }
# Waits (at most ~30 s) until FILE shows the table row of epoch N.
wait_row() {
    for _ in $(seq 600); do grep -q "^ *$2 " "$1" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}

[ -x "$MLP" ] || { echo "no mlp binary at $MLP"; echo "0 passed, 1 failed"; exit 1; }

# 1. A monitored run saves exactly where valid_loss improved: the table's cp
#    column, the directory and the checkpoints' own records agree with the
#    history (exact floats, from the train-end checkpoint's metadata).
check "monitored run" 0 "$MLP" --ckpt-dir mon --epochs 10 --lr 0.3 --seed 1
cp out.txt mon-table.txt
expect_grep "the table has a cp column" "valid_loss    cp     dur" out.txt
expect_grep "stderr names the train-end checkpoint" "train_end_ckpt-00000001.cairn (epoch 10)" err.txt
"$CLI" ckpt ls mon --json >ls.json && "$CLI" ckpt ls mon --prefix train_end_ --json >end.json &&
    "$CLI" meta mon/train_end_ckpt-00000001.cairn >end-meta.json || bad "listing mon"
for f in mon/ckpt-*.cairn; do "$CLI" meta "$f" >"$f.json"; done
py "saved exactly at the improvements of valid_loss" <<'PY'
import json, glob
hist = json.load(open('end-meta.json'))['history']
assert [e['epoch'] for e in hist] == list(range(1, 11))
best, want = float('inf'), []
for e in hist:
    if e['valid_loss'] < best:
        best = e['valid_loss']; want.append(e['epoch'])
assert 0 < len(want) < 10, want          # the check can tell saving from not saving
rows = [l.rstrip('\n') for l in open('mon-table.txt') if l.split() and l.split()[0].isdigit()]
plus = [int(r.split()[0]) for r in rows if r[50:54].strip() == '+']
assert plus == want, (plus, want)
listed = json.load(open('ls.json'))
assert [c['epoch'] for c in listed] == want, (listed, want)
assert all(c['valid'] and c['reasons'] == 'improved' for c in listed), listed
for c in listed:
    rec = json.load(open(c['path'] + '.json'))['checkpoint']
    h = hist[c['epoch'] - 1]
    assert rec['metric'] == h['valid_loss'] == c['metric'], (rec, h)
    assert rec['monitor'] == 'valid_loss' and rec['mode'] == 'min', rec
    assert rec['metrics'] == {k: h[k] for k in ('train_loss', 'valid_loss', 'valid_acc')}, rec
end = json.load(open('end.json'))
assert len(end) == 1 and end[0]['epoch'] == 10 and 'forced' in end[0]['reasons'], end
PY

#    valid_acc improves upwards.
check "monitor valid_acc" 0 "$MLP" --ckpt-dir acc --monitor valid_acc --epochs 10 --no-train-end
"$CLI" ckpt ls acc --json >acc.json
py "valid_acc saves where it rose" <<'PY'
import json
rows = [l.split() for l in open('out.txt') if l.split() and l.split()[0].isdigit()]
best, want = -1.0, []
for r in rows:
    if float(r[2]) > best:               # %.4f of a multiple of 1/200 is exact enough
        best = float(r[2]); want.append(int(r[0]))
got = [c['epoch'] for c in json.load(open('acc.json'))]
assert got == want, (got, want)
PY
[ -z "$(ls acc | grep train_end)" ] && ok || bad "--no-train-end wrote a train-end checkpoint"

# 2. Retention: every epoch saved (--every 1), the 2 best by valid_loss and
#    the 2 newest kept; and --monitor none --keep-last 3.
check "keep-best 2 keep-last 2" 0 "$MLP" --ckpt-dir keep --every 1 --keep-best 2 --keep-last 2 \
    --epochs 10 --lr 0.3 --seed 1
"$CLI" ckpt ls keep --json >keep.json
py "retention keeps the 2 best and the 2 newest" <<'PY'
import json
hist = json.load(open('end-meta.json'))['history']      # the same run as in 1
best = sorted(hist, key=lambda e: (e['valid_loss'], -e['epoch']))[:2]
want = sorted({e['epoch'] for e in best} | {9, 10})
got = [c['epoch'] for c in json.load(open('keep.json'))]
assert got == want, (got, want)
PY
check "keep-last 3, no monitor" 0 "$MLP" --ckpt-dir last --monitor none --keep-last 3 --epochs 10
[ "$(cd last && echo ckpt-*)" = "ckpt-00000008.cairn ckpt-00000009.cairn ckpt-00000010.cairn" ] &&
    ok || bad "keep-last 3 left $(ls last)"

# 3. Resume through the manager is bit-exact: 3 epochs, then --resume for 3
#    more, equals 6 straight epochs (sync and async); and async writes the
#    same checkpoints as sync.
check "6 straight epochs" 0 "$MLP" --epochs 6 --save straight.cairn
for mode in sync async; do
    flag=; [ $mode = async ] && flag=--async
    check "$mode: 3 epochs" 0 "$MLP" --ckpt-dir r-$mode --monitor none --epochs 3 $flag
    check "$mode: --resume 3 more" 0 "$MLP" --ckpt-dir r-$mode --monitor none --resume --epochs 3 \
        $flag --save resumed-$mode.cairn
    [ "$(table_epochs)" = "4 5 6" ] && ok || bad "$mode: resumed epochs are '$(table_epochs)'"
    expect_grep "$mode: stderr names the checkpoint" "resumed from r-$mode/ckpt-00000003.cairn" err.txt
    same_tensors straight.cairn r-$mode/ckpt-00000006.cairn && ok ||
        { bad "$mode: the resumed checkpoint differs from the straight run"; cat diff.txt; }
    same_tensors straight.cairn resumed-$mode.cairn && ok || bad "$mode: --save after --resume differs"
done
for i in 1 2 3 4 5 6; do
    same_tensors r-sync/ckpt-0000000$i.cairn r-async/ckpt-0000000$i.cairn && ok ||
        bad "async checkpoint $i differs from sync"
done
check "verify the async directory" 0 "$CLI" ckpt verify r-async
#    Adam's moments and step count go through the manager too.
check "adam: 4 straight" 0 "$MLP" --optimizer adam --epochs 4 --save adam.cairn
check "adam: 2 epochs" 0 "$MLP" --optimizer adam --ckpt-dir r-adam --monitor none --epochs 2
check "adam: --resume 2 more" 0 "$MLP" --ckpt-dir r-adam --monitor none --resume --epochs 2
same_tensors adam.cairn r-adam/ckpt-00000004.cairn && ok || bad "adam: resumed tensors differ"

# 4. A damaged newest checkpoint is skipped, with the reason on stderr; the
#    run goes on from the one before, bit-exact.
mkdir fb && cp r-sync/ckpt-0000000[1-4].cairn fb/
off=$("$CLI" ls fb/ckpt-00000004.cairn --json | "$PY" -c "import json,sys; print([t for t in json.load(sys.stdin) if t['name']=='params/0.weight'][0]['offset'] + 17)")
printf '\x5a' | dd of=fb/ckpt-00000004.cairn bs=1 seek="$off" conv=notrunc status=none
check "resume past a damaged checkpoint" 0 "$MLP" --ckpt-dir fb --monitor none --resume --epochs 1
expect_grep "stderr says which was skipped" "skipped fb/ckpt-00000004.cairn" err.txt
expect_grep "... and why" "checksum" err.txt
expect_grep "stderr names the one loaded" "resumed from fb/ckpt-00000003.cairn" err.txt
[ "$(table_epochs)" = "4" ] && ok || bad "fallback resumed at '$(table_epochs)'"
same_tensors r-sync/ckpt-00000004.cairn fb/ckpt-00000005.cairn && ok || bad "fallback run differs"
#    Every checkpoint damaged: an error (exit 1), not a silent fresh start.
mkdir allbad && cp fb/ckpt-00000004.cairn allbad/
check "resume with no valid checkpoint" 1 "$MLP" --ckpt-dir allbad --monitor none --resume
expect_grep "the reason is given" "skipped allbad/ckpt-00000004.cairn" err.txt
#    An empty directory: a fresh run (the same command starts and resumes).
check "resume in an empty directory" 0 "$MLP" --ckpt-dir fresh --resume --epochs 2
expect_grep "says it starts fresh" "starting a fresh run" err.txt
[ "$(table_epochs)" = "1 2" ] && ok || bad "fresh --resume ran epochs '$(table_epochs)'"

# 5. --resume-from best with a lower --lr: the epochs go on after the best;
#    other options must still match. --resume-prefix: from the train-end
#    checkpoint into a new prefix.
cp -r mon mon2
check "resume from best, lower lr" 0 "$MLP" --ckpt-dir mon2 --resume-from best --lr 0.1 --epochs 2 \
    --no-train-end
best_epoch=$("$PY" -c "import json; print([c['epoch'] for c in json.load(open('ls.json')) if c['best']][0])")
[ "$(table_epochs)" = "$((best_epoch+1)) $((best_epoch+2))" ] && ok ||
    bad "resume-from best ran '$(table_epochs)' after best epoch $best_epoch"
expect_grep "says the lr changed" "learning rate 0.3 -> 0.1" err.txt
n=$(ls mon2/ckpt-*.cairn | tail -1)
"$CLI" meta "$n" | "$PY" -c "
import json, sys; m = json.load(sys.stdin)
assert m['optimizer']['lr'] == 0.1 and m['config']['lr'] == 0.1, m['optimizer']" && ok ||
    bad "the new lr is not in the checkpoint"
check "resume from best, another --num-units" 1 "$MLP" --ckpt-dir mon2 --resume-from best --num-units 20
expect_grep "names the option" "num-units" err.txt
check "resume train-end into a new prefix" 0 "$MLP" --ckpt-dir mon2 --resume --resume-prefix train_end_ \
    --prefix run3_ --epochs 2 --no-train-end
[ "$(table_epochs)" = "11 12" ] && ok || bad "train-end resume ran '$(table_epochs)'"
ls mon2/run3_ckpt-00000001.cairn >/dev/null 2>&1 && ok || bad "no run3_ checkpoints: $(ls mon2)"

# 6. --load-best --predict prints what --load-params of the best file prints.
check "load-best predict" 0 "$MLP" --ckpt-dir mon --load-best --predict
cp out.txt best-pred.txt
expect_grep "names the best" "loaded the best checkpoint mon/ckpt-" err.txt
bestfile=$("$CLI" ckpt best mon)
check "load-params of that file" 0 "$MLP" --load-params "$bestfile" --predict
cmp -s out.txt best-pred.txt && ok || { bad "--load-best predicts differently"; diff out.txt best-pred.txt; }
[ "$(grep -c '0x1\.' best-pred.txt)" = 20 ] && ok || bad "--load-best printed no predictions"
check "load-best, ranked by another monitor" 1 "$MLP" --ckpt-dir mon --load-best --monitor valid_acc
expect_grep "tells which monitor" "monitor valid_loss" err.txt

# 7. --export: safetensors with the best parameters, read by plain Python.
check "export" 0 "$MLP" --ckpt-dir mon --load-best --export best.safetensors
for n in 0.weight 0.bias 3.weight 3.bias 4.weight 4.bias; do "$CLI" cat "$bestfile" "params/$n" >"want-$n.bin"; done
py "the export is safetensors holding the best params" <<'PY'
import json, struct
raw = open('best.safetensors', 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
head = json.loads(raw[8:8 + n])
assert head.pop('__metadata__')['format'] == 'pt'
data = raw[8 + n:]
shapes = {'0.weight': [10, 10], '0.bias': [10], '3.weight': [10, 10], '3.bias': [10],
          '4.weight': [2, 10], '4.bias': [2]}
assert set(head) == set(shapes), head
for name, t in head.items():
    b, e = t['data_offsets']
    assert t['dtype'] == 'F32' and t['shape'] == shapes[name], t
    assert data[b:e] == open(f'want-{name}.bin', 'rb').read(), name
PY

# 8. SIGTERM mid-training: a checkpoint saved for the signal, a clean stop
#    with exit 0, and --resume goes on after it.
"$MLP" --ckpt-dir sig --epochs 1000 --sleep-per-epoch 150 >sig.out 2>sig.err &
pid=$!
if wait_row sig.out 2; then kill -TERM $pid; else bad "SIGTERM: no epoch 2 row"; kill -9 $pid; fi
wait $pid; rc=$?
[ $rc = 0 ] && ok || { bad "SIGTERM: exit $rc"; cat sig.err; }
expect_grep "SIGTERM: a line says so" "signal received: saved a checkpoint" sig.err
"$CLI" ckpt ls sig --json >sig.json
last=$("$PY" -c "
import json; c = json.load(open('sig.json'))[-1]
assert 'signal' in c['reasons'], c
print(c['epoch'])") && ok || bad "SIGTERM: no checkpoint saved for the signal"
[ "$(tail -1 sig.out | awk '{print $1, $5}')" = "${last:-?} +" ] && ok || bad "SIGTERM: last row is not the signal's save"
check "SIGTERM: --resume goes on" 0 "$MLP" --ckpt-dir sig --resume --epochs 1
[ "$(table_epochs)" = "$((${last:-0}+1))" ] && ok || bad "after SIGTERM resumed at '$(table_epochs)'"

# 9. kill -9 mid-run (sleeping, then at random instants while saving every
#    epoch): the directory verifies, and --resume goes on after the newest.
for delay in sleep 0.3 0.5 0.7; do
    rm -rf kill kill.out
    if [ $delay = sleep ]; then
        "$MLP" --ckpt-dir kill --monitor none --epochs 100000 --sleep-per-epoch 20 >kill.out 2>&1 &
        pid=$!; wait_row kill.out 3 || bad "kill -9: no epoch 3 row"
    else
        "$MLP" --ckpt-dir kill --monitor none --keep-last 2 --epochs 100000 >kill.out 2>&1 &
        pid=$!; wait_row kill.out 1 || bad "kill -9: no epoch 1 row"; sleep $delay
    fi
    kill -9 $pid; wait $pid 2>/dev/null
    check "kill -9 ($delay): verify" 0 "$CLI" ckpt verify kill
    newest=$("$CLI" ckpt ls kill --json | "$PY" -c "import json,sys; print(json.load(sys.stdin)[-1]['epoch'])")
    check "kill -9 ($delay): resume" 0 "$MLP" --ckpt-dir kill --monitor none --resume --epochs 1
    [ "$(table_epochs)" = "$((newest+1))" ] && ok || bad "kill -9 ($delay): resumed at '$(table_epochs)', newest $newest"
    [ -z "$(ls -a kill | grep cairn-tmp)" ] && ok || bad "kill -9 ($delay): a temporary file survived"
done

# 9b. A second run launched by mistake into the same directory is refused
#     while the first lives (naming its PID); readers are not; a pruning
#     writer is; once the first is killed, the second runs and replaces
#     nothing the first committed.
rm -rf two
"$MLP" --ckpt-dir two --monitor none --epochs 100000 --sleep-per-epoch 20 --seed 1 >two.out 2>&1 &
pid=$!; wait_row two.out 2 || bad "two runs: no epoch 2 row"
check "two runs: the second is refused" 1 "$MLP" --ckpt-dir two --monitor none --epochs 2 --seed 2
expect_grep "two runs: names the holder" "being written by process $pid" err.txt
check "two runs: ls is not blocked" 0 "$CLI" ckpt ls two
check "two runs: verify is not blocked" 0 "$CLI" ckpt verify two
check "two runs: prune is a writer" 3 "$CLI" ckpt prune two --keep-last 1
kill -9 $pid; wait $pid 2>/dev/null
n_before=$(ls two/ckpt-*.cairn | wc -l)
sha256sum two/ckpt-*.cairn >two-before.sha
check "two runs: the second goes on after the kill" 0 "$MLP" --ckpt-dir two --monitor none --epochs 2 --seed 2
sha256sum --quiet -c two-before.sha && ok || bad "two runs: a checkpoint of the first run changed"
[ "$(ls two/ckpt-*.cairn | wc -l)" = $((n_before + 2)) ] && ok ||
    bad "two runs: $n_before checkpoints became $(ls two/ckpt-*.cairn | wc -l), not $((n_before + 2))"

# 10. Usage and errors.
check "no cp column without --ckpt-dir" 0 "$MLP" --epochs 1
expect_grep "plain table" "valid_loss     dur" out.txt
check "--prefix without --ckpt-dir" 2 "$MLP" --prefix x
expect_grep "says what is missing" "needs --ckpt-dir" err.txt
check "--resume without --ckpt-dir" 2 "$MLP" --resume
check "--monitor bogus" 2 "$MLP" --ckpt-dir u --monitor accuracy
check "--keep-best with --monitor none" 2 "$MLP" --ckpt-dir u --monitor none --keep-best 2
check "--resume-from sideways" 2 "$MLP" --ckpt-dir u --resume-from sideways
check "--load-best with --epochs" 2 "$MLP" --ckpt-dir u --load-best --epochs 3
check "--resume with --load" 2 "$MLP" --ckpt-dir u --resume --load x.cairn
check "--ckpt-dir with --load-params" 2 "$MLP" --ckpt-dir u --load-params p.cairn
check "train-end prefix = prefix" 2 "$MLP" --ckpt-dir u --prefix a_ --train-end-prefix a_
check "--export of another format" 2 "$MLP" --export p.cairn
check "--load-best of a missing directory" 3 "$MLP" --ckpt-dir no-such-dir --load-best
check "--load-best of an empty directory" 1 "$MLP" --ckpt-dir fresh --load-best --prefix none_
check "--ckpt-dir that is a file" 3 "$MLP" --ckpt-dir straight.cairn --epochs 1
check "--help" 0 "$MLP" --help
expect_grep "help lists --ckpt-dir" "--ckpt-dir DIR" out.txt
expect_grep "help documents the default monitor" "valid_loss (the default)" out.txt

finish
