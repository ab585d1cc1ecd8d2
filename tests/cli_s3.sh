#!/usr/bin/env bash
# cli_s3.sh -- every CLI command on s3:// URLs, against moto with SigV4
# enforced (tests/s3_harness.py, which this script re-runs itself under):
# convert into, out of and between objects in every format, ls/info/meta/
# verify/cat/show/diff/unpack/sign of an object, sharded safetensors on a
# prefix, checkpoint commands on a prefix, and clear errors (missing key,
# missing bucket, wrong secret) with the CLI's exit codes; examples/mlp
# checkpointing into a prefix and resuming from it.
if [ -z "${CAIRN_S3_BUCKET:-}" ]; then
    exec "${CAIRN_PYTHON:-/usr/bin/python3}" "$(dirname "$0")/s3_harness.py" --timeout 300 -- bash "$0"
fi
. "$(dirname "$0")/lib/cli.sh"
skip_unless_python "import numpy" "numpy missing"
B=s3://$CAIRN_S3_BUCKET/cli
"$PY" - <<'PY'
import numpy as np
rng = np.random.default_rng(7)
np.save('w.npy', rng.standard_normal((1024, 1024)).astype(np.float32))   # 4 MiB
np.save('big.npy', rng.standard_normal((3, 1024, 1024)).astype(np.float64))  # 24 MiB: multipart
np.save('i.npy', np.arange(-5, 5, dtype=np.int64))
np.save('s.npy', np.array(2.5, dtype=np.float32))
PY
check "pack" 0 "$CLI" pack m.cairn w=w.npy big=big.npy i=i.npy s=s.npy
check "convert to an object" 0 "$CLI" convert m.cairn "$B/m.cairn"
for cmd in ls info meta verify; do
    check "$cmd of an object" 0 "$CLI" $cmd "$B/m.cairn"
done
check "info names the format" 0 "$CLI" info "$B/m.cairn"
expect_grep "info" "cairn" out.txt
check "cat" 0 "$CLI" cat "$B/m.cairn" big
"$CLI" cat m.cairn big > local.bin
cmp -s out.txt local.bin && ok || bad "cat of the object differs from the local file"
check "show" 0 "$CLI" show "$B/m.cairn" w
check "unpack" 0 "$CLI" unpack "$B/m.cairn" un
check "unpacked identical" 0 cmp un/big.npy big.npy
check "diff local/object" 0 "$CLI" diff m.cairn "$B/m.cairn"
for fmt in safetensors gguf npz pt params h5; do
    check "object to $fmt object" 0 "$CLI" convert "$B/m.cairn" "$B/m.$fmt"
    check "$fmt back to local" 0 "$CLI" convert "$B/m.$fmt" "back.$fmt.cairn"
    check "$fmt identical" 0 "$CLI" diff --tensors-only m.cairn "back.$fmt.cairn"
done
check "one npy object" 0 "$CLI" convert big.npy "$B/big.npy"
check "npy object" 0 "$CLI" diff --tensors-only big.npy "$B/big.npy"
check "sharded to a prefix" 0 "$CLI" convert m.cairn "$B/sh/model.safetensors" --shard-size 8MiB
check "sharded ls" 0 "$CLI" ls "$B/sh/model.safetensors.index.json"
check "sharded identical" 0 "$CLI" diff --tensors-only m.cairn "$B/sh/model.safetensors.index.json"
check "keygen" 0 "$CLI" keygen k.sec k.pub
check "sign an object" 0 "$CLI" sign "$B/m.cairn" --key k.sec
check "verify its signature" 0 "$CLI" verify "$B/m.cairn" --pubkey k.pub

# Errors: exit codes and messages that name the object, never the secret.
check "missing key" 1 "$CLI" ls "$B/none.cairn"
expect_grep "missing key" "cli/none.cairn" err.txt
expect_grep "missing key says 404" "404" err.txt
check "missing bucket" 1 "$CLI" ls "s3://no-such-bucket-9/m.cairn"
expect_grep "missing bucket" "no such bucket" err.txt
check "bad URL" 2 "$CLI" ls "s3://x/m.cairn"
if [ "${CAIRN_S3_SERVER:-}" != s3rver ]; then  # s3rver checks no signature
    AWS_SECRET_ACCESS_KEY=wrong-secret-value check "wrong secret" 3 "$CLI" ls "$B/m.cairn"
    expect_grep "wrong secret" "HTTP 403 (SignatureDoesNotMatch)" err.txt
    expect_grep "wrong secret names the key ID" "access key ID $AWS_ACCESS_KEY_ID from AWS_ACCESS_KEY_ID" err.txt
    grep -q wrong-secret-value err.txt && bad "the secret is in the message" || ok
    grep -qF "$AWS_SECRET_ACCESS_KEY" err.txt && bad "the real secret is in the message" || ok
    AWS_SECRET_ACCESS_KEY=wrong-secret-value check "wrong secret, write" 3 "$CLI" convert m.cairn "$B/w.cairn"
else
    echo "SKIP on s3rver: the wrong-secret checks (s3rver checks no signature)"
fi

# Checkpoint commands on a prefix: examples/mlp trains with its
# checkpoints in the bucket, resumes from there, and the CLI reads them.
MLP=${CAIRN_BUILD_DIR:?}/mlp
check "mlp checkpoints into a prefix" 0 "$MLP" --ckpt-dir "$B/run" --epochs 4 --every 1 --keep-last 2
check "ckpt ls" 0 "$CLI" ckpt ls "$B/run"
expect_grep "ckpt ls lists the newest" "ckpt-00000004.cairn" out.txt
check "ckpt verify" 0 "$CLI" ckpt verify "$B/run"
check "mlp resumes from the prefix" 0 "$MLP" --ckpt-dir "$B/run" --epochs 2 --every 1 --keep-last 2 --resume
expect_grep "resumed at epoch 5" "^ *5  " out.txt
check "ckpt best" 0 "$CLI" ckpt best "$B/run"
check "ckpt prune" 0 "$CLI" ckpt prune "$B/run" --keep-last 1
check "one left after prune" 0 "$CLI" ckpt ls "$B/run" --json
[ "$(grep -o 'ckpt-0' out.txt | wc -l)" -ge 1 ] && ok || bad "ckpt ls after prune"
finish
