"""cairn.skorch: skorch's checkpoint walkthrough with only the import
changed, exact resumes, the NeuralNet mixin, and SIGKILLs during training."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skorch = pytest.importorskip("skorch")
import cairn  # noqa: E402
from cairn.skorch import (CairnNetMixin, Checkpoint, LoadInitState,  # noqa: E402
                          TrainEndCheckpoint)
from skorch import NeuralNetClassifier  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402

from skorch_common import data, make_net  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Snapshot(Callback):
    """Copies the module's and optimizer's state at every epoch end."""

    def initialize(self):
        self.states = {}
        return self

    def on_epoch_end(self, net, **kwargs):
        self.states[len(net.history)] = (
            {k: v.clone() for k, v in net.module_.state_dict().items()},
            _clone_opt(net.optimizer_.state_dict()))


def _clone_opt(sd):
    return {"state": {k: {n: (t.clone() if torch.is_tensor(t) else t) for n, t in s.items()}
                      for k, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}


def assert_state_equal(net, module_sd, opt_sd):
    for k, v in module_sd.items():
        assert torch.equal(net.module_.state_dict()[k], v), k
    got = net.optimizer_.state_dict()
    for pid, s in opt_sd["state"].items():
        for k, v in s.items():
            assert torch.equal(got["state"][pid][k], v) if torch.is_tensor(v) else \
                got["state"][pid][k] == v
    assert got["param_groups"] == opt_sd["param_groups"]


def test_new_callbacks_each_run(tmp_path, monkeypatch):
    """skorch's walkthrough makes new callbacks for each run on the same
    directory while the last run's are still alive (TrainEndCheckpoint
    refers to itself: only the garbage collector frees it). Each callback
    gives the directory's writer lock back when training ends, so the next
    run's callbacks write (it raised BusyError at the end of run 2)."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    X, y = data(300)
    alive = []
    for run in (1, 2):
        cp = Checkpoint(dirname="exp")
        net = make_net(callbacks=[cp, TrainEndCheckpoint(dirname="exp"), LoadInitState(cp)],
                       max_epochs=2)
        net.fit(X, y)
        alive.append(net)
    assert len(alive[1].history) == 4  # run 2 went on from run 1's end
    with cairn.open("exp/train_end_ckpt-00000002.cairn") as f:  # run 2's, at epoch 4
        assert f.metadata()["config"]["epoch"] == 4


def test_walkthrough(tmp_path, monkeypatch):
    """skorch's save/load walkthrough: Checkpoint on valid_loss_best,
    TrainEndCheckpoint, LoadInitState; rerun goes on; load_params restores
    the best, also into a stock NeuralNetClassifier."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    X, y = data()
    cp = Checkpoint(dirname="exp1")
    train_end_cp = TrainEndCheckpoint(dirname="exp1")
    snap = Snapshot()
    net = make_net(callbacks=[cp, train_end_cp, LoadInitState(cp), snap])
    net.fit(X, y)
    assert len(net.history) == 5
    best_epoch = max(i + 1 for i, h in enumerate(net.history) if h["valid_loss_best"])
    assert sum(net.history[:, "event_cp"]) == sum(net.history[:, "valid_loss_best"])

    # Rerun: LoadInitState resumes from the latest checkpoint (the best
    # epoch) and the epochs go on.
    snap2 = Snapshot()
    resumed = {}

    class Probe(Callback):
        def on_train_begin(self, net, **kwargs):
            resumed["module"] = {k: v.clone() for k, v in net.module_.state_dict().items()}
            resumed["opt"] = _clone_opt(net.optimizer_.state_dict())
            resumed["epochs"] = len(net.history)

    net = make_net(callbacks=[cp, train_end_cp, LoadInitState(cp), Probe(), snap2])
    net.fit(X, y)
    assert resumed["epochs"] == best_epoch
    assert len(net.history) == best_epoch + 5
    assert [h["epoch"] for h in net.history] == list(range(1, best_epoch + 6))
    # The resumed params and optimizer state are the saved ones, bit for bit.
    module_sd, opt_sd = snap.states[best_epoch]
    for k, v in module_sd.items():
        assert torch.equal(resumed["module"][k], v), k
    for pid, s in opt_sd["state"].items():
        for k, v in s.items():
            assert torch.equal(resumed["opt"]["state"][pid][k], v)

    # load_params(checkpoint=cp) restores the best, into a stock net too.
    best2 = max(i + 1 for i, h in enumerate(net.history) if h["valid_loss_best"])
    want = snap2.states[best2] if best2 > best_epoch else snap.states[best2]
    stock = make_net(callbacks=[cp])
    stock.initialize()
    stock.load_params(checkpoint=cp)
    assert_state_equal(stock, *want)
    assert len(stock.history) == best2

    class MixNet(CairnNetMixin, NeuralNetClassifier):
        pass

    mixed = make_net(MixNet, callbacks=[cp])
    mixed.initialize()
    mixed.load_params(checkpoint=cp)
    assert_state_equal(mixed, *want)
    # the checkpoints, beside the managers' lock files (docs/CHECKPOINTS.md),
    # and skorch's own file per part, written by cairn
    names = sorted(n for n in os.listdir("exp1") if not n.endswith(".cairn-lock"))
    parts = [p + n for p in ("", "train_end_")
             for n in ("params.pt", "optimizer.pt", "criterion.pt", "history.json")]
    assert sorted(n for n in names if not n.endswith(".cairn")) == sorted(parts), names
    assert any(n.startswith("train_end_ckpt-") for n in names)
    for k, v in want[0].items():  # params.pt: the last checkpoint, the best
        assert torch.equal(torch.load("exp1/params.pt")[k], v), k
    # TrainEndCheckpoint resumes too: its state is the end of run 2.
    end = make_net(callbacks=[train_end_cp])
    end.initialize()
    end.load_params(checkpoint=train_end_cp)
    assert_state_equal(end, *snap2.states[len(net.history)])


def test_five_plus_five_equals_ten(tmp_path):
    torch.use_deterministic_algorithms(True)
    X, y = data(400)
    torch.manual_seed(3)
    straight = make_net(max_epochs=10)
    straight.fit(X, y)
    cp = Checkpoint(monitor=None, dirname=str(tmp_path / "run"), sync=False)
    torch.manual_seed(3)
    make_net(callbacks=[cp, LoadInitState(cp)]).fit(X, y)
    torch.manual_seed(77)  # a new process would not have the old RNG
    second = make_net(callbacks=[cp, LoadInitState(cp)])
    second.fit(X, y)
    assert len(second.history) == 10
    for k, v in straight.module_.state_dict().items():
        assert torch.equal(second.module_.state_dict()[k], v), k
    assert np.array_equal(second.history[:, "train_loss"], straight.history[:, "train_loss"])


def test_mixin_save_and_load_params(tmp_path):
    class MixNet(CairnNetMixin, NeuralNetClassifier):
        pass

    X, y = data(200)
    net = make_net(MixNet, max_epochs=2)
    net.fit(X, y)
    paths = {k: str(tmp_path / n) for k, n in
             [("f_params", "p.cairn"), ("f_optimizer", "o.cairn"), ("f_history", "h.json"),
              ("f_criterion", "c.safetensors")]}
    net.save_params(**paths)
    with cairn.open(paths["f_params"]) as f:
        assert set(f.keys()) == set(net.module_.state_dict())
    other = make_net(MixNet, max_epochs=2)
    other.initialize()
    other.load_params(**paths)
    assert_state_equal(other, net.module_.state_dict(), net.optimizer_.state_dict())
    assert len(other.history) == 2
    # A params file of another model: strict, everything named, nothing changed.
    small = make_net(MixNet, module__num_units=5)
    small.initialize()
    before = {k: v.clone() for k, v in small.module_.state_dict().items()}
    with pytest.raises(cairn.MismatchError, match="dense0.weight"):
        small.load_params(f_params=paths["f_params"])
    for k, v in before.items():
        assert torch.equal(small.module_.state_dict()[k], v)
    with pytest.raises(ValueError, match="pickle"):
        Checkpoint(f_pickle="net.pkl")


def test_sigkill_during_training_never_breaks_latest(tmp_path):
    trials = int(os.environ.get("CAIRN_SKORCH_KILLS", "40"))
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    worker = subprocess.Popen([sys.executable, os.path.join(HERE, "skorch_worker.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    rng = np.random.default_rng(7)
    d = tmp_path / "ckpts"
    X, y = data(300)
    epochs_seen = []
    try:
        for trial in range(trials):
            worker.stdin.write(f"go {d}\n")
            worker.stdin.flush()
            pid = int(worker.stdout.readline())
            time.sleep(float(rng.uniform(0.02, 0.6)))
            os.kill(pid, 9)
            assert worker.stdout.readline().startswith("reaped")
            cp = Checkpoint(monitor=None, dirname=str(d), keep_last=3)
            m = cp.manager()
            assert all(c.valid for c in m.checkpoints())
            # No checkpoint temporary ever; a part file (params.pt, ...) that
            # is replaced passes through a temporary name for an instant, and
            # a kill right then leaves it for the next save there to sweep.
            names = os.listdir(d) if d.exists() else []
            assert not [n for n in names if "cairn-tmp" in n and "ckpt-" in n], names
            assert all(n.startswith(".") for n in names if "cairn-tmp" in n), names
            if m.latest() is not None:
                net = make_net(callbacks=[cp])
                net.initialize()
                net.load_params(checkpoint=cp)  # strict, verified
                epochs_seen.append(len(net.history))
            cp.close()
    finally:
        worker.kill()
        worker.wait()
    assert epochs_seen, "no checkpoint was ever committed"
    assert epochs_seen == sorted(epochs_seen)  # every rerun went on from the last


def test_checkpoint_file_name_templates(tmp_path):
    """f_params/f_optimizer/f_criterion/f_history name files as skorch's own
    Checkpoint does: fn_prefix + the template formatted with last_epoch
    (and net, last_batch), under dirname; a stock net and torch.load read
    them."""
    torch.manual_seed(0)
    X, y = data()
    d = tmp_path / "exp"
    cp = Checkpoint(monitor=None, dirname=str(d), fn_prefix="run1_", sync=False,
                    f_params="params_{last_epoch[epoch]}.pt",
                    f_optimizer="opt_{last_epoch[epoch]}.cairn",
                    f_criterion=None, f_history="hist.json")
    snap = Snapshot()
    net = make_net(max_epochs=3, callbacks=[cp, snap])
    net.fit(X, y)
    names = set(os.listdir(d))
    for epoch in (1, 2, 3):
        assert f"run1_params_{epoch}.pt" in names, names
        assert f"run1_opt_{epoch}.cairn" in names, names
        sd = torch.load(d / f"run1_params_{epoch}.pt")  # stock torch reads it
        for k, v in snap.states[epoch][0].items():
            assert torch.equal(sd[k], v), (epoch, k)
    assert "run1_hist.json" in names and not any("criterion" in n for n in names)
    stock = make_net()
    stock.initialize()
    stock.load_params(f_params=str(d / "run1_params_2.pt"), f_history=str(d / "run1_hist.json"))
    for k, v in snap.states[2][0].items():
        assert torch.equal(stock.module_.state_dict()[k], v), k
    assert len(stock.history) == 3
    # the templates take net and last_batch too; write_files=False writes only checkpoints
    cp2 = Checkpoint(monitor=None, dirname=str(tmp_path / "b"), sync=False,
                     f_params="{net.__class__.__name__}_{last_batch[valid_loss]:.3f}.pt",
                     f_optimizer=None, f_criterion=None, f_history=None)
    cp3 = Checkpoint(monitor=None, dirname=str(tmp_path / "c"), sync=False, write_files=False)
    make_net(max_epochs=1, callbacks=[cp2, cp3]).fit(X, y)
    assert [n for n in os.listdir(tmp_path / "b") if n.endswith(".pt")][0].startswith(
        "NeuralNetClassifier_")
    assert all(n.endswith((".cairn", ".cairn-lock")) for n in os.listdir(tmp_path / "c"))
