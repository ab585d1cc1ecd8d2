#!/usr/bin/python3
# python_demo.py -- the Python step of examples/demo.sh: the C program's best
# checkpoint read from Python with zero-copy NumPy views, and skorch's
# checkpoint walkthrough with cairn's callbacks (only the import changed).
#
#   python_demo.py CHECKPOINT.cairn WORKDIR
import os
import sys

import numpy as np

import cairn


def show_checkpoint(path):
    with cairn.open(path) as f:
        record = f.metadata()["checkpoint"]
        print(f"   {os.path.basename(path)}: {len(f)} tensors, epoch {record['epoch']}, "
              f"{record['monitor']} {record['metric']:.4f}, saved because {record['reasons']!r}")
        w = f["params/0.weight"]
        info = f.info("params/0.weight")
        print(f"   f['params/0.weight']: {w.dtype} {w.shape}, read-only={not w.flags.writeable}, "
              f"same memory as a second view: {np.shares_memory(w, f['params/0.weight'])}")
        print(f"   info: {info.dtype}, {info.stored_bytes} bytes at offset {info.offset}, "
              f"checksum {info.checksum:#x}")
    print(f"   after the with block the view still reads: mean {w.mean():+.6f}")


def skorch_walkthrough(workdir):
    """skorch's walkthrough on examples/skorch_train.py's model and data."""
    import torch
    from sklearn.datasets import make_classification
    from skorch_train import make_net

    from cairn.skorch import Checkpoint, LoadInitState, TrainEndCheckpoint

    torch.manual_seed(0)
    X, y = make_classification(1000, 10, n_informative=5, random_state=0)
    X, y = X.astype(np.float32), y.astype(np.int64)
    exp = os.path.join(workdir, "exp1")
    for run in (1, 2):
        cp = Checkpoint(dirname=exp)
        net = make_net(callbacks=[cp, TrainEndCheckpoint(dirname=exp), LoadInitState(cp)],
                       verbose=0)
        net.fit(X, y)
        marks = " ".join(f"{h['epoch']}{'+' if h['valid_loss_best'] else ''}" for h in net.history)
        print(f"   run {run}: epochs {marks}   (+ = checkpoint)")
    net = make_net(callbacks=[cp], verbose=0).initialize()
    net.load_params(checkpoint=cp)
    print(f"   a stock NeuralNetClassifier loads the best: epoch {len(net.history)}, "
          f"valid_loss {net.history[-1, 'valid_loss']:.4f}")
    print("   exp1/:", " ".join(sorted(os.listdir(exp))))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python_demo.py CHECKPOINT.cairn WORKDIR")
    show_checkpoint(sys.argv[1])
    try:
        import skorch  # noqa: F401
    except ImportError:
        print("   (skorch step skipped: /usr/bin/python3 cannot import skorch)")
    else:
        skorch_walkthrough(sys.argv[2])
