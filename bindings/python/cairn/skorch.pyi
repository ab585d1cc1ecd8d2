from typing import Any, Callable, Dict, Optional, Union

from skorch.callbacks import Checkpoint as _Checkpoint
from skorch.callbacks import LoadInitState as _LoadInitState
from skorch.callbacks import TrainEndCheckpoint as _TrainEndCheckpoint

from . import CheckpointManager

class _CairnSaver:
    def manager(self) -> CheckpointManager: ...
    def save_model(self, net: Any) -> None: ...
    def restore(self, net: Any, which: Union[str, int] = ..., strict: bool = ...,
                rng: bool = ...) -> Dict[str, Any]: ...
    def close(self) -> None: ...

class Checkpoint(_CairnSaver, _Checkpoint):
    def __init__(self, monitor: Any = ..., f_params: Optional[str] = ...,
                 f_optimizer: Optional[str] = ..., f_criterion: Optional[str] = ...,
                 f_history: Optional[str] = ..., f_pickle: None = ..., fn_prefix: str = ...,
                 dirname: str = ..., event_name: Optional[str] = ...,
                 sink: Callable[..., Any] = ..., load_best: bool = ..., *,
                 keep_last: Optional[int] = ..., async_save: bool = ..., sync: bool = ...,
                 on_error: str = ..., write_files: bool = ..., **kwargs: Any) -> None: ...

class TrainEndCheckpoint(_CairnSaver, _TrainEndCheckpoint):
    def __init__(self, f_params: Optional[str] = ..., f_optimizer: Optional[str] = ...,
                 f_criterion: Optional[str] = ..., f_history: Optional[str] = ...,
                 f_pickle: None = ..., fn_prefix: str = ..., dirname: str = ...,
                 sink: Callable[..., Any] = ..., *, keep_last: Optional[int] = ...,
                 async_save: bool = ..., sync: bool = ..., on_error: str = ...,
                 write_files: bool = ..., **kwargs: Any) -> None: ...

class LoadInitState(_LoadInitState):
    def __init__(self, checkpoint: Any, *, strict: bool = ..., rng: bool = ...) -> None: ...

class CairnNetMixin:
    def save_params(self, f_params: Any = ..., f_optimizer: Any = ..., f_criterion: Any = ...,
                    f_history: Any = ..., **kwargs: Any) -> None: ...
    def load_params(self, f_params: Any = ..., f_optimizer: Any = ..., f_criterion: Any = ...,
                    f_history: Any = ..., checkpoint: Any = ..., **kwargs: Any) -> None: ...

def net_state(net: Any, parts: Dict[str, Any]) -> Dict[str, Any]: ...
