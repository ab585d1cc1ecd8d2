"""s3:// from Python: cairn.save/open/load/convert and CheckpointManager on a
bucket prefix, against moto with SigV4 enforced (tests/s3_harness.py starts
and stops it; this module re-runs its checks as a child of the harness)."""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
HARNESS = os.path.join(REPO, "tests", "s3_harness.py")

CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import os, numpy as np, cairn
b = "s3://" + os.environ["CAIRN_S3_BUCKET"] + "/py"
rng = np.random.default_rng(1)
t = {"w": rng.standard_normal((1024, 2048)).astype(np.float32),   # 8 MiB: two parts
     "b": np.arange(10, dtype=np.int64)}
cairn.save(t, b + "/m.cairn", metadata={"epoch": 3})
with cairn.open(b + "/m.cairn") as f:
    assert sorted(f.keys()) == ["b", "w"], f.keys()
    assert np.array_equal(np.asarray(f["w"]), t["w"]) and np.array_equal(np.asarray(f["b"]), t["b"])
    assert f.metadata() == {"epoch": 3}, f.metadata()
cairn.save(t, b + "/s.safetensors")
back = cairn.load(b + "/s.safetensors")
assert all(np.array_equal(back[k], t[k]) for k in t)
cairn.convert(b + "/m.cairn", b + "/m.safetensors")
assert np.array_equal(cairn.load(b + "/m.safetensors")["w"], t["w"])
try:
    cairn.open(b + "/none.cairn")
    raise SystemExit("a missing key opened")
except cairn.NotFoundError as e:
    assert "py/none.cairn" in str(e), str(e)
if os.environ.get("CAIRN_S3_SERVER") != "s3rver":  # s3rver checks no signature
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-42"
    try:
        cairn.open(b + "/m.cairn")
        raise SystemExit("a wrong secret opened")
    except cairn.AuthError as e:
        assert isinstance(e, PermissionError) and isinstance(e, cairn.IOError), type(e).__mro__
        assert e.status == 18, e.status
        m = str(e)
        assert "py/m.cairn" in m and "403" in m and "SignatureDoesNotMatch" in m, m
        assert os.environ["AWS_ACCESS_KEY_ID"] in m and "not-the-secret" not in m and secret not in m, m
    try:
        cairn.save(t, b + "/denied.cairn")
        raise SystemExit("a wrong secret saved")
    except PermissionError as e:
        assert "403" in str(e), str(e)
    os.environ["AWS_SECRET_ACCESS_KEY"] = secret
m = cairn.CheckpointManager(b + "/run", keep_last=2)
for e in range(4):
    m.save({"extra": {"w": t["w"] * e}}, epoch=e, force=True)
assert len(m.checkpoints()) == 2, m.checkpoints()
m.close()
m2 = cairn.CheckpointManager(b + "/run", keep_last=2)
latest = m2.latest()
assert latest.epoch == 3 and latest.path.startswith(b + "/run/ckpt-"), latest
print("python s3 ok")
"""


def test_s3_from_python(tmp_path):
    if not os.path.exists(HARNESS):
        pytest.skip("tests/s3_harness.py not found")
    pkg = os.environ.get("CAIRN_PYTHONPATH") or os.path.dirname(HERE)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    r = subprocess.run([sys.executable, HARNESS, "--timeout", "240", "--", sys.executable,
                        str(script), pkg], capture_output=True, text=True, timeout=300)
    if r.returncode == 77:
        pytest.skip(r.stdout.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "python s3 ok" in r.stdout
