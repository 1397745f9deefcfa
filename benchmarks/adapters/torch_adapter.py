"""PyTorch: torch.nn.LSTM(batch_first=True) / LSTMCell, torch.set_num_threads(n).

Weights: weight_ih = kernel.T, weight_hh = recurrent_kernel.T (gate order
i,f,g,o is Keras's i,f,c,o), bias_ih = bias, bias_hh = 0.  Inference and
streaming run under torch.inference_mode() (entered once around the timing);
training zeroes the grads (set to None) and calls loss.backward().
"""
import numpy as np

from adapters import Bench

torch = None


def setup(threads):
    global torch
    import torch as mod
    torch = mod
    torch.set_num_threads(threads)
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available()}


def _load(module, w, suffix=""):
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    with torch.no_grad():
        getattr(module, "weight_ih" + suffix).copy_(t(w["kernel"].T))
        getattr(module, "weight_hh" + suffix).copy_(t(w["recurrent_kernel"].T))
        getattr(module, "bias_ih" + suffix).copy_(t(w["bias"]))
        getattr(module, "bias_hh" + suffix).zero_()
    return module


def _lstm(w):
    I, H = w["kernel"].shape[0], w["recurrent_kernel"].shape[0]
    return _load(torch.nn.LSTM(I, H, batch_first=True), w, "_l0")


def inference(w, x):
    lstm = _lstm(w).eval()
    xt = torch.from_numpy(x)
    fn = lambda: lstm(xt)[0]
    return [Bench("torch", fn, lambda: [fn().numpy()], torch.inference_mode)]


def training(w, x):
    lstm = _lstm(w).train()
    xt = torch.from_numpy(x)
    params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]

    def fn():
        for p in params:
            p.grad = None
        lstm(xt)[0].sum().backward()

    def check():
        fn()
        return [lstm.weight_ih_l0.grad.numpy().T, lstm.weight_hh_l0.grad.numpy().T,
                lstm.bias_ih_l0.grad.numpy()]

    return [Bench("torch", fn, check)]


def streaming(w, x_t):
    B, I = x_t.shape
    H = w["recurrent_kernel"].shape[0]
    xt = torch.from_numpy(x_t)
    cell = _load(torch.nn.LSTMCell(I, H), w).eval()
    lstm = _lstm(w).eval()
    x1 = xt[:, None, :]
    zeros = lambda *s: torch.zeros(*s)
    cell_state = [zeros(B, H), zeros(B, H)]
    lstm_state = [zeros(1, B, H), zeros(1, B, H)]

    def cell_fn():
        h, c = cell(xt, tuple(cell_state))
        cell_state[:] = h, c
        return h

    def lstm_fn():
        y, state = lstm(x1, tuple(lstm_state))
        lstm_state[:] = state
        return y

    cell_check = lambda: [cell(xt, (zeros(B, H), zeros(B, H)))[0].numpy()]
    lstm_check = lambda: [lstm(x1, (zeros(1, B, H), zeros(1, B, H)))[0][:, 0].numpy()]

    return [Bench("torch-cell", cell_fn, cell_check, torch.inference_mode),
            Bench("torch", lstm_fn, lstm_check, torch.inference_mode)]
