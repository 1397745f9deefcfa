"""Weights between the Keras world (``cylstm.layers.LSTM``) and the PyTorch
world (``cylstm.nn.LSTM``).

Both use the gate order i, f, c(g), o, so the conversion is a transpose and the
bias: Keras has one bias, torch two that are added. Keras -> torch puts the
Keras bias in ``bias_ih`` and zeros in ``bias_hh``; torch -> Keras sums them.
A projection (``proj_size``) has no Keras equivalent.

    sd = keras_to_torch_weights(*keras_layer.get_weights())
    torch_style = cylstm.nn.LSTM(input_size, units, batch_first=True)
    torch_style.load_state_dict(sd)

    keras_layer.set_weights(torch_to_keras_weights(torch_style.state_dict()))
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..nn.lstm import to_numpy
from .._typing import Array, ArrayLike

__all__ = ["keras_to_torch_weights", "torch_to_keras_weights"]


def keras_to_torch_weights(kernel: ArrayLike, recurrent_kernel: ArrayLike,
                           bias: Optional[ArrayLike] = None, *, layer: int = 0,
                           reverse: bool = False) -> Dict[str, Array]:
    """Keras ``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]`` -> a dict of
    torch-named arrays.

    The gate orders agree (Keras i, f, c, o is torch's i, f, g, o).

    Parameters
    ----------
    kernel : array_like
        (input_dim, 4*units).
    recurrent_kernel : array_like
        (units, 4*units).
    bias : array_like, optional
        (4*units,): becomes ``bias_ih``; ``bias_hh`` is zeros.
    layer : int, default 0
        The layer index in the names (``_l{layer}``).
    reverse : bool, default False
        Use the ``_reverse`` names.

    Returns
    -------
    dict of str to numpy.ndarray
        ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H), and with a
        bias ``bias_ih_l{k}``, ``bias_hh_l{k}``.

    Raises
    ------
    ValueError
        For shapes that do not fit together.
    """
    kernel = to_numpy(kernel)
    recurrent_kernel = to_numpy(recurrent_kernel)
    if kernel.ndim != 2 or kernel.shape[1] % 4:
        raise ValueError(f"`kernel` must have shape (input_dim, 4*units); got {kernel.shape}.")
    H = kernel.shape[1] // 4
    if recurrent_kernel.shape != (H, 4 * H):
        raise ValueError(f"`recurrent_kernel` must have shape ({H}, {4 * H}) to match "
                         f"`kernel` {kernel.shape}; got {recurrent_kernel.shape}.")
    suffix = f"_l{int(layer)}" + ("_reverse" if reverse else "")
    out = {"weight_ih" + suffix: np.ascontiguousarray(kernel.T),
           "weight_hh" + suffix: np.ascontiguousarray(recurrent_kernel.T)}
    if bias is not None:
        bias = to_numpy(bias)
        if bias.shape != (4 * H,):
            raise ValueError(f"`bias` must have shape ({4 * H},); got {bias.shape}.")
        out["bias_ih" + suffix] = bias.copy()
        out["bias_hh" + suffix] = np.zeros_like(bias)
    return out


def torch_to_keras_weights(state_dict: Mapping[str, Any], layer: int = 0,
                           reverse: bool = False) -> List[Array]:
    """One layer of a torch LSTM state dict -> Keras's ``[kernel, recurrent_kernel, bias]``.

    The bias is ``bias_ih + bias_hh``; without biases the list has two
    arrays (``use_bias=False``). ``cylstm.nn.LSTMCell`` names (no ``_l{k}``)
    work too.

    Parameters
    ----------
    state_dict : mapping of str to array_like
        NumPy arrays or torch tensors.
    layer : int, default 0
        Which layer.
    reverse : bool, default False
        Its ``_reverse`` direction.

    Returns
    -------
    list of numpy.ndarray
        ``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]``.

    Raises
    ------
    ValueError
        For missing keys (a projection ``weight_hr`` has no Keras equivalent).
    """
    suffix = f"_l{int(layer)}" + ("_reverse" if reverse else "")
    if "weight_ih" + suffix not in state_dict and "weight_ih" in state_dict \
            and layer == 0 and not reverse:
        suffix = ""  # an LSTMCell's state dict
    if "weight_ih" + suffix not in state_dict:
        raise ValueError(f"The state dict has no 'weight_ih{suffix}'; its keys: "
                         f"{sorted(state_dict)[:8]}.")
    if "weight_hr" + suffix in state_dict:
        raise ValueError(f"Layer {layer} has a projection ('weight_hr{suffix}', proj_size > 0), "
                         "which a Keras LSTM cannot express.")
    w_ih = to_numpy(state_dict["weight_ih" + suffix])
    w_hh = to_numpy(state_dict["weight_hh" + suffix])
    weights = [np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)]
    if "bias_ih" + suffix in state_dict:
        weights.append(to_numpy(state_dict["bias_ih" + suffix])
                       + to_numpy(state_dict["bias_hh" + suffix]))
    return weights
