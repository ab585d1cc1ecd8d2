"""PyTorch integration: state dicts with tied weights, strict loads that
report everything and change nothing on failure, and whole training states
(model, optimizer, epoch/step, history, RNG states, data position) in one
safe file with nothing pickled.

    import cairn.torch
    cairn.torch.save_state_dict(model, "model.cairn")
    report = cairn.torch.load_state_dict("model.cairn", model)        # strict
    cairn.torch.save_training_state("state.cairn", model, optimizer, epoch=3)
    state = cairn.torch.load_training_state("state.cairn", model, optimizer)
"""
import collections

import torch

from . import _cairn
from . import _core
from . import _state

LoadResult = collections.namedtuple("LoadResult",
                                    "missing_keys unexpected_keys mismatched loaded")
LoadResult.__doc__ = """What load_state_dict did: missing_keys (in the module, not the file),
unexpected_keys (in the file, not the module), mismatched [(name, why)] (shape or dtype),
loaded (how many tensors were written into the module)."""


def _state_dict_of(obj):
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if hasattr(obj, "items"):
        return obj
    raise TypeError(f"expected a torch.nn.Module or a state dict, not {type(obj).__name__}")


def save_state_dict(module_or_dict, path, *, metadata=None, format=None, compress=None,
                    shuffle=False, sync=True):
    """Saves a module's state_dict (or a state dict) to `path` (or returns
    the bytes when path is None). Tensors that share memory (tied weights,
    the same tensor under two names) are stored once, as aliases, in .cairn
    and .pt files; other formats store each name's bytes."""
    sd = _state_dict_of(module_or_dict)
    if path is None:
        return _core.save_bytes(sd, metadata=metadata, format=format or "cairn",
                                compress=compress, shuffle=shuffle)
    _core.save(sd, path, metadata=metadata, format=format, compress=compress, shuffle=shuffle,
               sync=sync)
    return None


def _result(loaded, report):
    missing = [name for kind, name, _, _ in report if kind == "missing"]
    unexpected = [file_name for kind, _, file_name, _ in report if kind == "unexpected"]
    mismatched = [(name, text) for kind, name, _, text in report if kind in ("shape", "dtype")]
    return LoadResult(missing, unexpected, mismatched, loaded)


def load_state_dict(path, module=None, *, strict=True, map_location="cpu", prefix=None,
                    strip_prefix=None, convert=False, verify=True):
    """Loads a state dict from any format cairn reads (.cairn, .safetensors,
    .pt read without unpickling, .npz, ...).

    With `module`: the tensors are written straight into the module's own
    tensors (no intermediate state dict). strict=True: every missing,
    unexpected and mismatched (shape, dtype) name is found first; if there
    is any, MismatchError is raised listing them all (`.report`) and the
    module is left untouched. strict=False loads what matches and returns
    the rest in the LoadResult. prefix: only file names starting with it
    take part, without it ('model.'); strip_prefix: removed where present
    ('module.' of DataParallel); convert: allow lossless dtype conversion.

    Without `module`: returns a dict name -> tensor (private memory, on
    map_location); tensors stored once under several names come back as
    one shared tensor."""
    if module is None:
        sd = _core.load(path, framework="pt", verify=verify)
        if prefix:
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if strip_prefix:
            sd = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v
                  for k, v in sd.items()}
        if map_location not in (None, "cpu") and torch.device(map_location).type != "cpu":
            moved = {}
            sd = {k: moved.setdefault(id(v), v.to(map_location)) for k, v in sd.items()}
        return sd
    entries = _state.module_entries(module, torch)
    with _core.open(path) as f:
        loaded, report = _cairn.params_load(f._f, entries, strict=strict, convert=convert,
                                            verify=verify, prefix=prefix,
                                            strip_prefix=strip_prefix)
    return _result(loaded, report)


def training_state(model, optimizer=None, *, epoch=None, step=None, history=None, rng=True,
                   data_position=None, **extra):
    """The state dict that save_training_state and CheckpointManager.save
    store: model and optimizer state_dicts (tensors stored as tensors,
    the optimizer's structure and scalars as typed metadata), epoch, step,
    history, the RNG states of Python, NumPy and torch (rng=True), the data
    position, and any other keyword (tensors, numbers, strings, lists,
    dicts). Nothing is pickled: an object of another type is refused."""
    state = {"model": model, "optimizer": optimizer, "epoch": epoch, "step": step,
             "history": history, "rng": rng, "data_position": data_position}
    state.update(extra)
    return state


def save_training_state(path, model, optimizer=None, *, epoch=None, step=None, history=None,
                        rng=True, data_position=None, sync=True, compress=None, **extra):
    """Saves the whole training state to one file, atomically (path None:
    returns the bytes). Load it with load_training_state."""
    state = training_state(model, optimizer, epoch=epoch, step=step, history=history, rng=rng,
                           data_position=data_position, **extra)
    return _state.save_state(path, state, sync=sync, compress=compress)


def load_training_state(path, model=None, optimizer=None, *, strict=True, rng=True):
    """Reads a training state (every checksum verified first). The model's
    tensors are loaded in place (strict: MismatchError, model untouched, on
    any difference), the optimizer gets its state_dict, and with rng=True
    the RNG states are restored, so training goes on exactly as if it had
    never stopped. Returns a dict: epoch, step, history, data_position,
    model, optimizer and the extra keys."""
    return _state.load_state(path, model=model, optimizer=optimizer, strict=strict, rng=rng,
                             framework="pt")


__all__ = ["LoadResult", "load_state_dict", "load_training_state", "save_state_dict",
           "save_training_state", "training_state"]
