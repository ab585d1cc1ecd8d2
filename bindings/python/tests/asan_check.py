"""A pytest plugin for run_asan.sh: fails the run unless the package comes
from the sanitizer build and the sanitizer runtime is loaded."""
import os


def pytest_sessionstart(session):
    import cairn
    from cairn import _cairn

    out = os.environ["CAIRN_PYTHONPATH"]
    assert cairn.__file__.startswith(out), cairn.__file__
    with open("/proc/self/maps") as f:
        maps = f.read()
    assert "libasan" in maps, "the ASan runtime is not loaded"
    assert _cairn.__file__.startswith(out)
