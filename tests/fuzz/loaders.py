"""The loader entry points the fuzzing exercises, by name, and the contract
each is held to: a malformed file gives ValueError (or a documented subclass),
nothing else. Shared by the corpus pass, the atheris targets and the tests."""
import os
import pathlib

import numpy as np

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden"
KERAS_SEED = GOLDEN / "keras_files" / "lstm_dense.keras"


def _weights_model():
    """The model a .weights.h5 file is loaded into (lstm_dense's architecture)."""
    import cylstm
    return cylstm.from_keras(str(KERAS_SEED))


def load_model(path):
    import cylstm
    return cylstm.models.load_model(path)


def from_keras(path):
    import cylstm
    return cylstm.from_keras(path)


def from_keras_weights(path):
    import cylstm
    return cylstm.from_keras(path, model=_weights_model())


def from_onnx(path):
    import cylstm
    return cylstm.from_onnx(path)


def from_onnx_bytes(path):
    import cylstm
    with open(path, "rb") as f:
        return cylstm.from_onnx(f.read())


def state_dict_npz(path):
    from cylstm import nn
    return nn.LSTM.from_torch(path)


#: name -> (loader, file suffix)
LOADERS = {
    "load_model": (load_model, ".cylstm"),
    "from_keras": (from_keras, ".keras"),
    "from_keras_h5": (from_keras, ".h5"),
    "from_keras_weights": (from_keras_weights, ".weights.h5"),
    "from_onnx": (from_onnx, ".onnx"),
    "from_onnx_bytes": (from_onnx_bytes, ".onnx"),
    "state_dict_npz": (state_dict_npz, ".npz"),
}

#: loader name for a corpus file, by suffix
BY_SUFFIX = {".cylstm": "load_model", ".keras": "from_keras", ".weights.h5": "from_keras_weights",
             ".h5": "from_keras_h5", ".onnx": "from_onnx", ".npz": "state_dict_npz"}


def loader_for(path):
    name = os.fspath(path)
    for suffix in (".weights.h5", ".cylstm", ".keras", ".h5", ".onnx", ".npz"):
        if name.endswith(suffix):
            return BY_SUFFIX[suffix]
    raise ValueError(f"no loader for {name!r}")


def in_contract(exc):
    """Whether an exception a loader raised keeps the error contract."""
    return isinstance(exc, ValueError)


def make_seeds(folder):
    """One valid file of every format, in ``folder``; returns their paths."""
    import shutil

    import cylstm
    from cylstm import nn

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    model = cylstm.Sequential([cylstm.layers.LSTM(3, input_shape=(None, 2)),
                               cylstm.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3, 2), "f4"), np.ones((4, 1), "f4"), epochs=1, verbose=0)
    model.save(folder / "seed.cylstm")
    out.append(folder / "seed.cylstm")
    for name in ("lstm_dense.keras", "lstm_dense.h5", "lstm_dense.weights.h5"):
        shutil.copy(GOLDEN / "keras_files" / name, folder / ("seed_" + name))
        out.append(folder / ("seed_" + name))
    shutil.copy(GOLDEN / "onnx_lstm" / "bidirectional.onnx", folder / "seed.onnx")
    out.append(folder / "seed.onnx")
    lstm = nn.LSTM(2, 3, num_layers=2, bidirectional=True, seed=0)
    np.savez(folder / "seed.npz", **{k: np.array(v) for k, v in lstm.state_dict().items()})
    out.append(folder / "seed.npz")
    return out
