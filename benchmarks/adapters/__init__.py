"""One module per framework.  Each exposes:

    setup(threads) -> dict         import the framework, set its thread count
                                   (before any op), return versions/settings;
    inference(w, x) -> [Bench]     full-sequence forward, batch-first output;
    training(w, x) -> [Bench]      forward + BPTT of loss = sum(outputs),
                                   check() gives [dW, dU, db] in Keras layout;
    streaming(w, x_t) -> [Bench]   one timestep carrying the state;

and optionally memory(w, x) -> callable (one inference, last output only).
A section a framework does not offer returns [].  `w` is the dict of Keras
weights from protocol.make_case, `x` the batch-first float32 input.  The
worker enters ctx() around check() and the timing.
"""
import importlib
import importlib.util
from collections import namedtuple
from contextlib import nullcontext

# variant: the column name; fn(): one timed call; check(): arrays to checksum,
# from a fresh state; ctx(): context entered around the whole measurement.
Bench = namedtuple("Bench", "variant fn check ctx", defaults=(nullcontext,))

MODULES = {  # framework -> (adapter module, packages it needs)
    "cylstm": ("cylstm_adapter", ["cylstm"]),
    "torch": ("torch_adapter", ["torch"]),
    "ort": ("ort_adapter", ["onnxruntime", "onnx"]),
    "keras": ("keras_adapter", ["keras", "tensorflow"]),
    "numpy": ("numpy_adapter", ["numpy"]),
}
FRAMEWORKS = list(MODULES)


def missing(framework):
    """Names of the packages `framework` needs that are not installed."""
    return [p for p in MODULES[framework][1] if importlib.util.find_spec(p) is None]


def load(framework):
    return importlib.import_module("adapters." + MODULES[framework][0])
