"""Whole training states as cairn whole-model archives (docs/MODEL.md),
with nothing pickled: a model's tensors under params/, an optimizer's
tensors under optimizer/ (its scalars and structure in the "optimizer"
metadata part, tensors referenced by name), RNG states as bytes and ints.

A state is a dict. Known keys: "model" (an object with state_dict(), or a
mapping name -> tensor), "optimizer" (the same), "history", "rng" (True to
capture Python's, NumPy's and torch's global RNG states now), "data_position",
"epoch", "step". Every other key goes to the "extra" part; its tensors are
stored under attributes/.

Python structures map to the metadata tree as: dict with str keys -> map;
list -> list; tuple -> {"$tuple": [...]}; dict with other keys (or keys
starting with "$") -> {"$dict": [[key, value], ...]}; arrays and tensors ->
a tensor reference. Anything else (an arbitrary object) is refused: there is
no pickle fallback.
"""
import random

import numpy as np

from . import _cairn
from . import _dtypes as D
from ._core import TensorRef, _shared_groups

KIND = "cairn.python"
SCHEMA_VERSION = 1
_KNOWN = ("model", "optimizer", "history", "rng", "data_position", "epoch", "step")


def _is_tensor(obj):
    return isinstance(obj, np.ndarray) or (D._torch_module(obj) and hasattr(obj, "detach"))


class _Tensors:
    """The tensors of one part (a parameter set), named by their path."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.entries = []
        self.names = set()
        self.torch = False

    def add(self, name, tensor):
        code, shape, buf, _ = D.as_buffer(tensor)
        self.torch = self.torch or D._torch_module(tensor)
        base, n = name or "_", 1
        while name in self.names or not name:
            name = f"{base}~{n}"
            n += 1
        self.names.add(name)
        self.entries.append((name, code, shape, buf))
        return TensorRef(self.prefix + name)


def encode(obj, tensors, path=""):
    """A Python structure -> a metadata tree whose arrays went to `tensors`."""
    def sub(key):
        return f"{path}.{key}" if path else str(key)

    if _is_tensor(obj):
        return tensors.add(path, obj)
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"$tuple": [encode(v, tensors, sub(i)) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, sub(i)) for i, v in enumerate(obj)]
    if isinstance(obj, dict) or hasattr(obj, "items"):
        items = list(obj.items())
        if all(isinstance(k, str) and not k.startswith("$") for k, _ in items):
            return {k: encode(v, tensors, sub(k)) for k, v in items}
        return {"$dict": [[encode(k, tensors, sub(f"k{i}")), encode(v, tensors, sub(k))]
                          for i, (k, v) in enumerate(items)]}
    raise TypeError(f"cairn cannot save a {type(obj).__module__}.{type(obj).__qualname__} "
                    f"at {path or 'the top'}: only arrays, tensors, numbers, str, bytes, "
                    f"lists, tuples and dicts are stored (nothing is pickled)")


def decode(value, read):
    """The inverse of encode; read(TensorRef) returns the tensor."""
    if isinstance(value, TensorRef):
        return read(value)
    if isinstance(value, list):
        return [decode(v, read) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and "$tuple" in value:
            return tuple(decode(v, read) for v in value["$tuple"])
        if len(value) == 1 and "$dict" in value:
            return {_hashable(decode(k, read)): decode(v, read) for k, v in value["$dict"]}
        return {k: decode(v, read) for k, v in value.items()}
    return value


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _state_dict(obj):
    return obj.state_dict() if hasattr(obj, "state_dict") and callable(obj.state_dict) else obj


def capture_rng():
    """Python's, NumPy's and (when imported) torch's global RNG states."""
    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    rng = {"python": {"version": version, "state": list(internal), "gauss_next": gauss},
           "numpy": {"kind": kind, "key": np.asarray(key, dtype="<u4").tobytes(), "pos": pos,
                     "has_gauss": has_gauss, "cached_gaussian": cached}}
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        rng["torch"] = torch.get_rng_state().numpy().tobytes()
    return rng


def restore_rng(rng):
    """Sets the global RNG states captured by capture_rng."""
    py = rng.get("python")
    if py:
        random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npr = rng.get("numpy")
    if npr:
        key = np.frombuffer(npr["key"], dtype="<u4").astype(np.uint32)
        np.random.set_state((npr["kind"], key, npr["pos"], npr["has_gauss"],
                             npr["cached_gaussian"]))
    if rng.get("torch") is not None:
        import torch

        torch.set_rng_state(torch.frombuffer(bytearray(rng["torch"]), dtype=torch.uint8))


def build_parts(state):
    """The whole-model parts (for Writer.add_model / Ckpt.step) of a state."""
    if state is None:
        state = {}
    if not isinstance(state, dict):
        raise TypeError("a training state is a dict (model, optimizer, history, rng, ...)")
    params, opt, attrs = _Tensors("params/"), _Tensors("optimizer/"), _Tensors("attributes/")
    parts = {"kind": KIND, "schema_version": SCHEMA_VERSION}
    if state.get("model") is not None:
        # Tied tensors are registered under each name: a load into the
        # model restores both (they are one memory there).
        for name, t in _state_dict(state["model"]).items():
            params.add(name, t)
    if state.get("optimizer") is not None:
        parts["optimizer"] = encode(_state_dict(state["optimizer"]), opt)
    for key in ("history", "data_position"):
        if state.get(key) is not None:
            parts[key] = encode(state[key], attrs, key)
    rng = state.get("rng")
    if rng is True:
        parts["rng"] = capture_rng()
    elif rng:
        parts["rng"] = rng
    extra = {k: v for k, v in state.items() if k not in _KNOWN}
    if extra:
        parts["extra"] = encode(extra, attrs, "extra")
    framework = "pt" if (params.torch or opt.torch or attrs.torch) else "np"
    parts["config"] = {"framework": framework, "epoch": state.get("epoch"),
                       "step": state.get("step")}
    parts["params"] = params.entries
    if opt.entries:
        parts["optimizer_tensors"] = opt.entries
    if attrs.entries:
        parts["attribute_tensors"] = attrs.entries
    return parts


def module_entries(module, torch):
    """(entries for params_load, state_dict) of a torch module: its own
    tensors' memory, so a load writes straight into the model."""
    sd = module.state_dict(keep_vars=True) if hasattr(module, "state_dict") else module
    entries = []
    for name, t in sd.items():
        if D._torch_module(t):
            t = t.detach()
            if not t.is_contiguous() or t.device.type != "cpu":
                raise _cairn.UnsupportedError(
                    f"tensor {name!r}: cairn loads in place into contiguous CPU tensors only")
            if t.dtype == torch.bfloat16:
                entries.append((name, D.BF16, tuple(t.shape), t.view(torch.int16).numpy()))
                continue
            _, codes = D.torch_dtypes(torch)
            entries.append((name, codes[t.dtype], tuple(t.shape), t.numpy()))
        else:
            arr = np.asarray(t)
            entries.append((name, D.code_of(arr.dtype), arr.shape, arr))
    return entries


def read_tensor(f, name, framework):
    """A private copy of tensor `name` of an open cairn.File."""
    if framework == "pt":
        return f.torch(name, copy=True)
    return f.get(name, copy=True)


def restore(f, *, model=None, optimizer=None, strict=True, rng=True, framework=None):
    """Reads a state saved by build_parts from an open cairn.File. Tensors
    are loaded into `model` in place (strict: every missing, unexpected or
    mismatched name is reported at once and nothing is changed) and the
    optimizer state into `optimizer`; what was not given is returned."""
    meta = f.metadata()
    config = meta.get("config") or {}
    fw = framework or config.get("framework", "np")
    cache = {}

    def read(ref):
        if ref not in cache:
            cache[ref] = read_tensor(f, ref, fw)
        return cache[ref]

    out = {"epoch": config.get("epoch"), "step": config.get("step")}
    if "checkpoint" in meta:
        out["checkpoint"] = meta["checkpoint"]
    opt_sd = decode(meta["optimizer"], read) if meta.get("optimizer") is not None else None
    for key in ("history", "data_position"):
        if meta.get(key) is not None:
            out[key] = decode(meta[key], read)
    if meta.get("extra") is not None:
        out.update(decode(meta["extra"], read))
    # The model before the optimizer and the RNG: a strict mismatch raises
    # before anything was changed.
    names = [n[len("params/"):] for n in f.keys() if n.startswith("params/")]
    if model is not None:
        import sys

        torch = sys.modules.get("torch")
        entries = module_entries(model, torch)
        loaded, report = _cairn.params_load(f._f, entries, strict=strict, prefix="params/",
                                            verify=True)
        out["model"] = model
        out["report"] = report
    else:
        shared = {}
        model_sd = {}
        rep = _shared_groups(f)
        index = {n: i for i, n in enumerate(f.keys())}
        for n in names:
            i = index["params/" + n]
            if i in rep and rep[i] in shared:
                model_sd[n] = shared[rep[i]]
            else:
                model_sd[n] = shared[i] = read("params/" + n)
        out["model"] = model_sd
    if opt_sd is not None:
        if optimizer is not None:
            optimizer.load_state_dict(opt_sd)
            out["optimizer"] = optimizer
        else:
            out["optimizer"] = opt_sd
    if rng and meta.get("rng"):
        restore_rng(meta["rng"])
    return out


def save_state(path, state, *, sync=True, compress=None):
    """Saves a state to one file, atomically (None: returns bytes)."""
    from ._core import Writer

    parts = build_parts(state)
    w = Writer(path, format="cairn", sync=sync, compress=compress)
    try:
        w._w.add_model(parts)
    except BaseException:
        w.abort()
        raise
    return w.commit()


def load_state(path, **kwargs):
    """Reads a state file (verifying every checksum first), or an open
    cairn.File; see restore."""
    from ._core import File, open as cairn_open

    if isinstance(path, File):
        path.verify()
        return restore(path, **kwargs)
    with cairn_open(path, verify=True) as f:
        return restore(f, **kwargs)


__all__ = ["build_parts", "capture_rng", "decode", "encode", "load_state", "restore",
           "restore_rng", "save_state"]
