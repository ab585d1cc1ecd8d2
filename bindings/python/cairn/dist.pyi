import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

PathLike = Union[str, os.PathLike]
Request = Union["ellipsis", Tuple[Union[int, slice], ...], int, slice]

class Shard:
    local: Any
    global_shape: Tuple[int, ...]
    offset: Tuple[int, ...]
    def __init__(self, local: Any, *, global_shape: Sequence[int],
                 offset: Sequence[int]) -> None: ...

def save(comm: Any, path: PathLike, tensors: Mapping[str, Any],
         metadata: Optional[Dict[str, Any]] = ..., *, compress: Union[None, bool, str] = ...,
         shuffle: bool = ..., sync: bool = ...) -> None: ...
def load(comm: Any, path: PathLike, requests: Mapping[str, Request], *,
         framework: str = ..., verify: bool = ...) -> Dict[str, Any]: ...
