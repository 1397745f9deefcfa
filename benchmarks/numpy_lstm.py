"""A plain NumPy LSTM: the baseline anyone could write in ten minutes.

Keras semantics and weight layout: kernel (I, 4H), recurrent_kernel (H, 4H),
bias (4H,), gates i, f, c, o, tanh / sigmoid, zero initial state.  One gemm for
the input projection, then one `h @ U` per step and NumPy ufuncs for the gates.
"""
import numpy as np


def sigmoid(z):
    # 0.5 * (1 + tanh(z / 2)) == 1 / (1 + exp(-z)), without exp overflow.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def step(x_t, h, c, kernel, recurrent_kernel, bias):
    """One timestep: x_t (B, I), h, c (B, H) -> new h, c."""
    H = h.shape[1]
    z = x_t @ kernel + bias + h @ recurrent_kernel
    i = sigmoid(z[:, :H])
    f = sigmoid(z[:, H:2 * H])
    g = np.tanh(z[:, 2 * H:3 * H])
    o = sigmoid(z[:, 3 * H:])
    c = f * c + i * g
    return o * np.tanh(c), c


def forward(x, kernel, recurrent_kernel, bias, return_sequences=True):
    """x (B, T, I) -> (B, T, H) with return_sequences, else the last h (B, H)."""
    B, T, I = x.shape
    H = recurrent_kernel.shape[0]
    xw = (x.reshape(B * T, I) @ kernel + bias).reshape(B, T, 4 * H)
    h = np.zeros((B, H), x.dtype)
    c = np.zeros((B, H), x.dtype)
    y = np.empty((B, T, H), x.dtype) if return_sequences else None
    for t in range(T):
        z = xw[:, t] + h @ recurrent_kernel
        i = sigmoid(z[:, :H])
        f = sigmoid(z[:, H:2 * H])
        g = np.tanh(z[:, 2 * H:3 * H])
        o = sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        if return_sequences:
            y[:, t] = h
    return y if return_sequences else h
