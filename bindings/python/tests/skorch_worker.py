"""A training process for the SIGKILL trials of test_skorch.py: imports once,
then for every "go DIR" line on stdin forks a child that resumes from DIR's
latest cairn checkpoint (LoadInitState) and trains, saving a checkpoint
every epoch, until it is killed. Prints the child's pid, then its exit
status once it is gone."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from skorch_common import data, make_net  # noqa: E402

from cairn.skorch import Checkpoint, LoadInitState  # noqa: E402

torch.set_num_threads(1)
X, y = data(300)
for line in sys.stdin:
    _, dirname = line.split()
    pid = os.fork()
    if pid == 0:
        cp = Checkpoint(monitor=None, dirname=dirname, keep_last=3)
        net = make_net(max_epochs=100000, callbacks=[cp, LoadInitState(cp)])
        net.fit(X, y)
        os._exit(0)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print("reaped", status, flush=True)
