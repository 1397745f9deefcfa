"""cylstm: cylstm.layers.LSTM with Keras weights ("cylstm") and cylstm.nn.LSTM
with the same weights in torch's layout ("cylstm-nn", eval mode), under
cylstm.threads(n)."""
import numpy as np

from adapters import Bench

cylstm = None
_threads = 1


def setup(threads):
    global cylstm, _threads
    import cylstm as mod
    cylstm, _threads = mod, threads
    info = {"cylstm": getattr(mod, "__version__", "?"), "cylstm_path": mod.__file__}
    try:   # the instruction set of the recurrent kernel (after any CYLSTM_ISA cap)
        mod.layers.LSTM(1)(np.zeros((1, 1, 1), np.float32))
        from cylstm._kernels.lstm_forward import recurrent_isa
        info["recurrent_isa"] = {2: "AVX-512", 1: "AVX2", 0: "none (BLAS)"}[recurrent_isa()]
    except Exception as e:  # noqa: BLE001 - informational only
        info["recurrent_isa"] = f"unknown ({type(e).__name__})"
    return info


def _layer(w, x, **kw):
    B, T, I = x.shape
    layer = cylstm.layers.LSTM(w["recurrent_kernel"].shape[0], **kw)
    layer.build((B, T, I))
    layer.set_weights([w["kernel"], w["recurrent_kernel"], w["bias"]])
    return layer


def _module(w, I, batch_first):
    """nn.LSTM with the Keras weights: gates i, f, c(g), o in both; one bias."""
    H = w["recurrent_kernel"].shape[0]
    module = cylstm.nn.LSTM(I, H, batch_first=batch_first)
    module.load_state_dict({"weight_ih_l0": w["kernel"].T, "weight_hh_l0": w["recurrent_kernel"].T,
                            "bias_ih_l0": w["bias"], "bias_hh_l0": np.zeros_like(w["bias"])})
    return module.eval()


def _ctx():
    return cylstm.threads(_threads)


def inference(w, x):
    layer = _layer(w, x, return_sequences=True)
    fn = lambda: layer(x)
    module = _module(w, x.shape[2], batch_first=True)
    fn_nn = lambda: module(x)
    return [Bench("cylstm", fn, lambda: [fn()], _ctx),
            Bench("cylstm-nn", fn_nn, lambda: [fn_nn()[0]], _ctx)]


def training(w, x):
    layer = _layer(w, x, return_sequences=True)
    dy = None

    def fn():
        nonlocal dy
        layer.zero_grad()
        # dW, dU, db as the peers make them (their x needs no gradient) and as
        # fit trains a first layer: no dx.
        y, backprop = layer.forward_train(x, input_gradient=False)
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

    module = _module(w, I, batch_first=False)
    x1 = x_t[None]          # (1, B, I): one time-major step
    hx = None

    def fn_nn():
        nonlocal hx
        out, hx = module(x1, hx)
        return out

    return [Bench("cylstm", fn, check, _ctx),
            Bench("cylstm-nn", fn_nn, lambda: [module(x1)[0][0]], _ctx)]


def memory(w, x):
    layer = _layer(w, x, return_sequences=False)

    def run():
        with _ctx():
            return layer(x)

    return run
