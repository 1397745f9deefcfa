"""Keras-style core layers: ``Dense``, ``Embedding``, ``Masking``, ``Dropout``.

Every layer follows the cylstm layer contract (SPEC section 5):

- ``layer(x, mask=None, training=False)`` returns a NumPy array and builds the
  layer on the first call; layers that do not use a mask accept ``mask=`` and
  ignore it.
- ``y, backprop = layer.forward_train(x, mask=None, training=True)``;
  ``backprop(dy)`` returns ``dx`` (``None`` for ``Embedding``, whose input is
  integer) and ADDS the weight gradients into ``layer.grads[name]``, under
  Keras's weight names (``kernel``/``bias``, ``embeddings``).
- ``layer.compute_mask(x, mask)`` gives the output mask as Keras 3 does:
  ``Embedding(mask_zero=True)`` -> ``x != 0``; ``Masking`` ->
  ``any(x != mask_value, axis=-1)``; ``Dense`` and ``Dropout`` pass the
  incoming mask through.

Choices where Keras is silent or does something we do not copy (to be
collected in the user docs):

- ``Dense``/``Masking``/``Dropout`` cast real inputs to the layer's dtype (Keras
  autocasts float inputs to the compute dtype).
- ``Embedding`` takes integer indices (or floats holding whole numbers); a
  non-integral float raises ``TypeError`` where Keras truncates silently, and
  any index outside ``[0, input_dim)`` raises ``ValueError`` (Keras's
  TensorFlow backend errors for ``>= input_dim`` but wraps negative indices).
- ``Embedding(input_length=n)`` makes ``(None, n)`` the declared input shape,
  so a ``Sequential`` that starts with it is built at once (tf.keras 2).
- An activity regularizer adds ``regularizer(output) / batch_size`` to
  ``layer.losses``, as Keras 3.15 does.
- Gradients through an activation need a built-in one (a Python callable has
  no derivative here; ``forward_train`` raises ``TypeError``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple

import numbers

import numpy as np

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import regularizers as _regularizers
from .._kernels.reference import ACTIVATIONS as _DERIVATIVES
from .._threads import GRADIENT_LOCK
from .._validation import as_float_array, check_bool, check_positive_int, is_cupy
from .base import Layer
from .lstm import _dtype_policy
from .._typing import ActivationLike, Array, ArrayLike, Config, IdentifierLike, ShapeLike

__all__ = ["Dense", "Embedding", "Masking", "Dropout"]


def _reject_unsupported(layer, lora_rank, quantization_config):
    if lora_rank:
        raise ValueError(f"{layer} received lora_rank={lora_rank!r}; LoRA is not "
                         "supported by cylstm. Use lora_rank=None.")
    if quantization_config is not None:
        raise ValueError(f"{layer} received quantization_config={quantization_config!r}; "
                         "quantization is not supported by cylstm. Use None.")


def _activity_loss(regularizer, output):
    """Keras 3.15: ``regularizer(output) / batch_size`` (batch = first axis)."""
    if output.ndim == 0 or output.shape[0] == 0:
        return float(regularizer(output)) if output.ndim == 0 else 0.0
    return float(regularizer(output)) / output.shape[0]


def _activity_gradient(regularizer, output, dtype):
    grad = regularizer.gradient(output).astype(dtype, copy=False)
    if output.ndim and output.shape[0]:
        grad = grad / output.shape[0]
    return grad


def _activation_backward(activation, z, y, dy):
    """dL/dz from dL/dy for ``y = activation(z)``; softmax over the last axis."""
    name = getattr(activation, "cylstm_name", None)
    if name == "linear":
        return dy
    if name == "softmax":
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    if name == "relu":
        return dy * (z > 0)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    return dy * _DERIVATIVES[name][1](z).astype(z.dtype, copy=False)


class Dense(Layer):
    """Densely connected layer ``activation(inputs @ kernel + bias)``, applied to
    the last axis (so a ``(batch, timesteps, features)`` sequence gets the same
    Dense on every step, as Keras's ``Dense`` does on 3-D inputs).

    Weights: ``kernel`` ``(input_dim, units)``, ``bias`` ``(units,)``.

    Parameters
    ----------
    units : int
        Positive: the size of the last output axis.
    activation : str, callable or None, optional
        Applied to the affine output (None: linear). Gradients need a
        built-in activation (by name, ``softmax`` included).
    use_bias : bool, default True
        Whether the layer has a bias.
    kernel_initializer : str, dict, Initializer or callable, default "glorot_uniform"
    bias_initializer : str, dict, Initializer or callable, default "zeros"
    kernel_regularizer, bias_regularizer, activity_regularizer : str, dict, Regularizer or None
        Penalties on the weights and (divided by the batch size) on the output.
    kernel_constraint, bias_constraint : str, dict, Constraint or None
        Projections applied after every optimizer step.
    lora_rank, lora_alpha, quantization_config : None
        Keras's LoRA and quantization; anything but None raises ``ValueError``
        (not available in cylstm).
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer` (``name``, ``dtype``,
        ``input_shape``, ...).
    """

    supports_masking = True

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                     training: bool = False) -> Array: ...

    def __init__(self, units: int, activation: ActivationLike = None, use_bias: bool = True,
                 kernel_initializer: IdentifierLike = "glorot_uniform",
                 bias_initializer: IdentifierLike = "zeros",
                 kernel_regularizer: IdentifierLike = None,
                 bias_regularizer: IdentifierLike = None,
                 activity_regularizer: IdentifierLike = None,
                 kernel_constraint: IdentifierLike = None,
                 bias_constraint: IdentifierLike = None, lora_rank: Optional[int] = None,
                 lora_alpha: Optional[float] = None, quantization_config: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _reject_unsupported("Dense", lora_rank, quantization_config)
        self.units = check_positive_int(units, "units")
        self.activation = _activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.bias_initializer = _initializers.get(bias_initializer)
        self.kernel_regularizer = _regularizers.get(kernel_regularizer)
        self.bias_regularizer = _regularizers.get(bias_regularizer)
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.kernel_constraint = _constraints.get(kernel_constraint)
        self.bias_constraint = _constraints.get(bias_constraint)
        self._activity_loss = 0.0

    def build(self, input_shape: ShapeLike) -> None:
        """Create ``kernel`` and ``bias`` for inputs whose last axis is ``input_shape[-1]``.

        Parameters
        ----------
        input_shape : tuple
            At least 2-D; the last dimension must be known.
        """
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"Input of Dense layer {self.name!r} must have at least 2 "
                             f"dimensions (batch, ..., features); got input_shape={input_shape}.")
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"The last dimension of the inputs to Dense layer {self.name!r} "
                             f"must be known; got input_shape={input_shape}.")
        input_dim = check_positive_int(input_dim, "input_shape[-1]")
        self.add_weight("kernel", (input_dim, self.units), self.kernel_initializer,
                        self.kernel_regularizer, self.kernel_constraint)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer,
                            self.bias_regularizer, self.bias_constraint)
        super().build(input_shape)

    @property
    def input_dim(self) -> Optional[int]:
        """The input features the layer was built for (None before it is built)."""
        return self._params["kernel"].shape[0] if self.built else None

    def compute_output_shape(self, input_shape: ShapeLike) -> Any:
        """``input_shape`` with its last axis replaced by ``units``.

        Parameters
        ----------
        input_shape : tuple

        Returns
        -------
        tuple
        """
        return tuple(input_shape)[:-1] + (self.units,)

    def _check_input(self, inputs):
        x = as_float_array(inputs, self.dtype)
        if x.ndim < 2:
            raise ValueError(f"Input of Dense layer {self.name!r} must have at least 2 "
                             f"dimensions (batch, ..., features); got an array of shape "
                             f"{x.shape}.")
        self._maybe_build(x.shape)
        if x.shape[-1] != self.input_dim:
            raise ValueError(f"Input of Dense layer {self.name!r} must have {self.input_dim} "
                             f"features (last axis), as the layer was built with; got an "
                             f"array of shape {x.shape}.")
        return x

    def _affine(self, x):
        x2 = x.reshape(-1, x.shape[-1])
        z = x2 @ self._params["kernel"]
        if self.use_bias:
            z += self._params["bias"]
        return z.reshape(x.shape[:-1] + (self.units,))

    def call(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
             training: bool = False) -> Array:
        """``activation(inputs @ kernel + bias)`` over the last axis.

        Parameters
        ----------
        inputs : array_like
            (batch, ..., features), cast to the layer's dtype.
        mask : array_like, optional
            Accepted and not used (the incoming mask passes through ``compute_mask``).
        training : bool, default False
            Accepted for the common call signature.

        Returns
        -------
        numpy.ndarray
            (batch, ..., units).
        """
        x = self._check_input(inputs)
        y = self.activation(self._affine(x)).astype(self.dtype, copy=False)
        if self.activity_regularizer is not None:
            self._activity_loss = _activity_loss(self.activity_regularizer, y)
        return y

    def forward_train(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                      training: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``.

        ``backprop(dy)`` adds into ``grads['kernel']`` and ``grads['bias']`` and
        returns ``dx`` (the inputs' shape).

        Parameters
        ----------
        inputs : array_like
            (batch, ..., features).
        mask : array_like, optional
            Not used.
        training : bool, default True
            Not used (Dense has no training-only behaviour).

        Returns
        -------
        y : numpy.ndarray
            The output, as ``call``.
        backprop : callable
            ``backprop(dy) -> dx``.

        Raises
        ------
        TypeError
            If the activation is a Python callable (no gradient).
        """
        if _activations.kernel_code(self.activation) is None \
                and getattr(self.activation, "cylstm_name", None) != "softmax":
            raise TypeError(f"Dense layer {self.name!r} has the Python-callable activation "
                            f"{self.activation!r}; gradients need a built-in activation "
                            "(by Keras name).")
        x = self._check_input(inputs)
        z = self._affine(x)
        y = self.activation(z).astype(self.dtype, copy=False)
        if self.activity_regularizer is not None:
            self._activity_loss = _activity_loss(self.activity_regularizer, y)

        def backprop(dy):
            dy = as_float_array(dy, self.dtype, "dy")
            if dy.shape != y.shape:
                raise ValueError(f"`dy` of Dense layer {self.name!r} must have shape "
                                 f"{y.shape}, got {dy.shape}.")
            if self.activity_regularizer is not None:
                dy = dy + _activity_gradient(self.activity_regularizer, y, self.dtype)
            dz = _activation_backward(self.activation, z, y, dy).astype(self.dtype, copy=False)
            dz2 = dz.reshape(-1, self.units)
            if self.trainable:
                dk = x.reshape(-1, x.shape[-1]).T @ dz2
                with GRADIENT_LOCK:
                    self.grads["kernel"] += dk
                    if self.use_bias:
                        self.grads["bias"] += dz2.sum(axis=0)
            return (dz2 @ self._params["kernel"].T).reshape(x.shape)

        return y, backprop

    @property
    def losses(self) -> List[float]:
        out = super().losses
        if self.activity_regularizer is not None:
            out.append(self._activity_loss)
        return out

    def get_config(self) -> Config:
        """The layer's configuration (Keras 3's keys)."""
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": _dtype_policy(self.dtype)}
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        config.update({
            "units": self.units,
            # Keras 3 writes 'silu' for swish (keras_lstm README, fact 7).
            "activation": {"swish": "silu"}.get(_activations.serialize(self.activation),
                                                _activations.serialize(self.activation)),
            "use_bias": self.use_bias,
            "kernel_initializer": _initializers.serialize(self.kernel_initializer),
            "bias_initializer": _initializers.serialize(self.bias_initializer),
            "kernel_regularizer": _regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": _regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": _constraints.serialize(self.kernel_constraint),
            "bias_constraint": _constraints.serialize(self.bias_constraint),
            "quantization_config": None,
        })
        return config


class Embedding(Layer):
    """Turns integer indices into dense vectors: ``embeddings[inputs]``.

    ``inputs`` of any shape with values in ``[0, input_dim)``; the output has
    shape ``inputs.shape + (output_dim,)``. With ``mask_zero=True`` index 0 is
    padding and ``compute_mask`` returns ``inputs != 0`` (``input_dim`` must
    then count the padding index, as in Keras). ``weights=[matrix]`` sets the
    embeddings at construction (pretrained vectors).

    Parameters
    ----------
    input_dim : int
        Positive: the number of distinct indices (vocabulary size).
    output_dim : int
        Positive: the size of each vector.
    embeddings_initializer : str, dict, Initializer or callable, default "uniform"
    embeddings_regularizer : str, dict, Regularizer or None
    embeddings_constraint : str, dict, Constraint or None
    mask_zero : bool, default False
        Index 0 is padding: the layer produces the mask ``inputs != 0``.
    weights : list of one array_like, optional
        ``[matrix]`` of shape (input_dim, output_dim): initial embeddings.
    activity_regularizer : str, dict, Regularizer or None
        A penalty on the output (divided by the batch size).
    input_length : int, optional
        The sequence length (tf.keras 2): a ``Sequential`` model that starts
        with this layer is built at once for inputs ``(None, input_length)``.
    lora_rank, lora_alpha, quantization_config : None
        Keras's LoRA and quantization; anything but None raises ``ValueError``
        (not available in cylstm).
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer` (``name``, ``dtype``,
        ``input_shape``, ...).
    """

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                     training: bool = False) -> Array: ...

    def __init__(self, input_dim: int, output_dim: int,
                 embeddings_initializer: IdentifierLike = "uniform",
                 embeddings_regularizer: IdentifierLike = None,
                 embeddings_constraint: IdentifierLike = None, mask_zero: bool = False,
                 weights: Optional[Sequence[ArrayLike]] = None, lora_rank: Optional[int] = None,
                 lora_alpha: Optional[float] = None, quantization_config: Any = None,
                 activity_regularizer: IdentifierLike = None,
                 input_length: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _reject_unsupported("Embedding", lora_rank, quantization_config)
        self.input_dim = check_positive_int(input_dim, "input_dim")
        self.output_dim = check_positive_int(output_dim, "output_dim")
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self.embeddings_regularizer = _regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = _constraints.get(embeddings_constraint)
        self.activity_regularizer = _regularizers.get(activity_regularizer)
        self.mask_zero = check_bool(mask_zero, "mask_zero")
        self.supports_masking = self.mask_zero
        if input_length is not None:
            input_length = check_positive_int(input_length, "input_length")
            if self._declared_input_shape is None:
                # tf.keras 2: a model starting with Embedding(input_length=n) is built.
                self._declared_input_shape = (None, input_length)
        self.input_length = input_length
        self._activity_loss = 0.0
        if weights is not None:
            self.build()
            if not (isinstance(weights, (list, tuple)) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape: Optional[ShapeLike] = None) -> None:
        # The weights do not depend on the input shape; it is recorded for `output`.
        """Create ``embeddings`` (input_dim, output_dim); the input shape is not needed.

        Parameters
        ----------
        input_shape : tuple, optional
            Accepted for the common signature.
        """
        if input_shape is not None:
            self._build_input_shape = tuple(input_shape)
        if self.built:
            return
        self.add_weight("embeddings", (self.input_dim, self.output_dim),
                        self.embeddings_initializer, self.embeddings_regularizer,
                        self.embeddings_constraint)
        self.built = True

    def _maybe_build(self, input_shape):
        if self._build_input_shape is None:
            self._build_input_shape = (None,) + tuple(input_shape)[1:]
        self.build()

    def compute_output_shape(self, input_shape: ShapeLike) -> Any:
        """``input_shape + (output_dim,)``.

        Parameters
        ----------
        input_shape : tuple

        Returns
        -------
        tuple
        """
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None) -> Any:
        """``inputs != 0`` with ``mask_zero=True``, else None.

        Parameters
        ----------
        inputs : array_like
            The indices.
        mask : array_like, optional
            Ignored.

        Returns
        -------
        numpy.ndarray of bool or None
        """
        if not self.mask_zero:
            return None
        return np.asarray(inputs) != 0

    def _check_indices(self, inputs):
        if is_cupy(inputs):
            raise TypeError("`inputs` is a CuPy array; the GPU path is not available in this "
                            "build of cylstm. Pass a NumPy array (cupy.asnumpy(x)).")
        idx = np.asarray(inputs)
        if idx.dtype.kind == "f":
            if not np.all(np.isfinite(idx)) or not np.all(idx == np.floor(idx)):
                raise TypeError(f"Input of Embedding layer {self.name!r} must hold integer "
                                "indices; got floats that are not whole numbers (dtype "
                                f"{idx.dtype}).")
            idx = idx.astype(np.int64)
        elif idx.dtype.kind not in "iu":
            raise TypeError(f"Input of Embedding layer {self.name!r} must hold integer "
                            f"indices; got an array of dtype {idx.dtype}.")
        if idx.size:
            bad = (idx < 0) | (idx >= self.input_dim)
            if bad.any():
                pos = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"Embedding layer {self.name!r}: index {int(idx[pos])} at position "
                    f"{pos} of the input is out of range; indices must be in "
                    f"[0, input_dim) = [0, {self.input_dim}).")
        self._maybe_build(idx.shape)
        return idx

    def call(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
             training: bool = False) -> Array:
        """The vectors of the indices: ``embeddings[inputs]``.

        Parameters
        ----------
        inputs : array_like of int
            Indices in ``[0, input_dim)`` (floats holding whole numbers are accepted).
        mask : array_like, optional
            Not used.
        training : bool, default False
            Accepted for the common call signature.

        Returns
        -------
        numpy.ndarray
            ``inputs.shape + (output_dim,)``, in the layer's dtype.

        Raises
        ------
        TypeError
            For non-integral floats or non-numeric inputs.
        ValueError
            For an index outside ``[0, input_dim)``.
        """
        idx = self._check_indices(inputs)
        y = np.take(self._params["embeddings"], idx, axis=0)
        if self.activity_regularizer is not None:
            self._activity_loss = _activity_loss(self.activity_regularizer, y)
        return y

    def forward_train(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                      training: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``.

        ``backprop(dy)`` adds into ``grads['embeddings']`` (rows of repeated
        indices accumulate) and returns None (integer inputs have no gradient).

        Parameters
        ----------
        inputs : array_like of int
            The indices.
        mask : array_like, optional
            Not used.
        training : bool, default True
            Not used.

        Returns
        -------
        y : numpy.ndarray
            The vectors, as ``call``.
        backprop : callable
            ``backprop(dy) -> None``.
        """
        idx = self._check_indices(inputs)
        y = np.take(self._params["embeddings"], idx, axis=0)
        if self.activity_regularizer is not None:
            self._activity_loss = _activity_loss(self.activity_regularizer, y)

        def backprop(dy):
            dy = as_float_array(dy, self.dtype, "dy")
            if dy.shape != y.shape:
                raise ValueError(f"`dy` of Embedding layer {self.name!r} must have shape "
                                 f"{y.shape}, got {dy.shape}.")
            if self.activity_regularizer is not None:
                dy = dy + _activity_gradient(self.activity_regularizer, y, self.dtype)
            if self.trainable:
                with GRADIENT_LOCK:
                    np.add.at(self.grads["embeddings"], idx.reshape(-1),
                              dy.reshape(-1, self.output_dim))
            return None

        return y, backprop

    @property
    def losses(self) -> List[float]:
        out = super().losses
        if self.activity_regularizer is not None:
            out.append(self._activity_loss)
        return out

    def get_config(self) -> Config:
        """The layer's configuration (Keras 3's keys)."""
        config = {
            "name": self.name, "trainable": self.trainable,
            "dtype": _dtype_policy(self.dtype),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": _initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": _regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": _regularizers.serialize(self.activity_regularizer),
            "embeddings_constraint": _constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            "quantization_config": None,
        }
        if self.input_length is not None:  # tf.keras 2's key; Keras 3 accepts it
            config["input_length"] = self.input_length
        return config


class Masking(Layer):
    """Masks timesteps whose features all equal ``mask_value``.

    Output: the input with those timesteps set to 0 (Keras 3); the mask
    (``compute_mask``) is ``any(inputs != mask_value, axis=-1)``.

    Parameters
    ----------
    mask_value : float, default 0.0
        The value that marks a padded timestep.
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer`.
    """

    supports_masking = True

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                     training: bool = False) -> Array: ...

    def __init__(self, mask_value: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise TypeError("Received an invalid value for argument `mask_value`, expected "
                            f"a number, got {mask_value!r}.")
        self.mask_value = mask_value
        self.built = True

    def _keep(self, x):
        return np.any(x != self.mask_value, axis=-1)

    def compute_mask(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None) -> Any:
        """``any(inputs != mask_value, axis=-1)``: True at the steps to keep.

        Parameters
        ----------
        inputs : array_like
            (batch, timesteps, features).
        mask : array_like, optional
            Ignored.

        Returns
        -------
        numpy.ndarray of bool
            (batch, timesteps).
        """
        return self._keep(as_float_array(inputs, self.dtype))

    def _check_input(self, inputs):
        x = as_float_array(inputs, self.dtype)
        if x.ndim < 2:
            raise ValueError(f"Input of Masking layer {self.name!r} must have at least 2 "
                             f"dimensions (batch, ..., features); got shape {x.shape}.")
        if self._build_input_shape is None:
            self._build_input_shape = (None,) + x.shape[1:]
        return x

    def call(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
             training: bool = False) -> Array:
        """The inputs with the masked timesteps set to 0.

        Parameters
        ----------
        inputs : array_like
            (batch, timesteps, features), cast to the layer's dtype.
        mask : array_like, optional
            Not used.
        training : bool, default False
            Accepted for the common call signature.

        Returns
        -------
        numpy.ndarray
            The inputs' shape.
        """
        x = self._check_input(inputs)
        return np.where(self._keep(x)[..., None], x, 0).astype(self.dtype, copy=False)

    def forward_train(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                      training: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``; ``backprop(dy)`` is ``dy`` at kept
        steps and 0 at masked ones.

        Parameters
        ----------
        inputs : array_like
            (batch, timesteps, features).
        mask : array_like, optional
            Not used.
        training : bool, default True
            Not used.

        Returns
        -------
        y : numpy.ndarray
        backprop : callable
        """
        x = self._check_input(inputs)
        keep = self._keep(x)[..., None]
        y = np.where(keep, x, 0).astype(self.dtype, copy=False)

        def backprop(dy):
            dy = as_float_array(dy, self.dtype, "dy")
            if dy.shape != y.shape:
                raise ValueError(f"`dy` of Masking layer {self.name!r} must have shape "
                                 f"{y.shape}, got {dy.shape}.")
            return np.where(keep, dy, 0).astype(self.dtype, copy=False)

        return y, backprop

    def get_config(self) -> Config:
        """The layer's configuration (Keras 3's keys)."""
        return {"name": self.name, "trainable": self.trainable,
                "dtype": _dtype_policy(self.dtype), "mask_value": self.mask_value}


class Dropout(Layer):
    """Inverted dropout: with ``training=True`` each element is kept with
    probability ``1 - rate`` and scaled by ``1 / (1 - rate)``; with
    ``training=False`` the input passes unchanged (cast to the layer dtype).

    ``noise_shape`` (``None`` entries take the input's size) shares one draw
    along the axes of size 1, e.g. ``(None, 1, features)`` drops the same
    features at every timestep. ``seed`` makes the sequence of masks
    reproducible; every call draws a fresh mask.

    Parameters
    ----------
    rate : float
        The fraction dropped, in [0, 1].
    noise_shape : tuple, optional
        The shape of the keep mask, broadcast to the input.
    seed : int, optional
        Seed of the masks.
    **kwargs
        Arguments of :class:`~cylstm.layers.Layer`.
    """

    supports_masking = True

    if TYPE_CHECKING:
        # Layer.__call__ forwards to call(); this gives it call's signature.
        def __call__(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                     training: bool = False) -> Array: ...

    def __init__(self, rate: float, noise_shape: Optional[ShapeLike] = None,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float "
                             f"value between 0 and 1. Received: rate={rate!r}")
        self.rate = float(rate)
        self.noise_shape = self._validate_noise_shape(noise_shape)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (numbers.Integral,))):
            raise ValueError("Received an invalid value for argument `seed`, expected an "
                             f"integer or None, got {seed!r}.")
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.built = True

    @staticmethod
    def _validate_noise_shape(noise_shape):
        if noise_shape is None:
            return None
        if isinstance(noise_shape, str):
            raise ValueError("Invalid value received for argument `noise_shape`. Expected a "
                             f"tuple or list of integers. Received: noise_shape={noise_shape!r}")
        try:
            noise_shape = tuple(noise_shape)
        except TypeError:
            raise ValueError("Invalid value received for argument `noise_shape`. Expected a "
                             "tuple or list of integers. "
                             f"Received: noise_shape={noise_shape!r}") from None
        for d in noise_shape:
            if d is not None and (isinstance(d, bool) or not isinstance(d, numbers.Integral)
                                  or d <= 0):
                raise ValueError("Invalid value received for argument `noise_shape`. Expected "
                                 "positive integers or None. "
                                 f"Received: noise_shape={noise_shape!r}")
        return noise_shape

    def _concrete_noise_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"`noise_shape` {self.noise_shape} of Dropout layer {self.name!r} "
                             f"must have one entry per input axis; the input has shape {shape}.")
        out = tuple(s if d is None else int(d) for d, s in zip(self.noise_shape, shape))
        for d, s in zip(out, shape):
            if d not in (1, s):
                raise ValueError(f"`noise_shape` {self.noise_shape} of Dropout layer "
                                 f"{self.name!r} is not broadcastable to the input shape "
                                 f"{shape}: each entry must be 1, None or the input's size.")
        return out

    def _draw(self, shape):
        """The scaled keep mask, or None when nothing is dropped."""
        if self.rate <= 0:
            return None
        noise = self._concrete_noise_shape(shape)
        if self.rate >= 1:
            return np.zeros(noise, self.dtype)
        keep = self._rng.random(noise) >= self.rate
        return (keep / (1 - self.rate)).astype(self.dtype)

    def _check_input(self, inputs):
        x = as_float_array(inputs, self.dtype)
        if self._build_input_shape is None and x.ndim:
            self._build_input_shape = (None,) + x.shape[1:]
        return x

    def call(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
             training: bool = False) -> Array:
        """The inputs, dropped and scaled with ``training=True``, unchanged otherwise.

        Parameters
        ----------
        inputs : array_like
            Any shape, cast to the layer's dtype.
        mask : array_like, optional
            Not used (passes through ``compute_mask``).
        training : bool, default False
            Drop (True) or pass through (False).

        Returns
        -------
        numpy.ndarray
            The inputs' shape.
        """
        x = self._check_input(inputs)
        if training:
            keep = self._draw(x.shape)
            if keep is not None:
                return x * keep
        return x

    def forward_train(self, inputs: ArrayLike, mask: Optional[ArrayLike] = None,
                      training: bool = True) -> Tuple[Any, Callable[[Any], Any]]:
        """Training forward: ``(y, backprop)``; ``backprop(dy)`` applies the same
        scaled mask to ``dy``.

        Parameters
        ----------
        inputs : array_like
        mask : array_like, optional
            Not used.
        training : bool, default True
            Drop (True) or pass through (False).

        Returns
        -------
        y : numpy.ndarray
        backprop : callable
        """
        x = self._check_input(inputs)
        keep = self._draw(x.shape) if training else None
        y = x if keep is None else x * keep

        def backprop(dy):
            dy = as_float_array(dy, self.dtype, "dy")
            if dy.shape != y.shape:
                raise ValueError(f"`dy` of Dropout layer {self.name!r} must have shape "
                                 f"{y.shape}, got {dy.shape}.")
            return dy if keep is None else dy * keep

        return y, backprop

    def get_config(self) -> Config:
        """The layer's configuration (Keras 3's keys)."""
        return {"name": self.name, "trainable": self.trainable,
                "dtype": _dtype_policy(self.dtype), "rate": self.rate, "seed": self.seed,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}
