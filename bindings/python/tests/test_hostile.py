"""Hostile and damaged files: a Python exception, never a crash, and no
payload ever runs. Uses the repository's corpus (tests/corpus), the shared
vectors (../shared/vectors, malicious/ included) when present, and damaged
copies of files of every format made here."""
import glob
import json
import os

import numpy as np
import pytest

import cairn
from conftest import REPO, VECTORS


def exercise(path_or_bytes, **kw):
    """Everything a user may do with a file; returns the tensor count or
    raises cairn.Error."""
    if isinstance(path_or_bytes, bytes):
        f = cairn.open_bytes(path_or_bytes, **kw)
    else:
        f = cairn.open(path_or_bytes, **kw)
    with f:
        f.info()
        f.metadata()
        for name in f.keys():
            info = f.info(name)
            f[name]
            f.get(name, copy=True, verify=info.checksum is not None)
            if info.shape and info.shape[0]:
                f.get_slice(name)[: max(1, info.shape[0] // 2)]
        f.verify()
        return len(f)


def outcome(path, **kw):
    try:
        return exercise(path, **kw)
    except cairn.Error as e:
        assert str(e), "an error without a message"
        return e


def file_id(path):
    """A test id from a file name (pytest passes a placeholder when a list is empty)."""
    return os.path.basename(path) if isinstance(path, str) else str(path)


def corpus_files():
    files = sorted(glob.glob(os.path.join(REPO, "tests", "corpus", "**", "*"), recursive=True))
    return [f for f in files if os.path.isfile(f)]


@pytest.mark.parametrize("path", corpus_files(), ids=file_id)
def test_repository_corpus(path):
    assert isinstance(outcome(path), cairn.Error)


def malicious_files():
    d = os.path.join(VECTORS, "malicious")
    return sorted(p for p in glob.glob(os.path.join(d, "*")) if not p.endswith(".json"))


@pytest.mark.skipif(not malicious_files(), reason=f"no {VECTORS}/malicious (shared vectors)")
@pytest.mark.parametrize("path", malicious_files(), ids=file_id)
def test_malicious_vectors(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expect = {}
    if os.path.exists(path + ".expect.json"):
        with open(path + ".expect.json") as f:
            expect = json.load(f)
    got = outcome(path)
    if expect.get("expect") == "reject":
        assert isinstance(got, cairn.Error), f"{path} was accepted"
    # inert reading turns globals into data: nothing runs, nothing is created.
    outcome(path, inert=True)
    assert os.listdir(tmp_path) == [], "a payload ran"


def all_vectors():
    files = glob.glob(os.path.join(VECTORS, "*", "*"))
    return sorted(p for p in files if not p.endswith((".json", ".md")) and "malicious" not in p
                  and os.path.isfile(p))


@pytest.mark.skipif(not all_vectors(), reason=f"no shared vectors at {VECTORS}")
def test_real_files_of_every_format_open():
    opened = 0
    for path in all_vectors():
        got = outcome(path)
        if not isinstance(got, cairn.Error):
            opened += 1
    assert opened >= len(all_vectors()) // 2


def seeds(tmp_path):
    """One small valid file per writable format."""
    tensors = {"w": np.arange(600, dtype=np.float32).reshape(20, 30), "b": np.arange(7),
               "h": np.ones(5, np.float16)}
    out = []
    for ext in (".cairn", ".safetensors", ".npz", ".pt", ".gguf", ".params", ".npy"):
        p = tmp_path / f"seed{ext}"
        cairn.save({"w": tensors["w"]} if ext == ".npy" else tensors, p,
                   metadata={"k": "x"} if ext in (".cairn", ".safetensors", ".gguf") else None)
        out.append(p)
    p = tmp_path / "seedz.cairn"
    cairn.save(tensors, p, compress="zstd", chunk_size=65536)
    out.append(p)
    return out


def test_fifo_and_directory_refused_without_blocking(tmp_path):
    import threading

    fifo = tmp_path / "model.cairn"
    os.mkfifo(fifo)
    box = []
    t = threading.Thread(target=lambda: box.append(outcome(fifo)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO blocked"
    assert isinstance(box[0], cairn.Error)
    assert isinstance(outcome(tmp_path), cairn.Error)  # a directory that is no skorch dir


def test_damaged_files_raise_never_crash(tmp_path):
    rng = np.random.default_rng(1234)
    results = {"ok": 0, "error": 0}
    for seed in seeds(tmp_path):
        good = seed.read_bytes()
        assert not isinstance(outcome(seed), cairn.Error)
        for trial in range(60):
            data = bytearray(good)
            kind = trial % 4
            if kind == 0:  # truncate
                data = data[: int(rng.integers(0, len(data)))]
            elif kind == 1:  # flip bytes
                for _ in range(int(rng.integers(1, 8))):
                    data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
            elif kind == 2:  # overwrite a run with 0xff (huge sizes, counts)
                at = int(rng.integers(0, len(data)))
                data[at:at + 8] = b"\xff" * len(data[at:at + 8])
            else:  # flip a byte in the first or last 256 (headers, trailers, indexes)
                at = int(rng.integers(0, min(256, len(data))))
                at = at if trial % 8 < 4 else len(data) - 1 - at
                data[at] ^= 0x5A
            got = outcome(bytes(data))
            results["error" if isinstance(got, cairn.Error) else "ok"] += 1
            p = tmp_path / ("damaged" + seed.suffix)
            p.write_bytes(bytes(data))
            outcome(p)
            outcome(p, backend="pread")
    assert results["error"] > 0
