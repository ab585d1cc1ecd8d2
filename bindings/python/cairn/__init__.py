"""cairn: save, load and checkpoint machine-learning models safely (nothing in
a file can run code or crash the reader), durably (atomic commits) and fast
(zero-copy NumPy and PyTorch views).

Quick start::

    import numpy as np, cairn
    cairn.save({"w": np.ones((2, 3), np.float32)}, "model.cairn", metadata={"epoch": 3})
    with cairn.open("model.cairn") as f:
        w = f["w"]            # read-only view of the file, no copy
        print(f.metadata())   # {'epoch': 3}
    tensors = cairn.load("model.safetensors", framework="pt")

Modules: cairn.torch (state dicts, tied weights, whole training state),
cairn.skorch (skorch callbacks and a NeuralNet mixin), and
cairn.CheckpointManager (a directory of crash-proof checkpoints).
The guide is docs/PYTHON.md.
"""
from . import _cairn
from ._cairn import (ArgumentError, AuthError, BusyError, ChecksumError, CorruptError,
                     DtypeError, Error, ExistsError, FormatError, IOError, LimitError,
                     MismatchError, NoMemoryError, NotFoundError, SignatureError, StateError,
                     UnsupportedError)
from ._core import (File, Slice, TensorInfo, TensorRef, Writer, convert, load, load_bytes,
                    open, open_bytes, save, save_bytes)
from ._ckpt import CheckpointInfo, CheckpointManager, SaveResult

__version__ = _cairn.library_version
library_version = _cairn.library_version


def _plain_str(self):
    # KeyError quotes its message; cairn's messages read better as they are.
    return str(self.args[0]) if len(self.args) == 1 else super(NotFoundError, self).__str__()


NotFoundError.__str__ = _plain_str

# cairn.IOError is left out of __all__: a star import would shadow the builtin.
__all__ = [
    "ArgumentError", "AuthError", "BusyError", "CheckpointInfo", "CheckpointManager",
    "ChecksumError", "CorruptError", "DtypeError", "Error", "ExistsError", "File", "FormatError", "LimitError",
    "MismatchError", "NoMemoryError", "NotFoundError", "SaveResult", "SignatureError", "Slice",
    "StateError", "TensorInfo", "TensorRef", "UnsupportedError", "Writer", "__version__",
    "convert", "load", "load_bytes", "open", "open_bytes", "save", "save_bytes",
]
