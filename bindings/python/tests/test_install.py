"""The user's install: a --system-site-packages venv and Debian's pip with no
index (README). Needs CAIRN_BUILD_DIR (a build with libcairn.a; `make
test-python` passes build/) so that the library is not compiled again."""
import os
import subprocess
import sys

import pytest

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not os.environ.get("CAIRN_BUILD_DIR"),
                    reason="CAIRN_BUILD_DIR not set (make test-python sets it)")
def test_pip_install_into_a_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                    "--no-index", SRC], check=True, cwd=tmp_path)
    code = ("import cairn, numpy as np, sys; "
            "assert cairn.__file__.startswith(sys.prefix), cairn.__file__; "
            "cairn.save({'a': np.arange(3.0)}, 'a.cairn'); "
            "print(cairn.load('a.cairn')['a'].sum(), cairn.__version__)")
    out = subprocess.run([py, "-c", code], check=True, cwd=tmp_path, capture_output=True,
                         text=True, env={k: v for k, v in os.environ.items()
                                         if k != "PYTHONPATH"})
    assert out.stdout.split()[0] == "3.0"
    stubs = [p for p in os.listdir(os.path.dirname(subprocess.run(
        [py, "-c", "import cairn; print(cairn.__file__)"], check=True, capture_output=True,
        text=True, cwd=tmp_path).stdout.strip())) if p.endswith(".pyi")]
    assert "__init__.pyi" in stubs
