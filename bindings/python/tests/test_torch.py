"""cairn.torch: tied weights, strict reports, whole training state resumed
bit for bit."""
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import cairn  # noqa: E402
import cairn.torch as ct  # noqa: E402
from torch import nn  # noqa: E402


class Tied(nn.Module):
    def __init__(self, dim=3):
        super().__init__()
        self.emb = nn.Embedding(5, dim)
        self.out = nn.Linear(dim, 5, bias=False)
        self.out.weight = self.emb.weight
        self.bn = nn.BatchNorm1d(dim)


def test_tied_weights_stored_once_and_restored_shared(tmp_path):
    m = Tied()
    path = tmp_path / "m.cairn"
    ct.save_state_dict(m, path)
    with cairn.open(path) as f:
        a, b = f.info("emb.weight"), f.info("out.weight")
        assert a.offset == b.offset and a.stored_bytes == b.stored_bytes
        assert f.info()["payload_bytes"] < sum(f.info(n).stored_bytes for n in f.keys())
    sd = ct.load_state_dict(path)
    assert sd["emb.weight"] is sd["out.weight"]
    m2 = Tied()
    r = ct.load_state_dict(path, m2)
    assert r.loaded == len(m.state_dict()) and not r.missing_keys and not r.unexpected_keys
    assert m2.emb.weight is m2.out.weight
    assert torch.equal(m2.emb.weight, m.emb.weight)
    # .pt written by cairn: torch itself sees one storage.
    ct.save_state_dict(m, tmp_path / "m.pt")
    tsd = torch.load(tmp_path / "m.pt", weights_only=True)
    assert tsd["emb.weight"].data_ptr() == tsd["out.weight"].data_ptr()
    assert torch.equal(tsd["bn.running_var"], m.bn.running_var)


def test_strict_load_reports_everything_and_changes_nothing(tmp_path):
    path = tmp_path / "m.cairn"
    src = Tied()
    ct.save_state_dict(src, path)

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 4)        # shape differs
            self.out = nn.Linear(3, 5, bias=True)  # bias missing from the file
            self.bn = nn.BatchNorm1d(3).double()   # dtype differs

    o = Other()
    before = {k: v.clone() for k, v in o.state_dict().items()}
    with pytest.raises(cairn.MismatchError) as e:
        ct.load_state_dict(path, o)
    kinds = {(k, n or fn) for k, n, fn, _ in e.value.report}
    assert ("missing", "out.bias") in kinds
    assert ("shape", "emb.weight") in kinds
    assert ("dtype", "bn.weight") in kinds and ("dtype", "bn.running_mean") in kinds
    assert "out.bias" in str(e.value) and "emb.weight" in str(e.value)
    assert all(torch.equal(before[k], v) for k, v in o.state_dict().items())
    r = ct.load_state_dict(path, o, strict=False)
    assert r.missing_keys == ["out.bias"]
    assert torch.equal(o.out.weight, src.out.weight)  # what matched was loaded
    assert dict(r.mismatched).keys() >= {"emb.weight"}
    # Lossless conversion on request: float32 file into float64 model.
    r = ct.load_state_dict(path, o, strict=False, convert=True)
    assert "bn.weight" not in dict(r.mismatched)


def test_bf16_saved_as_bf16(tmp_path):
    t = torch.randn(4, 5).to(torch.bfloat16)
    ct.save_state_dict({"w": t}, tmp_path / "b.safetensors")
    with cairn.open(tmp_path / "b.safetensors") as f:
        assert f.info("w").dtype == "BF16"
        assert f["w"].dtype == np.uint16
        got = f.torch("w")
    assert got.dtype == torch.bfloat16 and torch.equal(got, t)


def make_run():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt


def train_epoch(model, opt, X, y):
    perm = torch.randperm(len(X))  # torch's global RNG
    noise = float(np.random.standard_normal()) * 1e-3  # NumPy's
    jitter = random.random() * 1e-3  # Python's
    for i in range(0, len(X), 32):
        idx = perm[i:i + 32]
        loss = nn.functional.cross_entropy(model(X[idx] + noise + jitter), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_training_state_resume_is_bitwise(tmp_path):
    torch.use_deterministic_algorithms(True)
    g = torch.Generator().manual_seed(42)
    X, y = torch.randn(256, 10, generator=g), torch.randint(0, 2, (256,), generator=g)
    np.random.seed(1)
    random.seed(2)
    model, opt = make_run()
    for _ in range(4):
        train_epoch(model, opt, X, y)
    straight_model, straight_opt = model.state_dict(), opt.state_dict()

    np.random.seed(1)
    random.seed(2)
    model, opt = make_run()
    for _ in range(2):
        train_epoch(model, opt, X, y)
    path = tmp_path / "state.cairn"
    ct.save_training_state(path, model, opt, epoch=2, step=16, history=[{"loss": 0.5}] * 2,
                           data_position={"epoch": 2, "batch": 0})
    with cairn.open(path) as f:
        meta = f.metadata()
        assert meta["type_tag"]["kind"] == "cairn.python"
        assert "python" in meta["rng"] and "torch" in meta["rng"]
    # Disturb every RNG and the model: the load must put everything back.
    torch.manual_seed(123)
    np.random.seed(9)
    random.seed(9)
    model, opt = make_run()
    train_epoch(model, opt, X, y)
    st = ct.load_training_state(path, model, opt)
    assert (st["epoch"], st["step"]) == (2, 16) and st["data_position"]["batch"] == 0
    for _ in range(2):
        train_epoch(model, opt, X, y)
    for k, v in straight_model.items():
        assert torch.equal(model.state_dict()[k], v), k
    resumed = opt.state_dict()
    for pid, s in straight_opt["state"].items():
        for k, v in s.items():
            assert torch.equal(resumed["state"][pid][k], v), (pid, k)
    assert resumed["param_groups"] == straight_opt["param_groups"]


def test_nothing_is_pickled(tmp_path):
    model, opt = make_run()
    with pytest.raises(TypeError, match="nothing is pickled"):
        ct.save_training_state(tmp_path / "s.cairn", model, opt, callback=lambda: 0)
    assert not (tmp_path / "s.cairn").exists()
