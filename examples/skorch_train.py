#!/usr/bin/python3
# skorch_train.py -- the skorch side of examples/demo.sh: skorch's documentation
# example, trained in skorch, its parameters saved by skorch's Checkpoint; and
# the reverse: a state_dict written by cairn, loaded with weights_only=True.
#
#   skorch_train.py train DIR          trains 5 epochs; writes DIR/exp/params.pt
#                                      (Checkpoint), DIR/X_first20.npy and
#                                      DIR/skorch_proba.txt (predict_proba of X[:20]
#                                      with the checkpointed parameters)
#   skorch_train.py predict PT X.npy   loads PT with torch.load(weights_only=True)
#                                      into the same module (num_units from the
#                                      shape of 0.weight) and prints
#                                      predict_proba(X), one row per line (%.9g)
import sys

import numpy as np
import torch
from sklearn.datasets import make_classification
from skorch import NeuralNetClassifier
from skorch.callbacks import Checkpoint
from torch import nn


class MyModule(nn.Sequential):
    """skorch's documentation model as an nn.Sequential, so its state_dict
    names (0.weight, 0.bias, 3.weight, ...) are those of examples/mlp."""

    def __init__(self, num_units=10, nonlin=nn.ReLU()):
        super().__init__(
            nn.Linear(10, num_units), nonlin, nn.Dropout(0.2),
            nn.Linear(num_units, 10), nn.Linear(10, 2), nn.Softmax(dim=-1))


def make_net(**kwargs):
    return NeuralNetClassifier(MyModule, max_epochs=5, lr=0.1,
                               iterator_train__shuffle=True,
                               optimizer__momentum=0.9, **kwargs)


def print_rows(proba, out=sys.stdout):
    for row in proba:
        print(" ".join(f"{float(p):.9g}" for p in row), file=out)


def train(workdir):
    torch.manual_seed(0)
    X, y = make_classification(1000, 10, n_informative=5, random_state=0)
    X, y = X.astype(np.float32), y.astype(np.int64)
    cp = Checkpoint(dirname=f"{workdir}/exp")
    net = make_net(callbacks=[cp])
    net.fit(X, y)
    # The checkpoint holds the best epoch's parameters (by valid_loss), which
    # may be older than the net's last ones: predict with what the file holds.
    net.load_params(checkpoint=cp)
    np.save(f"{workdir}/X_first20.npy", X[:20])
    with open(f"{workdir}/skorch_proba.txt", "w") as f:
        print_rows(net.predict_proba(X[:20]), f)


def predict(pt, x_path):
    state = torch.load(pt, weights_only=True)
    net = make_net(module__num_units=state["0.weight"].shape[0])
    net.initialize()
    net.module_.load_state_dict(state)
    print_rows(net.predict_proba(np.load(x_path).astype(np.float32)))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "train":
        train(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "predict":
        predict(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: skorch_train.py train DIR | predict PARAMS.pt X.npy")
