"""skorch's documentation model and data, shared by the skorch tests and
their SIGKILL worker."""
import numpy as np
import torch
from sklearn.datasets import make_classification
from skorch import NeuralNetClassifier
from torch import nn


class MyModule(nn.Module):
    def __init__(self, num_units=10, nonlin=nn.ReLU()):
        super().__init__()
        self.dense0 = nn.Linear(20, num_units)
        self.nonlin = nonlin
        self.dropout = nn.Dropout(0.5)
        self.dense1 = nn.Linear(num_units, num_units)
        self.output = nn.Linear(num_units, 2)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, X, **kwargs):
        X = self.nonlin(self.dense0(X))
        X = self.dropout(X)
        X = self.nonlin(self.dense1(X))
        return self.softmax(self.output(X))


def data(n=1000):
    X, y = make_classification(n, 20, n_informative=10, random_state=0)
    return X.astype(np.float32), y.astype(np.int64)


def make_net(cls=NeuralNetClassifier, **kwargs):
    kwargs.setdefault("max_epochs", 5)
    return cls(MyModule, lr=0.1, iterator_train__shuffle=True, optimizer=torch.optim.Adam,
               verbose=0, **kwargs)
