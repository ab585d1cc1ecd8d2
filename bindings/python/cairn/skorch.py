"""skorch integration: drop-in Checkpoint, TrainEndCheckpoint and
LoadInitState backed by cairn's checkpoint manager, and a NeuralNet mixin
whose save_params/load_params write and read cairn files.

skorch 0.12's Checkpoint writes params.pt, optimizer.pt, criterion.pt and
history.json one after the other, in place, with torch.save (pickle); a
crash between them leaves a mixed set, and a failed save is only printed.
Here every save is ONE cairn checkpoint (params, optimizer, criterion,
custom modules, history and RNG states) committed atomically by libcairn's
manager, and a failed save raises (on_error="raise"). Change only the import:

    from cairn.skorch import Checkpoint, TrainEndCheckpoint, LoadInitState

The f_* arguments choose what each checkpoint holds (None leaves a part
out); the checkpoints are the manager's, DIRNAME/<fn_prefix>ckpt-<seq>.cairn.
Each part is also written, atomically, at the file name skorch gives it
(templates such as 'params_{last_epoch[epoch]}.pt' formatted as skorch
does; write_files=False leaves these out). f_pickle is refused: nothing is
pickled.
"""
import io
import json
import os

import skorch
import torch
from skorch.callbacks import Checkpoint as _SkorchCheckpoint
from skorch.callbacks import LoadInitState as _SkorchLoadInitState
from skorch.callbacks import TrainEndCheckpoint as _SkorchTrainEndCheckpoint
from skorch.history import History

from . import _cairn
from . import _ckpt
from . import _state
from . import torch as _ctorch

_MODULE_KEYS = ("f_params", "f_criterion")


def _module_attr(key):
    """f_params -> module_, f_optimizer -> optimizer_, f_mymodule -> mymodule_."""
    name = key[2:]
    return "module_" if name == "params" else name + "_"


def net_state(net, parts):
    """The cairn training state of a skorch net: each f_* key of `parts`
    whose value is not None (f_params, f_optimizer, f_criterion, f_history,
    f_<custom module>), plus the RNG states."""
    state = {"epoch": len(net.history), "rng": True, "modules": {}}
    for key, value in parts.items():
        if value is None or key in ("f_history", "f_pickle"):
            continue
        obj = getattr(net, _module_attr(key))
        if key == "f_params":
            state["model"] = obj
        elif key == "f_optimizer":
            state["optimizer"] = obj
        else:
            state["modules"][key[2:]] = obj.state_dict()
    if parts.get("f_history") is not None:
        state["history"] = net.history.to_list()
    return state


def restore_net(net, result):
    """Puts the rest of a restored state (the dict of
    CheckpointManager.restore) into the net: other modules, history."""
    for name, sd in (result.get("modules") or {}).items():
        getattr(net, name + "_").load_state_dict(sd)
    if result.get("history") is not None:
        net.history = History(result["history"])


def _load_into(net, manager, which="latest", strict=True, rng=True):
    if not net.initialized_:
        net.initialize()
    out = manager.restore(which, model=net.module_, strict=strict, rng=rng, framework="pt")
    if out.get("optimizer") is not None:
        net.optimizer_.load_state_dict(out["optimizer"])
    restore_net(net, out)
    return out


class _CairnSaver:
    """What the three callbacks share: the manager and the save."""

    def _cairn_init(self, keep_last, async_save, sync, on_error, write_files):
        if getattr(self, "f_pickle", None):
            raise ValueError("f_pickle is not supported by cairn.skorch: nothing is pickled")
        if on_error not in ("raise", "warn"):
            raise ValueError(f"on_error must be 'raise' or 'warn', not {on_error!r}")
        self.keep_last, self.async_save, self.sync, self.on_error = (keep_last, async_save, sync,
                                                                     on_error)
        self.write_files = write_files

    def _format_target(self, net, f, idx=-1):
        """skorch's file name of a part: fn_prefix + the template formatted
        with net, last_epoch and last_batch, under dirname (a file-like
        target as it is)."""
        if not isinstance(f, str):
            return f
        f = self.fn_prefix + f.format(net=net, last_epoch=net.history[idx],
                                      last_batch=net.history[idx, "batches", -1])
        return os.path.join(self.dirname, f)

    def _save_files(self, net):
        """Every part at the name skorch's own callback gives it (f_params
        'params_{last_epoch[epoch]}.pt' -> DIRNAME/<fn_prefix>params_3.pt;
        f_history is not formatted, as in skorch), each written atomically
        by cairn in the format of its extension (.pt: a torch file
        torch.load reads; f_optimizer: a .cairn archive, whatever its name)."""
        targets = {}
        for key, value in self._parts().items():
            if value is None or key == "f_pickle":
                continue
            if key == "f_history" and isinstance(value, str):
                targets[key] = os.path.join(self.dirname, self.fn_prefix + value)
            else:
                targets[key] = self._format_target(net, value)
        _save_params(net, targets, sync=self.sync)

    def manager(self):
        """The cairn.CheckpointManager of this callback's directory and prefix."""
        m = getattr(self, "_manager", None)
        if m is None:
            m = self._manager = _ckpt.CheckpointManager(
                self.dirname or ".", fn_prefix=self.fn_prefix, keep_last=self.keep_last,
                async_save=self.async_save, sync=self.sync)
        return m

    def _parts(self):
        return {k: getattr(self, k) for k in dir(self)
                if k.startswith("f_") and not k.endswith("_")}

    def save_model(self, net):
        """Saves one cairn checkpoint of the net, atomically."""
        try:
            self.manager().save(net_state(net, self._parts()), epoch=len(net.history),
                                force=True)
            if self.write_files:
                self._save_files(net)
        except Exception as e:
            if self.on_error == "raise":
                raise
            self._sink(f"Unable to save checkpoint to {self.dirname!r}: "
                       f"{type(e).__name__}: {e}", net.verbose)

    def restore(self, net, which="latest", strict=True, rng=True):
        """Loads this callback's latest checkpoint into `net` (model and
        optimizer in place, criterion, custom modules, history, RNG)."""
        return _load_into(net, self.manager(), which, strict, rng)

    def close(self):
        """Waits for a background save and releases the manager."""
        m = getattr(self, "_manager", None)
        if m is not None:
            m.close()
            self._manager = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_manager", None)
        return state

    # --- what a stock skorch net's load_params(checkpoint=cp) reads --------
    def _restored(self):
        return self.manager().restore("latest", rng=False, framework="pt")

    def get_formatted_files(self, net):
        """For a stock NeuralNet.load_params(checkpoint=cp): the latest
        checkpoint's parts as in-memory torch files, made here from the
        verified cairn checkpoint (nothing read from disk is unpickled).
        Raises FileNotFoundError when there is no checkpoint yet, as skorch's
        LoadInitState expects."""
        if self.manager().latest() is None:
            raise FileNotFoundError(f"no cairn checkpoint {self.fn_prefix}ckpt-*.cairn in "
                                    f"{self.dirname or '.'!r}")
        out = self._restored()
        files = {}

        def as_file(obj):
            buf = io.BytesIO()
            torch.save(obj, buf)
            buf.seek(0)
            return buf

        for key in self._parts():
            if getattr(self, key) is None or key in ("f_history", "f_pickle"):
                continue
            if key == "f_params" and out.get("model"):
                files[key] = as_file(out["model"])
            elif key == "f_optimizer" and out.get("optimizer") is not None:
                files[key] = as_file(out["optimizer"])
            elif key[2:] in (out.get("modules") or {}):
                files[key] = as_file(out["modules"][key[2:]])
        return files

    @property
    def f_history_(self):
        """The latest checkpoint's history as an in-memory JSON file (what
        skorch's History.from_file reads)."""
        if self.f_history is None:
            return None
        try:
            history = self._restored().get("history")
        except _cairn.NotFoundError:
            raise FileNotFoundError(f"no cairn checkpoint in {self.dirname or '.'!r}") from None
        return io.StringIO(json.dumps(history or []))


class Checkpoint(_CairnSaver, _SkorchCheckpoint):
    """skorch's Checkpoint with the same arguments (monitor, f_params,
    f_optimizer, f_criterion, f_history, fn_prefix, dirname, event_name,
    sink, load_best, f_<module>), each save one crash-proof cairn checkpoint.

    Besides the checkpoint, every part is also written where skorch's
    Checkpoint puts it: f_params='params_{last_epoch[epoch]}.pt' gives
    DIRNAME/<fn_prefix>params_3.pt (the templates take net, last_epoch and
    last_batch, as in skorch), each file atomically.

    cairn's own: keep_last (checkpoints kept, default 2: the newest and
    one to fall back to), async_save (the write runs in the background
    after a copy), sync (False: no fsync, still atomic), on_error ('raise',
    the default, or 'warn' as skorch does), write_files (False: only the
    cairn checkpoint, no file per part)."""

    def __init__(self, monitor="valid_loss_best", f_params="params.pt",
                 f_optimizer="optimizer.pt", f_criterion="criterion.pt",
                 f_history="history.json", f_pickle=None, fn_prefix="", dirname="",
                 event_name="event_cp", sink=skorch.utils.noop, load_best=False, *,
                 keep_last=2, async_save=False, sync=True, on_error="raise", write_files=True,
                 **kwargs):
        super().__init__(monitor=monitor, f_params=f_params, f_optimizer=f_optimizer,
                         f_criterion=f_criterion, f_history=f_history, f_pickle=f_pickle,
                         fn_prefix=fn_prefix, dirname=dirname, event_name=event_name, sink=sink,
                         load_best=load_best, **kwargs)
        self._cairn_init(keep_last, async_save, sync, on_error, write_files)

    def initialize(self):
        super().initialize()
        self.close()
        return self

    def on_train_end(self, net, **kwargs):
        m = getattr(self, "_manager", None)
        if m is not None:
            m.wait()
        if self.load_best and self.monitor is not None:
            self._sink("Loading best checkpoint after training.", net.verbose)
            self.restore(net, rng=False)
        # Training is over: the directory's writer lock goes with the manager
        # (a next fit, or another net's callback on the same directory, may
        # write; this callback makes a new manager when it saves again).
        self.close()


class TrainEndCheckpoint(_CairnSaver, _SkorchTrainEndCheckpoint):
    """skorch's TrainEndCheckpoint (fn_prefix 'train_end_'): one cairn
    checkpoint at the end of training. Same cairn options as Checkpoint."""

    def __init__(self, f_params="params.pt", f_optimizer="optimizer.pt",
                 f_criterion="criterion.pt", f_history="history.json", f_pickle=None,
                 fn_prefix="train_end_", dirname="", sink=skorch.utils.noop, *, keep_last=2,
                 async_save=False, sync=True, on_error="raise", write_files=True, **kwargs):
        super().__init__(f_params=f_params, f_optimizer=f_optimizer, f_criterion=f_criterion,
                         f_history=f_history, f_pickle=f_pickle, fn_prefix=fn_prefix,
                         dirname=dirname, sink=sink, **kwargs)
        self._cairn_init(keep_last, async_save, sync, on_error, write_files)

    def initialize(self):
        if self.dirname:
            os.makedirs(self.dirname, exist_ok=True)
        self.checkpoint_ = self
        self.close()
        return self

    def on_train_end(self, net, **kwargs):
        self.save_model(net)
        self.close()  # waits for the save; the writer lock goes (see Checkpoint)
        self._sink("Final checkpoint triggered", net.verbose)
        return self

    def _sink(self, text, verbose):
        if (self.sink is not print) or verbose:
            self.sink(text)


class LoadInitState(_SkorchLoadInitState):
    """skorch's LoadInitState(checkpoint): at the start of the first fit,
    loads the latest valid cairn checkpoint of a cairn.skorch Checkpoint or
    TrainEndCheckpoint (if there is one) into the net: params, optimizer,
    criterion, history (so the epochs go on) and the RNG states. A stock
    skorch checkpoint is loaded the stock way."""

    def __init__(self, checkpoint, *, strict=True, rng=True):
        super().__init__(checkpoint)
        self.strict, self.rng = strict, rng

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        if self.did_load_:
            return
        if not isinstance(self.checkpoint, _CairnSaver):
            super().on_train_begin(net, X=X, y=y, **kwargs)
            return
        self.did_load_ = True
        if self.checkpoint.manager().latest() is not None:
            self.checkpoint.restore(net, strict=self.strict, rng=self.rng)


class CairnNetMixin:
    """Mix into a skorch net (class MyNet(CairnNetMixin, NeuralNetClassifier))
    so that save_params/load_params use cairn instead of torch.save/torch.load:

    - f_params, f_criterion, f_<module>: the module's state_dict in the
      format of the file's extension (.cairn, .safetensors, .pt written by
      cairn, ...) or a file-like object (written as .cairn bytes);
    - f_optimizer: the optimizer's state as a .cairn archive;
    - f_history: skorch's JSON, written atomically;
    - load_params(checkpoint=cp) with a cairn.skorch checkpoint restores its
      latest checkpoint (everything in one file); a stock skorch checkpoint
      is read by cairn without unpickling (.pt) when possible.
    Loads are strict: a missing, unexpected or mismatched tensor raises
    cairn.MismatchError naming them all and leaves the net unchanged."""

    def save_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    **kwargs):
        _save_params(self, dict(kwargs, f_params=f_params, f_optimizer=f_optimizer,
                                f_criterion=f_criterion, f_history=f_history))

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None, f_history=None,
                    checkpoint=None, **kwargs):
        if isinstance(checkpoint, _CairnSaver):
            checkpoint.restore(self, rng=False)
            return
        if checkpoint is not None:
            if not self.initialized_:
                self.initialize()
            files = checkpoint.get_formatted_files(self)
            if f_history is None and checkpoint.f_history is not None:
                f_history = checkpoint.f_history_
            for key, value in files.items():
                if key not in ("f_history", "f_pickle") and value is not None:
                    kwargs.setdefault(key, value)
            f_params = f_params or kwargs.pop("f_params", None)
            f_optimizer = f_optimizer or kwargs.pop("f_optimizer", None)
            f_criterion = f_criterion or kwargs.pop("f_criterion", None)
        if not self.initialized_:
            self.initialize()
        targets = dict(kwargs, f_params=f_params, f_criterion=f_criterion)
        for key, f in targets.items():
            if f is None or not key.startswith("f_") or key == "f_pickle":
                continue
            module = getattr(self, _module_attr(key))
            _load_module(module, f)
        if f_optimizer is not None:
            if not isinstance(f_optimizer, (str, os.PathLike)) or _is_cairn(f_optimizer):
                if not isinstance(f_optimizer, (str, os.PathLike)):
                    f_optimizer = _cairn_open_bytes(f_optimizer.read())
                out = _state.load_state(f_optimizer, rng=False, framework="pt")
                self.optimizer_.load_state_dict(out["optimizer"])
            else:
                # A stock skorch optimizer.pt: torch's own loader.
                self.optimizer_.load_state_dict(torch.load(f_optimizer, map_location="cpu"))
        if f_history is not None:
            self.history = History.from_file(f_history)


def _save_params(net, targets, sync=True):
    """CairnNetMixin.save_params: each f_* target (a path or a file-like
    object; None skips it) written by cairn, a path atomically."""
    for key, f in targets.items():
        if f is None:
            continue
        if key == "f_history":
            _write_atomic(f, json.dumps(net.history.to_list()).encode(), sync)
            continue
        obj = getattr(net, _module_attr(key))
        if key == "f_optimizer":
            if isinstance(f, (str, os.PathLike)):
                _state.save_state(f, {"optimizer": obj}, sync=sync)
            else:
                f.write(_state.save_state(None, {"optimizer": obj}))
        elif isinstance(f, (str, os.PathLike)):
            _ctorch.save_state_dict(obj, f, sync=sync)
        else:
            f.write(_ctorch.save_state_dict(obj, None))


def _is_cairn(path):
    from ._core import open as cairn_open

    with cairn_open(path) as f:
        return f.format == "cairn"


def _load_module(module, f):
    if isinstance(f, (str, os.PathLike)):
        _ctorch.load_state_dict(f, module)
        return
    data = f.read()
    with _cairn_open_bytes(data) as cf:
        entries = _state.module_entries(module, torch)
        _cairn.params_load(cf._f, entries, strict=True, verify=True)


def _cairn_open_bytes(data):
    from ._core import open_bytes

    return open_bytes(data)


def _write_atomic(f, data, sync=True):
    """Writes bytes to a path as libcairn commits a file (or to a file-like
    object as is): an unnamed file in the target's directory (O_TMPFILE),
    fsync unless sync=False, then linked in under the name (a new name) or
    under a temporary name renamed over it; a process killed at any other
    instant leaves nothing behind (in that one instant, a temporary named
    as cairn names them, which cairn's later commits there sweep away)."""
    if not isinstance(f, (str, os.PathLike)):
        f.write(data.decode() if isinstance(f, io.TextIOBase) else data)
        return
    path = os.fspath(f)
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.cairn-tmp-{os.urandom(8).hex()}")
    try:
        fd = os.open(d, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
        unnamed = True
    except (AttributeError, OSError):  # no O_TMPFILE here: a named temporary
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        unnamed = False
    named = not unnamed
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
        if unnamed:
            # linkat(AT_SYMLINK_FOLLOW): os.link calls plain link() unless
            # given a directory descriptor
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                try:
                    os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=dfd)
                    tmp = None
                except FileExistsError:
                    os.link(f"/proc/self/fd/{fd}", os.path.basename(tmp), dst_dir_fd=dfd)
                    named = True
            finally:
                os.close(dfd)
        if tmp is not None:
            os.replace(tmp, path)
            named = False
    finally:
        os.close(fd)
        if named:
            os.unlink(tmp)
    if not sync:
        return
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


__all__ = ["CairnNetMixin", "Checkpoint", "LoadInitState", "TrainEndCheckpoint", "net_state"]
