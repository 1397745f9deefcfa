"""Plain NumPy (benchmarks/numpy_lstm.py); BLAS threads through threadpoolctl."""
import numpy as np

import numpy_lstm
from adapters import Bench


def setup(threads):
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=threads)  # stays in force for this process
    return {"numpy": np.__version__}


def inference(w, x):
    fn = lambda: numpy_lstm.forward(x, w["kernel"], w["recurrent_kernel"], w["bias"])
    return [Bench("numpy", fn, lambda: [fn()])]


def training(w, x):
    return []


def streaming(w, x_t):
    B, H = x_t.shape[0], w["recurrent_kernel"].shape[0]
    args = (w["kernel"], w["recurrent_kernel"], w["bias"])
    zero = np.zeros((B, H), np.float32)
    state = [zero, zero]

    def fn():
        state[:] = numpy_lstm.step(x_t, *state, *args)
        return state[0]

    return [Bench("numpy", fn, lambda: [numpy_lstm.step(x_t, zero, zero, *args)[0]])]


def memory(w, x):
    return lambda: numpy_lstm.forward(x, w["kernel"], w["recurrent_kernel"], w["bias"],
                                      return_sequences=False)
