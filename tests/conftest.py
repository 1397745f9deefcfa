import json
import pathlib

import numpy as np
import pytest

GOLDEN = pathlib.Path(__file__).parent / "golden"

# Agreement expected with the framework goldens, per dtype.
TOL = {"float32": dict(rtol=1e-5, atol=2e-6), "float64": dict(rtol=1e-9, atol=1e-10)}


def load_golden(path):
    """(arrays dict, config dict) of one golden .npz, never unpickling."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop("config")))


def golden_cases(folder, pattern="*.npz"):
    return sorted((GOLDEN / folder).glob(pattern), key=lambda p: p.name)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state (initializers, dropout
    without a seed, shuffling), as keras.utils.set_random_seed would give it:
    a test that trains a model with default initializers then gives the same
    result on every run instead of failing now and then."""
    import cylstm
    cylstm.utils.set_random_seed(0)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
