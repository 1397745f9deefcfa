"""cylstm: cylstm.layers.LSTM with Keras weights, under cylstm.threads(n)."""
import numpy as np

from adapters import Bench

cylstm = None
_threads = 1


def setup(threads):
    global cylstm, _threads
    import cylstm as mod
    cylstm, _threads = mod, threads
    return {"cylstm": getattr(mod, "__version__", "?"), "cylstm_path": mod.__file__}


def _layer(w, x, **kw):
    B, T, I = x.shape
    layer = cylstm.layers.LSTM(w["recurrent_kernel"].shape[0], **kw)
    layer.build((B, T, I))
    layer.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    return layer


def _ctx():
    return cylstm.threads(_threads)


def inference(w, x):
    layer = _layer(w, x, return_sequences=True)
    fn = lambda: layer(x)
    return [Bench("cylstm", fn, lambda: [fn()], _ctx)]


def training(w, x):
    layer = _layer(w, x, return_sequences=True)
    dy = None

    def fn():
        nonlocal dy
        layer.zero_grad()
        y, backprop = layer.forward_train(x)
        if dy is None:
            dy = np.ones_like(y)
        return backprop(dy)

    def check():
        fn()
        return [layer.grads[k] for k in ("kernel", "recurrent_kernel", "bias")]

    return [Bench("cylstm", fn, check, _ctx)]


def streaming(w, x_t):
    B, I = x_t.shape
    layer = _layer(w, x_t[:, None, :])
    states = layer.get_initial_state(B)

    def fn():
        nonlocal states
        h, states = layer.step(x_t, states)
        return h

    def check():
        return [layer.step(x_t, layer.get_initial_state(B))[0]]

    return [Bench("cylstm", fn, check, _ctx)]


def memory(w, x):
    layer = _layer(w, x, return_sequences=False)

    def run():
        with _ctx():
            return layer(x)

    return run
