"""cairn.CheckpointManager over the C checkpoint manager (docs/CHECKPOINTS.md)."""
import collections
import math
import os

from . import _cairn
from . import _state

_MODE_MAX, _ASYNC, _NO_SYNC, _SIGNALS, _READ_ONLY, _PRUNE_EARLIER = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
_SAVED_SIGNAL = 2

CheckpointInfo = collections.namedtuple(
    "CheckpointInfo", "index seq epoch step time metric bytes valid path reasons")
CheckpointInfo.__doc__ = """One checkpoint of a directory: seq (1, 2, ...), epoch and step as
saved, time (Unix seconds), metric (the monitored value or None), bytes, valid (committed and
verifying), path, reasons ('improved', 'every_epochs', 'forced', 'signal', ...)."""

SaveResult = collections.namedtuple("SaveResult", "saved reason checkpoint stop")
SaveResult.__doc__ = """What CheckpointManager.save did: saved (bool), reason (why it saved, or
why not), checkpoint (CheckpointInfo or None) and stop (True when a SIGTERM/SIGINT asked the
training loop to stop, with signals=True)."""


class CheckpointManager:
    """A directory of checkpoints of one training run, kept by libcairn.

    Each save is one whole-model archive committed atomically (temporary
    file, fsync, rename, directory fsync); retention runs only after the new
    checkpoint is durable; "latest" and "best" are derived from the valid
    files, so a crash at any instant leaves a loadable latest checkpoint.

    monitor: the metric name that decides "best" (and, alone, triggers a
    save when it improves); mode 'min' or 'max'. keep_best / keep_last /
    keep_every: retention (a checkpoint is kept if any policy keeps it).
    every / every_steps / every_seconds: save triggers. With no monitor and
    no trigger, every save() saves. async_save: save() returns once the
    tensors are copied to staging memory; the write goes on in the
    background and close() (or the next save) waits for it. sync=False:
    atomic but not durable (tests). signals: on SIGTERM/SIGINT the next
    save() saves and returns stop=True.

    One writer per directory and fn_prefix: a second manager (in any
    process) raises BusyError while this one is open; read_only=True lists,
    loads and restores without taking that lock (never blocked, creates
    nothing, cannot save). Retention removes only checkpoints this manager
    saved, unless prune_earlier=True (a run resuming its own checkpoints).
    """

    def __init__(self, dirname, monitor=None, mode="min", keep_best=None, keep_last=None,
                 every=None, async_save=False, *, every_steps=None, every_seconds=None,
                 keep_every=None, fn_prefix="", sync=True, signals=False, read_only=False,
                 prune_earlier=False):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.dirname = os.fspath(dirname)
        self.monitor, self.mode, self.fn_prefix = monitor, mode, fn_prefix
        self._async = bool(async_save)
        flags = ((_MODE_MAX if mode == "max" else 0) | (_ASYNC if async_save else 0) |
                 (0 if sync else _NO_SYNC) | (_SIGNALS if signals else 0) |
                 (_READ_ONLY if read_only else 0) | (_PRUNE_EARLIER if prune_earlier else 0))
        self._m = _cairn.Ckpt(self.dirname, fn_prefix=fn_prefix or None, monitor=monitor,
                              flags=flags, every_epochs=every or 0, every_steps=every_steps or 0,
                              every_seconds=float(every_seconds or 0), keep_best=keep_best or 0,
                              keep_last=keep_last or 0, keep_every=keep_every or 0)

    # -- saving ---------------------------------------------------------------
    def save(self, state=None, *, step=0, epoch=0, metric=None, metrics=None, force=False):
        """Offers a checkpoint; the triggers decide. state: a dict (see
        cairn.torch.training_state / docs/PYTHON.md: model, optimizer,
        history, rng=True, data_position, anything else as extra). metric:
        the monitored value (or put it in metrics). force: save regardless
        (train end). Returns SaveResult(saved, reason, checkpoint, stop)."""
        metrics = dict(metrics or {})
        if metric is not None:
            if self.monitor is None:
                raise ValueError("metric= needs a manager with a monitor")
            metrics[self.monitor] = float(metric)
        state = dict(state or {})
        state.setdefault("epoch", epoch)
        state.setdefault("step", step)
        parts = _state.build_parts(state)
        saved = self._m.step(epoch, step, metrics or None, parts, force=force)
        if not saved:
            return SaveResult(False, self._why_not(metrics), None, False)
        if self._async:
            # Listed once collected (the next save, wait() or close()).
            return SaveResult(True, "writing in the background", None, saved == _SAVED_SIGNAL)
        info = self.latest()
        return SaveResult(True, info.reasons if info else "", info, saved == _SAVED_SIGNAL)

    def _why_not(self, metrics):
        if self.monitor is None:
            return "no trigger fired"
        value = metrics.get(self.monitor)
        if value is None:
            return f"no value for the monitored metric {self.monitor!r}"
        if isinstance(value, float) and math.isnan(value):
            return f"{self.monitor} is NaN, which never improves"
        best = self.best()
        if best is not None and best.metric is not None:
            return f"{self.monitor} {value:g} did not improve on {best.metric:g} ({self.mode})"
        return "no trigger fired"

    def wait(self):
        """Waits until a background save is durable; raises its error."""
        self._m.wait()

    def close(self):
        """Waits for a background save, then releases the manager."""
        self._m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- listing --------------------------------------------------------------
    def _info(self, index):
        return CheckpointInfo(**self._m.info(index))

    def checkpoints(self):
        """Every checkpoint of the directory (of this prefix), oldest first."""
        return [self._info(i) for i in range(self._m.count())]

    def latest(self):
        """The newest valid checkpoint, or None."""
        i = self._m.latest()
        return None if i is None else self._info(i)

    def best(self):
        """The best valid checkpoint by the monitor, or None."""
        i = self._m.best()
        return None if i is None else self._info(i)

    def prune(self, keep_best=None, keep_last=None, keep_every=None, dry_run=False):
        """Applies a retention policy now; returns how many were (or would
        be) removed. The newest valid checkpoint is never removed."""
        return self._m.prune(keep_best or 0, keep_last or 0, keep_every or 0, dry_run)

    # -- loading --------------------------------------------------------------
    def restore(self, which="latest", *, model=None, optimizer=None, strict=True, rng=True,
                framework=None):
        """Loads a checkpoint: 'latest' (the newest that verifies, falling
        back past damaged ones), 'best', or an index of checkpoints().
        Tensors go into `model` / `optimizer` when given (in place, strict:
        a mismatch raises MismatchError with every problem and changes
        nothing), else come back in the dict. Returns a dict with epoch,
        step, model, optimizer, history, data_position, extras, the
        manager's record under "checkpoint" and "next_epoch"."""
        if which == "latest":
            r = self._m.resume()
            index, skipped, why = r["index"], r["skipped"], r["why"]
        else:
            if which == "best":
                index = self._m.best()
                if index is None:
                    raise _cairn.NotFoundError(f"{self.dirname}: no valid checkpoint with a "
                                               f"metric to call best")
            elif isinstance(which, int):
                index = which
            else:
                raise ValueError(f"which must be 'latest', 'best' or an index, not {which!r}")
            skipped, why = 0, ""
        info = self._info(index)
        out = _state.load_state(info.path, model=model, optimizer=optimizer, strict=strict,
                                rng=rng, framework=framework)
        out["info"] = info
        out["next_epoch"] = info.epoch + 1
        out["skipped"], out["why"] = skipped, why
        return out

    def __repr__(self):
        n = self._m.count()
        return (f"<cairn.CheckpointManager {self.dirname!r} prefix={self.fn_prefix!r} "
                f"monitor={self.monitor!r} {n} checkpoints>")
