"""scikit-learn models read as inert data: a RandomForest saved by joblib.dump
(plain and compressed) and by pickle.dump, read with cairn.load(inert=True)
without running anything, against the fitted model itself. Its trees hold
record (structured) arrays, which stay bytes of the tree, beside float
arrays that are tensors."""
import pickle

import numpy as np
import pytest

import cairn

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed")
joblib = pytest.importorskip("joblib", reason="joblib is not installed")
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402


@pytest.fixture(scope="module")
def forest():
    X, y = make_classification(300, 8, random_state=0)
    return RandomForestClassifier(5, max_depth=6, random_state=0).fit(X, y)


@pytest.mark.parametrize("how", ["joblib", "joblib_zlib", "pickle"])
def test_forest_arrays(forest, tmp_path, how):
    path = tmp_path / ("forest.pkl" if how == "pickle" else "forest.joblib")
    if how == "pickle":
        with open(path, "wb") as f:
            pickle.dump(forest, f, protocol=4)
    else:
        joblib.dump(forest, path, compress=3 if how == "joblib_zlib" else 0)
    with pytest.raises(cairn.Error):  # a program for Python's unpickler: refused
        cairn.load(str(path))
    got = cairn.load(str(path), inert=True)
    assert np.array_equal(got["state.classes_"], forest.classes_)
    for i, tree in enumerate(forest.estimators_):
        values = got["state.estimators_.%d.state.tree_.state.values" % i]
        assert values.dtype == np.float64
        assert np.array_equal(values, tree.tree_.value)
    with cairn.open(str(path), inert=True) as f:
        meta = f.metadata()
    nodes = meta["state"]["estimators_"][0]["state"]["tree_"]["state"]["nodes"]
    record = forest.estimators_[0].tree_.__getstate__()["nodes"]
    # the records' bytes, as NumPy holds them: joblib's after the wrapper,
    # pickle's in the _reconstruct state (version, shape, dtype, fortran, bytes)
    held = nodes["state"][4] if how == "pickle" else nodes["data"]
    assert held == record.tobytes()
