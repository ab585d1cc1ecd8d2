import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]

class LoadResult(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]
    mismatched: List[Tuple[str, str]]
    loaded: int

def save_state_dict(module_or_dict: Any, path: Optional[PathLike], *,
                    metadata: Optional[Dict[str, Any]] = ..., format: Optional[str] = ...,
                    compress: Union[None, bool, str] = ..., shuffle: bool = ...,
                    sync: bool = ...) -> Optional[bytes]: ...
def load_state_dict(path: PathLike, module: Any = ..., *, strict: bool = ...,
                    map_location: Any = ..., prefix: Optional[str] = ...,
                    strip_prefix: Optional[str] = ..., convert: bool = ...,
                    verify: bool = ...) -> Union[LoadResult, Dict[str, Any]]: ...
def training_state(model: Any, optimizer: Any = ..., *, epoch: Optional[int] = ...,
                   step: Optional[int] = ..., history: Any = ..., rng: Any = ...,
                   data_position: Any = ..., **extra: Any) -> Dict[str, Any]: ...
def save_training_state(path: Optional[PathLike], model: Any, optimizer: Any = ..., *,
                        epoch: Optional[int] = ..., step: Optional[int] = ...,
                        history: Any = ..., rng: Any = ..., data_position: Any = ...,
                        sync: bool = ..., compress: Union[None, bool, str] = ...,
                        **extra: Any) -> Optional[bytes]: ...
def load_training_state(path: PathLike, model: Any = ..., optimizer: Any = ..., *,
                        strict: bool = ..., rng: bool = ...) -> Dict[str, Any]: ...
