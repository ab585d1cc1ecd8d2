#!/usr/bin/env bash
# cli_torch_read.sh -- the CLI on PyTorch files: `cairn ls`, `meta`, `show`,
# `verify` and `convert` of .pt files (zip and legacy) and of a skorch
# checkpoint directory, and the refusal of a malicious pickle. Uses the
# public corpus ($CAIRN_VECTORS); skipped when it is absent.
. "$(dirname "$0")/lib/cli.sh"
V=${CAIRN_VECTORS:-}
if [ -z "$V" ] || [ ! -f "$V/torch/checkpoint.pt" ]; then echo "vectors absent: skipped"; exit 77; fi

check "ls checkpoint" 0 "$CLI" ls "$V/torch/checkpoint.pt"
expect_grep "optimizer tensors by path" "optimizer.state.0.exp_avg_sq" out.txt
expect_grep "model tensors by path" "model.0.weight" out.txt
check "info" 0 "$CLI" info "$V/torch/checkpoint.pt"
expect_grep "format named" "torch" out.txt
check "meta shows the containers" 0 "$CLI" meta "$V/torch/checkpoint.pt"
expect_grep "epoch" '"epoch": 7' out.txt
expect_grep "tensor references" '"$tensor": "model.0.weight"' out.txt
expect_grep "param_groups kept" '"betas"' out.txt
check "verify" 0 "$CLI" verify "$V/torch/checkpoint.pt"
check "show a strided view" 0 "$CLI" show "$V/torch/views_shared_storage.pt" flint_t
check "ls legacy" 0 "$CLI" ls "$V/torch/legacy_format.pt"
expect_grep "legacy tensors" "onyx_rows" out.txt

# .pt -> .cairn: every tensor byte for byte, the tree with its references
check "convert to cairn" 0 "$CLI" convert "$V/torch/checkpoint.pt" ck.cairn
check "verify converted" 0 "$CLI" verify ck.cairn
for name in model.0.weight optimizer.state.3.exp_avg rng; do
    "$CLI" cat "$V/torch/checkpoint.pt" "$name" >a.bin 2>err.txt
    "$CLI" cat ck.cairn "$name" >b.bin 2>>err.txt
    if cmp -s a.bin b.bin && [ -s a.bin ]; then pass=$((pass+1)); else
        fail=$((fail+1)); echo "FAIL: $name differs after convert"; cat err.txt; fi
done
check "meta of converted" 0 "$CLI" meta ck.cairn
expect_grep "tree carried" '"$tensor": "optimizer.state.0.step"' out.txt
check "views to cairn" 0 "$CLI" convert "$V/torch/views_shared_storage.pt" v.cairn
"$CLI" cat "$V/torch/views_shared_storage.pt" flint_t >a.bin 2>/dev/null
"$CLI" cat v.cairn flint_t >b.bin 2>/dev/null
if cmp -s a.bin b.bin && [ -s a.bin ]; then pass=$((pass+1)); else
    fail=$((fail+1)); echo "FAIL: transposed view differs after convert"; fi

# a skorch checkpoint directory is one archive
if [ -d "$V/skorch/exp1" ]; then
    check "ls skorch dir" 0 "$CLI" ls "$V/skorch/exp1"
    expect_grep "params prefixed" "params.0.weight" out.txt
    expect_grep "optimizer prefixed" "optimizer.state.0.momentum_buffer" out.txt
    check "meta skorch dir" 0 "$CLI" meta "$V/skorch/exp1"
    expect_grep "history parsed" '"history"' out.txt
    check "convert skorch dir" 0 "$CLI" convert "$V/skorch/exp1" sk.cairn
fi

# refusals name the global and the member
check "malicious refused" 1 "$CLI" ls "$V/malicious/torch_os_system.pt"
expect_grep "global named" "global os.system is not allowed" err.txt
expect_grep "member named" "member 'torch_os_system/data.pkl'" err.txt
mkdir plain
check "plain directory" 3 "$CLI" ls plain
expect_grep "not a checkpoint" "not a regular file" err.txt
finish
