"""cairn.CheckpointManager: triggers, retention, best/latest, async saves,
restore falling back past a damaged checkpoint."""
import os

import numpy as np
import pytest

import cairn


def state(i):
    return {"model": {"w": np.full((4, 4), i, np.float32)}, "history": [{"epoch": i}],
            "data_position": {"batch": i * 10}, "note": f"epoch {i}"}


def test_monitor_retention_best_latest(tmp_path):
    losses = [5.0, 4.0, 4.5, 3.0, 3.5, 3.2, 2.0, 2.5, float("nan"), 2.2]
    with cairn.CheckpointManager(tmp_path, monitor="valid_loss", keep_best=2, keep_last=1,
                                 sync=False) as m:
        results = [m.save(state(e), epoch=e, step=e * 10, metric=loss)
                   for e, loss in enumerate(losses, 1)]
        saved = [e for e, r in enumerate(results, 1) if r.saved]
        assert saved == [1, 2, 4, 7]  # improvements only; NaN never improves
        assert results[0].reason == "improved" and results[0].checkpoint.epoch == 1
        assert "did not improve" in results[2].reason
        assert "NaN" in results[8].reason
        kept = sorted(c.epoch for c in m.checkpoints())
        assert kept == [4, 7]  # best two (7, 4); the newest (7) is also the last
        assert m.best().epoch == 7 and m.best().metric == 2.0
        assert m.latest().epoch == 7
        forced = m.save(state(11), epoch=11, metric=9.0, force=True)
        assert forced.saved and "forced" in forced.reason
        assert m.latest().epoch == 11 and m.best().epoch == 7
        out = m.restore("best")
        assert out["model"]["w"][0, 0] == 7 and out["history"] == [{"epoch": 7}]
        assert out["note"] == "epoch 7" and out["next_epoch"] == 8
        assert out["data_position"] == {"batch": 70}
        assert "every" not in repr(m) and "checkpoints" in repr(m)


def test_every_and_keep_last(tmp_path):
    with cairn.CheckpointManager(tmp_path, every=3, keep_last=2, sync=False) as m:
        for e in range(1, 11):
            m.save(state(e), epoch=e)
        assert [c.epoch for c in m.checkpoints()] == [6, 9]


def test_async_saves_and_close_waits(tmp_path):
    m = cairn.CheckpointManager(tmp_path, async_save=True, sync=False)
    buf = np.zeros((256, 256), np.float32)
    for e in range(1, 6):
        buf[:] = e
        r = m.save({"model": {"w": buf}}, epoch=e)
        assert r.saved
        buf[:] = -1  # allowed at once: the save copied the bytes
    m.close()
    m = cairn.CheckpointManager(tmp_path)
    assert [c.epoch for c in m.checkpoints()] == [1, 2, 3, 4, 5]
    for c in m.checkpoints():
        assert m.restore(c.index)["model"]["w"][0, 0] == c.epoch
    m.close()


def test_restore_falls_back_past_a_damaged_checkpoint(tmp_path):
    with cairn.CheckpointManager(tmp_path, sync=False) as m:
        for e in (1, 2, 3):
            m.save(state(e), epoch=e)
        newest = m.latest().path
    with cairn.open(newest) as f:
        off = f.info("params/w").offset
    with open(newest, "r+b") as f:
        f.seek(off + 3)
        f.write(b"\x7f")
    with cairn.CheckpointManager(tmp_path) as m:
        out = m.restore("latest")
        assert out["info"].epoch == 2 and out["skipped"] == 1 and "checksum" in out["why"]
        with pytest.raises(cairn.ChecksumError):
            m.restore(2)


def test_empty_directory(tmp_path):
    with cairn.CheckpointManager(tmp_path / "new") as m:
        assert m.latest() is None and m.best() is None and m.checkpoints() == []
        with pytest.raises(cairn.NotFoundError):
            m.restore()
    assert os.path.isdir(tmp_path / "new")


def test_one_writer_per_directory(tmp_path):
    # the C manager's lock (docs/CHECKPOINTS.md "Two runs, one directory"):
    # a second writer, here a child process, is refused naming this one
    import subprocess
    import sys
    with cairn.CheckpointManager(tmp_path, sync=False) as m:
        m.save(state(1), epoch=1)
        child = ("import sys, cairn\n"
                 "try:\n"
                 "    cairn.CheckpointManager(sys.argv[1])\n"
                 "except cairn.BusyError as e:\n"
                 "    print(e)\n"
                 "    sys.exit(7)\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(cairn.__file__)))
        r = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 7, r.stderr
        assert f"process {os.getpid()}" in r.stdout
        with pytest.raises(cairn.BusyError):
            cairn.CheckpointManager(tmp_path)
        # readers are never blocked, and cannot save
        with cairn.CheckpointManager(tmp_path, read_only=True) as r:
            assert [c.epoch for c in r.checkpoints()] == [1]
            with pytest.raises(cairn.StateError):
                r.save(state(2), epoch=2)
    # retention keeps what an earlier run saved, unless told otherwise
    with cairn.CheckpointManager(tmp_path, keep_last=1, sync=False) as m:
        m.save(state(2), epoch=2)
        m.save(state(3), epoch=3)
        assert [c.epoch for c in m.checkpoints()] == [1, 3]
    with cairn.CheckpointManager(tmp_path, keep_last=1, sync=False, prune_earlier=True) as m:
        m.save(state(4), epoch=4)
        assert [c.epoch for c in m.checkpoints()] == [4]
    with pytest.raises(cairn.IOError):
        cairn.CheckpointManager(tmp_path / "absent", read_only=True)
    assert not os.path.exists(tmp_path / "absent")
