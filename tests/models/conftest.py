"""Helpers for the training-stack tests: the Keras 3 goldens in
tests/golden/keras_training/ (written by tests/golden/make_keras_training_goldens.py)."""
import json
import pathlib

import numpy as np
import pytest

TRAINING_GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "golden" / "keras_training"


def load_cases(filename):
    """[(case dict, {field: array})] of one golden file, loaded without pickle."""
    with np.load(TRAINING_GOLDEN / filename, allow_pickle=False) as data:
        index = json.loads(str(data["index"]))
        arrays = {k: data[k] for k in data.files if k not in ("index", "versions")}
    out = []
    for case in index:
        prefix = case["case"] + "/"
        out.append((case, {k[len(prefix):]: v for k, v in arrays.items()
                           if k.startswith(prefix)}))
    return out


def case_params(filename):
    return [pytest.param(c, a, id=c["case"]) for c, a in load_cases(filename)]


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seeds (initializers, shuffling)."""
    import cylstm
    cylstm.utils.set_random_seed(1234)
    yield
