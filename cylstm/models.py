"""``Sequential`` with Keras 3's API: add, build, call, compile, fit, evaluate,
predict, summary, weights, config, save; and ``load_model``.

What a Keras user can count on (SPEC section 5; tests in tests/models/):

- The model is built as soon as its input shape is known: from the first
  layer's ``input_shape=``/``input_dim``/``batch_input_shape``/``input_length``
  (``Embedding(..., input_length=n)``), from ``build(input_shape)``, or from
  the first call/fit. Building gives each layer its weights and its symbolic
  output (``model.layers[0].output.shape == (None, 10, 64)``).
- ``model(x)`` runs the layers on NumPy input, passing each layer's output mask
  (``compute_mask``) to the next one, as Keras does.
- ``fit`` trains with minibatches: forward through ``layer.forward_train``,
  the compiled loss (masked by the last layer's output mask) plus every
  layer's ``losses`` (weight and activity penalties), backprop in reverse,
  penalty gradients, one optimizer step over all trainable weights,
  constraints, then the gradients are zeroed. The History has Keras's keys
  (``loss``, ``accuracy``, ..., ``val_loss``, ``val_accuracy``, ...) and the
  progress bar is Keras's (verbose=1), one line per epoch at verbose=2,
  nothing at 0. Shuffling draws from the generator that
  ``cylstm.utils.set_random_seed`` seeds.
- ``summary()`` prints Keras 3's table; ``save``/``load_model`` use the format
  of docs/saving.md (JSON config + ``.npz`` weights in one zip, no pickle).
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Type, Union)

import json
import math
import numbers
import re
import shutil
import sys

import numpy as np

from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from .layers.base import Layer, SymbolicTensor, unique_name
from .utils import _training_rng
from ._typing import Array, ArrayLike, Config, LayerOutput, Shape, ShapeLike

if TYPE_CHECKING:
    import os

    from typing_extensions import Self

    from .callbacks import Callback, History
    from .losses import Loss
    from .metrics import Metric
    from .optimizers import Optimizer

    _MetricLike = Union[str, Metric, Callable[..., Any]]

__all__ = ["Sequential", "load_model", "save_model", "model_from_json", "model_from_config"]


def _verbose_level(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"Received an invalid value for argument `verbose`, expected 'auto', 0, "
                     f"1 or 2, got {verbose!r}.")


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def _n_samples(x, argument):
    try:
        n = len(x)
    except TypeError:
        raise TypeError(f"`{argument}` must be an array with one sample per row; got "
                        f"{type(x).__name__}.") from None
    return n


def _as_batchable(x, argument):
    """A NumPy array (x may be a ragged list only if a layer takes it as-is)."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and callable(x.numpy):   # a framework tensor
        return np.asarray(x.numpy())
    try:
        return np.asarray(x)
    except ValueError as e:
        raise ValueError(f"`{argument}` could not be converted to an array ({e}). Pad ragged "
                         "sequences first with cylstm.preprocessing.pad_sequences.") from None


def _batches(n, batch_size, order=None):
    for start in range(0, n, batch_size):
        if order is None:
            yield slice(start, min(start + batch_size, n))
        else:
            yield order[start:start + batch_size]


def _check_batch_size(batch_size, default=32):
    if batch_size is None:
        return default
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size <= 0:
        raise ValueError(f"Received an invalid value for argument `batch_size`, expected a "
                         f"positive integer or None, got {batch_size!r}.")
    return int(batch_size)


def _format_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


class Sequential:
    """A linear stack of layers, as ``keras.Sequential``.

    ``Sequential([LSTM(50, input_shape=(20, 1)), Dense(1)])`` or ``add`` one
    layer at a time; ``compile``, ``fit``, ``evaluate``, ``predict``,
    ``summary``, ``save`` as in Keras. The model is built as soon as its input
    shape is known.

    Parameters
    ----------
    layers : iterable of Layer, optional
        The layers, in order (a ``SymbolicTensor`` first sets the input shape).
    trainable : bool, default True
        Whether training updates the weights.
    name : str, optional
        The model's name (``sequential``, ``sequential_1``, ... by default).

    Attributes
    ----------
    optimizer : Optimizer or None
        Set by ``compile``.
    history : History or None
        The History of the last ``fit``.
    stop_training : bool
        Set it (e.g. in a callback) to stop ``fit`` after the current epoch.

    Examples
    --------
    >>> from cylstm.models import Sequential
    >>> from cylstm.layers import LSTM, Dense
    >>> model = Sequential([LSTM(8, input_shape=(20, 1)), Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    """

    def __init__(self, layers: Optional[Iterable[Layer]] = None, trainable: bool = True,
                 name: Optional[str] = None) -> None:
        self.name = name if name is not None else unique_name("sequential")
        self._layers = []
        self._input_shape = None       # the batch input shape, e.g. (None, 10, 8)
        self._input_dtype = None
        self.built = False
        self.optimizer = None
        self.loss = None
        self._loss_obj = None
        self._metric_specs = []
        self._metric_objs = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._trainable = bool(trainable)
        if layers is not None:
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    # -- layers ------------------------------------------------------------------
    @property
    def layers(self) -> List[Layer]:
        """The layers, in order (a new list)."""
        return list(self._layers)

    def add(self, layer: Union[Layer, SymbolicTensor], rebuild: bool = True) -> None:
        """Append a layer (or set the input shape with a ``SymbolicTensor``).

        Parameters
        ----------
        layer : Layer or SymbolicTensor
            A cylstm layer with a name not yet in the model.
        rebuild : bool, default True
            Build the model now if its input shape is known.

        Raises
        ------
        TypeError
            For anything but a cylstm layer (a nested Sequential included).
        ValueError
            For a duplicate name, or a layer after one with several outputs.
        """
        if isinstance(layer, SymbolicTensor):
            if self._layers:
                raise ValueError("An input spec can only be added as the first element of a "
                                 "Sequential model.")
            self._input_shape = tuple(layer.shape)
            self._input_dtype = layer.dtype
            return
        if isinstance(layer, Sequential):
            raise TypeError("Nesting a Sequential model inside another is not supported by "
                            "cylstm; add its layers one by one.")
        if not isinstance(layer, Layer):
            raise TypeError("The added layer must be an instance of class cylstm.layers.Layer. "
                            f"Received: layer={layer!r} of type {type(layer)}.")
        names = {l.name for l in self._layers}
        if layer.name in names:
            raise ValueError("All layers added to a Sequential model should have unique names. "
                             f"Name {layer.name!r} is already the name of a layer in this "
                             "model. Update the `name` argument to pass a unique name.")
        if self._layers and isinstance(self._layers[-1]._output_spec, list):
            raise ValueError("All layers in a Sequential model should have a single output "
                             f"tensor; layer {self._layers[-1].name!r} returns "
                             f"{len(self._layers[-1]._output_spec)} (return_state=True). "
                             "Only the last layer may return several.")
        self._layers.append(layer)
        if self.built:
            self._build_layer(layer, self._output_shape_of(self._layers[-2])
                              if len(self._layers) > 1 else self._input_shape)
        elif rebuild:
            self._maybe_build()

    def pop(self, rebuild: bool = True) -> Layer:
        """Remove and return the last layer.

        Parameters
        ----------
        rebuild : bool, default True
            Accepted for Keras's signature.

        Returns
        -------
        Layer

        Raises
        ------
        TypeError
            If the model has no layers.
        """
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        if not self._layers:
            self.built = False
        return layer

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """A layer by name or by index.

        Parameters
        ----------
        name : str, optional
            The layer's name.
        index : int, optional
            Its position (takes precedence over ``name``).

        Returns
        -------
        Layer

        Raises
        ------
        ValueError
            If there is no such layer.
        """
        if index is not None:
            if len(self._layers) <= index:
                raise ValueError(f"Was asked to retrieve layer at index {index} but model only "
                                 f"has {len(self._layers)} layers.")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[l.name for l in self._layers]}.")

    @property
    def trainable(self) -> bool:
        """Whether training updates the weights (setting it sets every layer's)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> bool:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = bool(value)

    # -- building ----------------------------------------------------------------
    def _declared_shape(self):
        if self._input_shape is not None:
            return self._input_shape
        if self._layers:
            return getattr(self._layers[0], "_declared_input_shape", None)
        return None

    def _maybe_build(self):
        shape = self._declared_shape()
        if shape is not None and self._layers and not self.built:
            self.build(shape)

    @staticmethod
    def _output_shape_of(layer):
        spec = layer._output_spec
        return tuple(_first(spec).shape)

    def _build_layer(self, layer, shape):
        shape = tuple(shape)
        if not layer.built:
            layer.build(shape)
        if layer._build_input_shape is None:
            layer._build_input_shape = shape
        out = layer.compute_output_shape(shape)
        if isinstance(out, list):
            layer._output_spec = [SymbolicTensor(s, layer.dtype, layer.name) for s in out]
        else:
            layer._output_spec = SymbolicTensor(out, layer.dtype, layer.name)

    def build(self, input_shape: Optional[ShapeLike] = None) -> None:
        """Build every layer for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple, optional
            The input shape with the batch axis, e.g. ``(None, 10, 8)``; by default
            the shape the first layer declares.

        Raises
        ------
        ValueError
            If no shape is given or declared, or it has no batch axis.
        """
        if input_shape is None:
            input_shape = self._declared_shape()
            if input_shape is None:
                raise ValueError("You must provide an `input_shape` argument (batch axis "
                                 "included, e.g. (None, timesteps, features)) or give the "
                                 "first layer an `input_shape=`.")
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        if len(input_shape) < 2:
            raise ValueError(f"`input_shape` must include the batch axis, e.g. (None, 10, 8); "
                             f"got {input_shape}.")
        shape = input_shape
        for i, layer in enumerate(self._layers):
            if i and isinstance(self._layers[i - 1]._output_spec, list):
                raise ValueError("All layers in a Sequential model should have a single "
                                 f"output tensor; layer {self._layers[i - 1].name!r} returns "
                                 "several (return_state=True).")
            self._build_layer(layer, shape)
            shape = self._output_shape_of(layer)
        self._input_shape = input_shape
        self.built = True

    @property
    def input_shape(self) -> Shape:
        """The input shape with the batch axis (AttributeError before it is known)."""
        if self._input_shape is None:
            raise AttributeError(f"The model {self.name!r} has not been built yet; it has no "
                                 "input shape.")
        return self._input_shape

    @property
    def output_shape(self) -> Union[Shape, List[Shape]]:
        """The output shape of the last layer (a list for several outputs)."""
        if not self.built or not self._layers:
            raise AttributeError(f"The model {self.name!r} has not been built yet; it has no "
                                 "output shape.")
        spec = self._layers[-1]._output_spec
        return [s.shape for s in spec] if isinstance(spec, list) else spec.shape

    @property
    def input(self) -> SymbolicTensor:
        """The symbolic input (shape and dtype), as Keras's ``model.input``."""
        return SymbolicTensor(self.input_shape, self._input_dtype or "float32", "input")

    @property
    def output(self) -> Union[SymbolicTensor, List[SymbolicTensor]]:
        """The symbolic output of the last layer, as Keras's ``model.output``."""
        if not self.built or not self._layers:
            raise AttributeError(f"The model {self.name!r} has not been built yet.")
        return self._layers[-1]._output_spec

    def compute_output_shape(self, input_shape: ShapeLike) -> Union[Shape, List[Shape]]:
        """The model's output shape for inputs of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple
            With the batch axis.

        Returns
        -------
        tuple or list of tuple
        """
        shape = tuple(input_shape)
        for layer in self._layers:
            out = layer.compute_output_shape(shape)
            shape = out
            if isinstance(out, list):
                shape = out[0]
        return out if self._layers else shape

    # -- calling -----------------------------------------------------------------
    def _ensure_built(self, x):
        if not self._layers:
            raise ValueError(f"Sequential model {self.name!r} has no layers; add some first.")
        if not self.built:
            self.build((None,) + tuple(np.shape(x)[1:]))

    def __call__(self, inputs: ArrayLike, training: bool = False,
                 mask: Optional[ArrayLike] = None) -> LayerOutput:
        """Run the layers on ``inputs``, passing each layer's output mask to the next.

        Parameters
        ----------
        inputs : array_like
            A batch of inputs for the first layer.
        training : bool, default False
            Training mode (dropout acts).
        mask : array_like of bool, optional
            A mask for the first layer.

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            The last layer's output (a list when it returns several, e.g. an LSTM
            with ``return_state=True``).
        """
        x = _as_batchable(inputs, "inputs")
        self._ensure_built(x)
        out, _ = self._forward(x, mask, bool(training))
        return out

    def call(self, inputs: ArrayLike, training: bool = False,
             mask: Optional[ArrayLike] = None) -> LayerOutput:
        """The same as calling the model: ``model.call(x)`` is ``model(x)``."""
        return self(inputs, training=training, mask=mask)

    def _forward(self, x, mask=None, training=False):
        for layer in self._layers:
            y = layer(x, mask=mask, training=training)
            mask = _first(layer.compute_mask(x, mask))
            x = y
        return x, mask

    def _forward_train(self, x, mask=None):
        backprops = []
        for layer in self._layers:
            y, backprop = layer.forward_train(x, mask=mask, training=True)
            mask = _first(layer.compute_mask(x, mask))
            backprops.append(backprop)
            x = y
        return x, mask, backprops

    # -- weights -----------------------------------------------------------------
    @property
    def weights(self) -> List[Array]:
        """Every layer's weights, in layer order (the layers' own arrays)."""
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable_weights(self) -> List[Array]:
        """The weights optimizers update."""
        if not self.trainable:
            return []
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> List[Array]:
        """The weights optimizers do not update."""
        if not self.trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    @property
    def variables(self) -> List[Array]:
        """The same list as ``weights`` (Keras's name)."""
        return self.weights

    def get_weights(self) -> List[Array]:
        """Copies of every layer's weights, in layer order.

        Returns
        -------
        list of numpy.ndarray
        """
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights: Iterable[ArrayLike]) -> None:
        """Set every layer's weights from one list, in ``get_weights`` order.

        Parameters
        ----------
        weights : iterable of array_like
            As many arrays as ``get_weights`` returns, of the same shapes.

        Raises
        ------
        ValueError
            If the number of arrays or a shape differs.
        """
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(f"Model {self.name!r} expects {expected} weight arrays, got "
                             f"{len(weights)}.")
        pos = 0
        for layer in self._layers:
            n = len(layer.weights)
            if n:
                layer.set_weights(weights[pos:pos + n])
            pos += n

    def count_params(self) -> int:
        """The number of weight values.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            If the model is not built.
        """
        if not self.built:
            raise ValueError("You tried to call `count_params` on model "
                             f"{self.name!r}, but the model isn't built. You can build it "
                             "manually via: `model.build(batch_input_shape)`.")
        return int(sum(w.size for w in self.weights))

    def _parameters(self):
        """(key, array, grad) of every trainable weight; keys are 'layer/weight'."""
        out = []
        for layer in self._layers:
            out.extend(_named_parameters(layer, layer.name))
        return out

    # -- compile -----------------------------------------------------------------
    def compile(self, optimizer: Union[str, Mapping[str, Any], Optimizer] = "rmsprop",
                loss: Union[str, Mapping[str, Any], Loss, Callable[..., Any], None] = None,
                metrics: Union[_MetricLike, Sequence[_MetricLike], None] = None,
                loss_weights: None = None,
                weighted_metrics: None = None, run_eagerly: bool = False,
                steps_per_execution: int = 1,
                jit_compile: Union[bool, str] = "auto", auto_scale_loss: bool = True) -> None:
        """Set the optimizer, loss and metrics (Keras names or objects).

        Parameters
        ----------
        optimizer : str, dict or Optimizer, default "rmsprop"
            See :func:`cylstm.optimizers.get`.
        loss : str, dict or Loss, optional
            See :func:`cylstm.losses.get`; ``fit`` and ``evaluate`` need one.
        metrics : str, Metric, callable or list of them, optional
            See :func:`cylstm.metrics.get`; ``"accuracy"`` picks binary,
            categorical or sparse accuracy from the targets, as Keras.
        loss_weights, weighted_metrics : None
            Anything but None raises ``ValueError`` (single-output model).
        run_eagerly, steps_per_execution, jit_compile, auto_scale_loss
            Accepted and change nothing.

        Raises
        ------
        ValueError
            For an unknown name or a dict of metrics.
        """
        if loss_weights is not None or weighted_metrics is not None:
            raise ValueError("`loss_weights` and `weighted_metrics` are not supported by "
                             "cylstm's single-output Sequential model.")
        self.optimizer = _optimizers.get(optimizer)
        self.loss = loss
        self._loss_obj = None if loss is None else _losses.get(loss)
        if metrics is None:
            metrics = []
        elif isinstance(metrics, dict):
            raise ValueError("A dict of metrics (per output) is not supported by cylstm's "
                             "single-output Sequential model; pass a list.")
        elif isinstance(metrics, (str, _metrics.Metric)) or callable(metrics):
            metrics = [metrics]
        for m in metrics:
            if isinstance(m, str) and m.lower() not in ("accuracy", "acc"):
                _metrics.get(m)   # fail now on unknown names
        self._metric_specs = list(metrics)
        self._metric_objs = None
        self.compiled = True

    def _compiled_metric_objects(self):
        return list(self._metric_objs or [])

    def _resolve_metrics(self, y_true, y_pred):
        if self._metric_objs is None:
            objs = [_metrics.resolve(m, y_true, y_pred) for m in self._metric_specs]
            names = [m.name for m in objs]
            if len(set(names)) != len(names) or "loss" in names:
                raise ValueError(f"Metric names must be unique and differ from 'loss'; got "
                                 f"{names}.")
            self._metric_objs = objs
        return self._metric_objs

    @property
    def metrics_names(self) -> List[str]:
        """``['loss', metric names...]`` in compile order."""
        return ["loss"] + [m.name if not isinstance(m, str) else m
                           for m in (self._metric_objs or self._metric_specs)]

    @property
    def metrics(self) -> List[Metric]:
        """The compiled metric objects (resolved at the first fit or evaluate)."""
        return self._compiled_metric_objects()

    def reset_metrics(self) -> None:
        """Reset the state of every compiled metric."""
        for m in self._metric_objs or []:
            m.reset_state()

    def _check_compiled(self, method):
        if not self.compiled or self._loss_obj is None:
            raise RuntimeError(f"You must call `compile()` with a loss before calling "
                               f"`{method}()`.")

    # -- training ----------------------------------------------------------------
    def _regularization_loss(self):
        return float(sum(sum(layer.losses) for layer in self._layers))

    def _train_step(self, xb, yb, swb=None):
        y_pred, mask, backprops = self._forward_train(xb)
        if isinstance(y_pred, list):
            raise ValueError(f"The last layer of {self.name!r} returns {len(y_pred)} outputs "
                             "(return_state=True); fit needs a single output.")
        loss, dy = self._loss_obj.value_and_grad(yb, y_pred, sample_weight=swb, mask=mask)
        loss += self._regularization_loss()
        for i in range(len(backprops) - 1, -1, -1):
            dy = backprops[i](dy)
            if dy is None and i > 0:
                raise ValueError(f"Layer {self._layers[i].name!r} does not pass gradients to "
                                 "the layers before it (an Embedding must be the first layer).")
        for layer in self._layers:
            layer.add_regularization_gradients()
        if self.optimizer is not None:
            self.optimizer.apply(self._parameters())
        for layer in self._layers:
            layer.apply_constraints()
        for layer in self._layers:
            layer.zero_grad()
        return loss, y_pred, mask

    def _prepare_xy(self, x, y, sample_weight, method):
        x = _as_batchable(x, "x")
        if x is None:
            raise ValueError(f"`{method}` needs input data `x`.")
        n = _n_samples(x, "x")
        if y is not None:
            y = _as_batchable(y, "y")
            if _n_samples(y, "y") != n:
                raise ValueError("Data cardinality is ambiguous. Make sure all arrays contain "
                                 f"the same number of samples: x has {n} samples, y has "
                                 f"{_n_samples(y, 'y')}.")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape[:1] != (n,):
                raise ValueError(f"`sample_weight` must have one entry per sample ({n}); got "
                                 f"shape {sample_weight.shape}.")
        if n == 0:
            raise ValueError(f"`{method}` received no samples: x has length 0.")
        return x, y, sample_weight, n

    @staticmethod
    def _class_weights(y, class_weight):
        """Per-sample weights from ``{class: weight}`` (Keras: targets of rank 1 or 2)."""
        y = np.asarray(y)
        if y.ndim > 2:
            raise ValueError("`class_weight` needs one class per sample (targets of rank 1 or "
                             f"2), as in Keras; got targets of shape {y.shape}.")
        if y.ndim == 2 and y.shape[1] > 1:
            labels = np.argmax(y, axis=-1)
        else:
            labels = np.round(y.reshape(-1)).astype(np.int64)
        try:
            return np.array([class_weight[int(c)] for c in labels], dtype=np.float64)
        except KeyError as e:
            raise ValueError(f"`class_weight` has no weight for class {e.args[0]}.") from None

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
            epochs: int = 1, verbose: Union[int, str] = "auto",
            callbacks: Optional[Sequence[Callback]] = None,
            validation_split: float = 0.0, validation_data: Optional[Sequence[Any]] = None,
            shuffle: Union[bool, str] = True, class_weight: Optional[Mapping[int, float]] = None,
            sample_weight: Optional[ArrayLike] = None, initial_epoch: int = 0,
            steps_per_epoch: None = None, validation_steps: None = None,
            validation_batch_size: Optional[int] = None, validation_freq: int = 1) -> History:
        """Train for ``epochs`` epochs with minibatches.

        As Keras: ``validation_split`` takes the last fraction of the samples
        (before shuffling) for validation; ``validation_data=(x_val, y_val)``
        takes precedence; the last batch may be smaller; ``shuffle=True``
        reshuffles the training samples every epoch (``'batch'`` shuffles the
        order of the batches only).

        Parameters
        ----------
        x : array_like
            Inputs, (samples, ...) as the first layer takes them.
        y : array_like
            Targets, one per sample.
        batch_size : int, optional
            Samples per batch (default 32).
        epochs : int, default 1
            The number of passes over the data.
        verbose : {"auto", 0, 1, 2}, default "auto"
            0 silent, 1 progress bar ("auto"), 2 one line per epoch.
        callbacks : list of Callback, optional
            Their hooks are called (see :mod:`cylstm.callbacks`).
        validation_split : float, default 0.0
            Fraction of the samples held out for validation.
        validation_data : tuple, optional
            ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``.
        shuffle : bool or "batch", default True
            Reshuffle every epoch.
        class_weight : dict of int to float, optional
            A weight per class for the loss.
        sample_weight : array_like, optional
            One weight per sample for the loss and metrics.
        initial_epoch : int, default 0
            The epoch to start counting from.
        steps_per_epoch, validation_steps : None
            For generators (not supported): anything but None raises ``ValueError``.
        validation_batch_size : int, optional
            Batch size of the validation pass (default ``batch_size``).
        validation_freq : int, default 1
            Validate every ``validation_freq`` epochs.

        Returns
        -------
        History
            ``history.history`` maps ``loss``, metric names and their ``val_``
            forms to one value per epoch.

        Raises
        ------
        RuntimeError
            If the model is not compiled with a loss.
        ValueError
            For missing targets or mismatched sample counts.
        """
        self._check_compiled("fit")
        if steps_per_epoch is not None or validation_steps is not None:
            raise ValueError("`steps_per_epoch`/`validation_steps` are for generators; cylstm "
                             "fits NumPy arrays (pass x and y).")
        if y is None:
            raise ValueError("`fit` needs targets: pass y.")
        level = _verbose_level(verbose)   # Keras passes 'auto' itself on to the callbacks
        batch_size = _check_batch_size(batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"Received an invalid value for argument `epochs`, expected a "
                             f"non-negative integer, got {epochs!r}.")
        x, y, sample_weight, n = self._prepare_xy(x, y, sample_weight, "fit")
        if class_weight is not None:
            cw = self._class_weights(y, class_weight)
            sample_weight = cw if sample_weight is None else sample_weight * cw

        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("`validation_data` must be a tuple (x_val, y_val) or "
                                 "(x_val, y_val, val_sample_weight).")
            xv, yv = validation_data[0], validation_data[1]
            swv = validation_data[2] if len(validation_data) == 3 else None
            val = self._prepare_xy(xv, yv, swv, "fit (validation_data)")[:3]
        elif validation_split:
            if not 0 < validation_split < 1:
                raise ValueError("`validation_split` must be a float between 0 and 1; got "
                                 f"{validation_split!r}.")
            split_at = int(math.floor(n * (1.0 - validation_split)))
            if split_at == 0 or split_at == n:
                raise ValueError(
                    f"Training data contains {n} samples, which is not sufficient to split it "
                    "into a validation and training set as specified by "
                    f"`validation_split={validation_split}`. Either provide more data, or a "
                    "different value for the `validation_split` argument.")
            val = (x[split_at:], y[split_at:],
                   None if sample_weight is None else sample_weight[split_at:])
            x, y = x[:split_at], y[:split_at]
            sample_weight = None if sample_weight is None else sample_weight[:split_at]
            n = split_at
        val_batch_size = _check_batch_size(validation_batch_size, batch_size)

        self._ensure_built(x)
        steps = int(math.ceil(n / batch_size))
        cb = _callbacks.CallbackList(callbacks, add_history=True, add_progbar=level != 0,
                                     model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        for layer in self._layers:
            layer.zero_grad()
        rng = _training_rng()
        cb.on_train_begin()
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            loss_tracker = _metrics.Mean(name="loss")
            cb.on_epoch_begin(epoch)
            if shuffle == "batch":
                perm = rng.permutation(steps)
                order = np.concatenate([np.arange(b * batch_size, min((b + 1) * batch_size, n))
                                        for b in perm])
            elif shuffle:
                order = rng.permutation(n)
            else:
                order = None
            logs = {}
            for step, idx in enumerate(_batches(n, batch_size, order)):
                cb.on_train_batch_begin(step)
                xb, yb = x[idx], y[idx]
                swb = None if sample_weight is None else sample_weight[idx]
                loss, y_pred, mask = self._train_step(xb, yb, swb)
                bsz = _n_samples(xb, "x")
                loss_tracker.update_state(loss, sample_weight=bsz)
                for m in self._resolve_metrics(yb, y_pred):
                    m.update_state(yb, y_pred, sample_weight=swb, mask=mask)
                logs = self._logs(loss_tracker)
                cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % max(int(validation_freq), 1) == 0:
                val_logs = self._evaluate_arrays(*val, batch_size=val_batch_size)
                epoch_logs.update({f"val_{k}": v for k, v in sorted(val_logs.items())})
            cb.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cb.on_train_end(epoch_logs)
        self.history = cb.history
        return cb.history

    def _logs(self, loss_tracker):
        logs = {"loss": loss_tracker.result()}
        for m in self._metric_objs or []:
            logs[m.name] = float(m.result())
        return dict(sorted(logs.items()))

    def _evaluate_arrays(self, x, y, sample_weight, batch_size, cb=None):
        """Running loss and metrics over (x, y) in batches: a dict (sorted keys)."""
        self.reset_metrics()
        loss_tracker = _metrics.Mean(name="loss")
        n = _n_samples(x, "x")
        logs = {}
        for step, idx in enumerate(_batches(n, batch_size)):
            if cb is not None:
                cb.on_test_batch_begin(step)
            xb, yb = x[idx], y[idx]
            swb = None if sample_weight is None else sample_weight[idx]
            y_pred, mask = self._forward(xb, None, False)
            if isinstance(y_pred, list):
                raise ValueError(f"The last layer of {self.name!r} returns {len(y_pred)} "
                                 "outputs (return_state=True); evaluate needs a single output.")
            loss = self._loss_obj(yb, y_pred, sample_weight=swb, mask=mask)
            loss += self._regularization_loss()
            loss_tracker.update_state(loss, sample_weight=_n_samples(xb, "x"))
            for m in self._resolve_metrics(yb, y_pred):
                m.update_state(yb, y_pred, sample_weight=swb, mask=mask)
            logs = self._logs(loss_tracker)
            if cb is not None:
                cb.on_test_batch_end(step, logs)
        return logs

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,
                 verbose: Union[int, str] = "auto", sample_weight: Optional[ArrayLike] = None,
                 steps: Optional[int] = None, callbacks: Optional[Sequence[Callback]] = None,
                 return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """Loss and metrics on (x, y).

        Parameters
        ----------
        x : array_like
            Inputs, (samples, ...) as the first layer takes them.
        y : array_like
            Targets, one per sample.
        batch_size : int, optional
            Samples per batch (default 32).
        verbose : {"auto", 0, 1, 2}, default "auto"
            0 silent, 1 progress bar ("auto"), 2 one line per epoch.
        sample_weight : array_like, optional
            One weight per sample for the loss and metrics.
        steps : None
            For generators (not supported).
        callbacks : list of Callback, optional
            Their hooks are called (see :mod:`cylstm.callbacks`).
        return_dict : bool, default False
            Return ``{name: value}``.

        Returns
        -------
        float, list of float or dict
            The loss alone when there are no metrics; ``[loss, metric, ...]`` in
            compile order; ``{name: value}`` with ``return_dict=True``.
        """
        self._check_compiled("evaluate")
        if steps is not None:
            raise ValueError("`steps` is for generators; cylstm evaluates NumPy arrays.")
        if y is None:
            raise ValueError("`evaluate` needs targets: pass y.")
        level = _verbose_level(verbose)   # Keras passes 'auto' itself on to the callbacks
        batch_size = _check_batch_size(batch_size)
        x, y, sample_weight, n = self._prepare_xy(x, y, sample_weight, "evaluate")
        self._ensure_built(x)
        steps = int(math.ceil(n / batch_size))
        cb = _callbacks.CallbackList(callbacks, add_progbar=level != 0, model=self,
                                     verbose=verbose, epochs=1, steps=steps)
        cb.on_test_begin()
        logs = self._evaluate_arrays(x, y, sample_weight, batch_size, cb)
        cb.on_test_end(logs)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metric_objs or []]
        return values[0] if len(values) == 1 else values

    def predict(self, x: Any, batch_size: Optional[int] = None,
                verbose: Union[int, str] = "auto", steps: Optional[int] = None,
                callbacks: Optional[Sequence[Callback]] = None) -> LayerOutput:
        """The model's outputs for x, computed in batches.

        Parameters
        ----------
        x : array_like
            Inputs, (samples, ...).
        batch_size : int, optional
            Samples per batch (default 32).
        verbose : {"auto", 0, 1, 2}, default "auto"
            0 silent, 1 progress bar ("auto"), 2 one line per epoch.
        steps : None
            For generators (not supported).
        callbacks : list of Callback, optional
            Their hooks are called (see :mod:`cylstm.callbacks`).

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
            The outputs for all samples (a list when the last layer returns several).
        """
        if steps is not None:
            raise ValueError("`steps` is for generators; cylstm predicts on NumPy arrays.")
        level = _verbose_level(verbose)   # Keras passes 'auto' itself on to the callbacks
        batch_size = _check_batch_size(batch_size)
        x = _as_batchable(x, "x")
        n = _n_samples(x, "x")
        if n == 0:
            raise ValueError("`predict` received no samples: x has length 0.")
        self._ensure_built(x)
        steps = int(math.ceil(n / batch_size))
        cb = _callbacks.CallbackList(callbacks, add_progbar=level != 0, model=self,
                                     verbose=verbose, epochs=1, steps=steps)
        cb.on_predict_begin()
        outs = []
        for step, idx in enumerate(_batches(n, batch_size)):
            cb.on_predict_batch_begin(step)
            y, _ = self._forward(x[idx], None, False)
            outs.append(y)
            cb.on_predict_batch_end(step, {"outputs": y})
        cb.on_predict_end()
        if isinstance(outs[0], list):
            return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
        return np.concatenate(outs)

    def train_on_batch(self, x: Any, y: Any = None, sample_weight: Optional[ArrayLike] = None,
                       class_weight: Optional[Mapping[int, float]] = None,
                       return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """One training step (forward, backward, optimizer step) on one batch.

        Parameters
        ----------
        x : array_like
            One batch of inputs.
        y : array_like
            Its targets.
        sample_weight : array_like, optional
            One weight per sample for the loss and metrics.
        class_weight : dict of int to float, optional
            A weight per class.
        return_dict : bool, default False
            Return ``{name: value}``.

        Returns
        -------
        float, list of float or dict
            The loss alone when there are no metrics; ``[loss, metric, ...]`` in
            compile order; ``{name: value}`` with ``return_dict=True``.
        """
        self._check_compiled("train_on_batch")
        x, y, sample_weight, _ = self._prepare_xy(x, y, sample_weight, "train_on_batch")
        if class_weight is not None:
            cw = self._class_weights(y, class_weight)
            sample_weight = cw if sample_weight is None else sample_weight * cw
        self._ensure_built(x)
        loss, y_pred, mask = self._train_step(x, y, sample_weight)
        tracker = _metrics.Mean(name="loss")
        tracker.update_state(loss)
        for m in self._resolve_metrics(y, y_pred):
            m.update_state(y, y_pred, sample_weight=sample_weight, mask=mask)
        logs = self._logs(tracker)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metric_objs or []]
        return values[0] if len(values) == 1 else values

    def test_on_batch(self, x: Any, y: Any = None, sample_weight: Optional[ArrayLike] = None,
                      return_dict: bool = False) -> Union[float, List[float], Dict[str, float]]:
        """Loss and metrics on one batch, without training.

        Parameters
        ----------
        x : array_like
            One batch of inputs.
        y : array_like
            Its targets.
        sample_weight : array_like, optional
            One weight per sample for the loss and metrics.
        return_dict : bool, default False
            Return ``{name: value}``.

        Returns
        -------
        float, list of float or dict
            The loss alone when there are no metrics; ``[loss, metric, ...]`` in
            compile order; ``{name: value}`` with ``return_dict=True``.
        """
        self._check_compiled("test_on_batch")
        x, y, sample_weight, n = self._prepare_xy(x, y, sample_weight, "test_on_batch")
        self._ensure_built(x)
        logs = self._evaluate_arrays(x, y, sample_weight, n)
        if return_dict:
            return logs
        values = [logs["loss"]] + [logs[m.name] for m in self._metric_objs or []]
        return values[0] if len(values) == 1 else values

    def predict_on_batch(self, x: Any) -> LayerOutput:
        """The model's outputs for one batch (``model(x)``).

        Parameters
        ----------
        x : array_like

        Returns
        -------
        numpy.ndarray or list of numpy.ndarray
        """
        return self(x, training=False)

    # -- summary -----------------------------------------------------------------
    def summary(self, line_length: Optional[int] = None,
                positions: Optional[Sequence[float]] = None,
                print_fn: Optional[Callable[[str], Any]] = None, expand_nested: bool = False,
                show_trainable: bool = False,
                layer_range: Optional[Sequence[Union[str, int]]] = None) -> None:
        """Print Keras 3's summary table (plain text, no colours).

        Parameters
        ----------
        line_length : int, optional
            Total width.
        positions : sequence of float, optional
            Column boundaries (fractions of the width, or absolute).
        print_fn : callable, optional
            Receives the whole summary as one string (as in Keras 3); otherwise
            it is written to stdout.
        expand_nested : bool, default False
            Accepted (no nested models in cylstm).
        show_trainable : bool, default False
            Add a "Trainable" column.
        layer_range : sequence of two str or int, optional
            The first and last layer to show.
        """
        text = _summary_text(self, line_length, positions, show_trainable, layer_range)
        if print_fn is not None:
            print_fn(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()

    # -- config and saving ---------------------------------------------------------
    def get_config(self) -> Config:
        """The model's configuration: its name and every layer's serialised config.

        Returns
        -------
        dict
        """
        layer_configs = []
        for layer in self._layers:
            entry = {"module": "cylstm.layers", "class_name": type(layer).__name__,
                     "config": layer.get_config(), "registered_name": None}
            if layer.built and layer._build_input_shape is not None:
                entry["build_config"] = {"input_shape": list(layer._build_input_shape)}
            layer_configs.append(entry)
        config = {"name": self.name, "trainable": self.trainable, "layers": layer_configs}
        if self.built and self._input_shape is not None:
            config["build_input_shape"] = list(self._input_shape)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """A Sequential from ``get_config()`` output (or a Keras 3 Sequential config);
        layers are looked up by class name among cylstm's layers only.

        Parameters
        ----------
        config : dict

        Returns
        -------
        Sequential

        Raises
        ------
        ValueError
            For a malformed config or a layer class cylstm does not have.
        """
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config must be a dict with a 'layers' list; got "
                             f"{type(config).__name__}.")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        build_shape = config.get("build_input_shape")
        for entry in config["layers"]:
            if not isinstance(entry, dict) or "class_name" not in entry:
                raise ValueError(f"Each layer config must be a dict with 'class_name'; got "
                                 f"{entry!r}.")
            if entry["class_name"] == "InputLayer":
                lc = entry.get("config") or {}
                shape = lc.get("batch_shape") or lc.get("batch_input_shape")
                if shape is not None:
                    model._input_shape = tuple(shape)
                    build_shape = build_shape or shape
                continue
            model.add(deserialize_layer(entry), rebuild=False)
        if build_shape is not None:
            model.build(tuple(build_shape))
        else:
            model._maybe_build()
        if not config.get("trainable", True):
            model.trainable = False
        return model

    def to_json(self, **kwargs: Any) -> str:
        """The configuration as a JSON string (``model_from_json`` reads it back).

        Parameters
        ----------
        **kwargs
            Passed to ``json.dumps``.

        Returns
        -------
        str
        """
        return json.dumps({"class_name": "Sequential", "config": self.get_config()}, **kwargs)

    def _get_compile_config(self):
        if not self.compiled:
            return None
        return {
            "optimizer": _optimizers.serialize(self.optimizer),
            "loss": None if self.loss is None else (
                self.loss if isinstance(self.loss, str) else _losses.serialize(self._loss_obj)),
            "metrics": [_serialize_metric(m) for m in self._metric_specs],
        }

    def _compile_from_config(self, config):
        self.compile(optimizer=_optimizers.deserialize(config["optimizer"]),
                     loss=None if config.get("loss") is None
                     else _losses.deserialize(config["loss"]) if isinstance(config["loss"], dict)
                     else config["loss"],
                     metrics=[_metrics.deserialize(m) for m in config.get("metrics") or []])

    def save(self, filepath: Union[str, os.PathLike[str]], overwrite: bool = True,
             **kwargs: Any) -> None:
        """Save architecture, weights, compile settings and optimizer state to one file.

        The format is a zip of a JSON config and ``.npz`` weights (no pickle),
        described in docs/saving.md; ``load_model`` reads it back.

        Parameters
        ----------
        filepath : str or path-like
            Any name, e.g. ``model.cylstm``.
        overwrite : bool, default True
            Replace an existing file.
        **kwargs
            Accepted for Keras's signature.
        """
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name}, built={self.built}>"


def _named_parameters(layer, prefix):
    """(key, array, grad) for a layer's trainable weights; wrappers without their own
    ``named_parameters`` (Bidirectional) contribute their inner layers'."""
    params = [(f"{prefix}/{n}", a, g) for n, a, g in layer.named_parameters()]
    if params:
        return params
    out = []
    for attr in ("forward_layer", "backward_layer"):
        inner = getattr(layer, attr, None)
        if isinstance(inner, Layer) and layer.trainable:
            out.extend(_named_parameters(inner, f"{prefix}/{attr}"))
    return out


def _serialize_metric(metric):
    if isinstance(metric, str):
        return metric
    if not isinstance(metric, _metrics.Metric):
        for name, cls in _metrics._BY_FUNCTION.items():
            if metric is name:
                return cls().name
        raise ValueError(f"Cannot save metric {metric!r}: only cylstm metric names and "
                         "classes can be saved.")
    return _metrics.serialize(metric)


def layer_registry() -> Dict[str, Type[Layer]]:
    """Class name -> class, for every layer class ``cylstm.layers`` exports.

    Returns
    -------
    dict of str to type
    """
    out = {}
    for name in getattr(_layers, "__all__", []):
        obj = getattr(_layers, name, None)
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer:
            out[name] = obj
    return out


def deserialize_layer(entry: Mapping[str, Any]) -> Layer:
    """A layer from ``{"class_name", "config"}``, only from cylstm's own classes.

    Parameters
    ----------
    entry : dict
        A serialised layer, as ``Sequential.get_config`` writes them.

    Returns
    -------
    Layer

    Raises
    ------
    ValueError
        For an unknown class or a config the class rejects.
    """
    registry = layer_registry()
    class_name = entry.get("class_name")
    cls = registry.get(class_name)
    if cls is None:
        raise ValueError(f"Unknown layer class {class_name!r}: cylstm can rebuild only its own "
                         f"layers ({', '.join(sorted(registry))}).")
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"The config of layer class {class_name!r} must be a dict; got "
                         f"{type(config).__name__}.")
    try:
        return cls.from_config(dict(config))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"Could not rebuild a {class_name} layer from its config: {e}") \
            from None


def model_from_config(config: Mapping[str, Any]) -> Sequential:
    """A model from ``{"class_name": "Sequential", "config": ...}`` (or the inner config).

    Parameters
    ----------
    config : dict

    Returns
    -------
    Sequential
    """
    if isinstance(config, dict) and "class_name" in config and "config" in config:
        if config["class_name"] != "Sequential":
            raise ValueError(f"Only Sequential models are supported; got "
                             f"{config['class_name']!r}.")
        config = config["config"]
    return Sequential.from_config(config)


def model_from_json(json_string: str) -> Sequential:
    """A model from the JSON string ``Sequential.to_json`` writes.

    Parameters
    ----------
    json_string : str

    Returns
    -------
    Sequential
    """
    return model_from_config(json.loads(json_string))


def load_model(filepath: Union[str, os.PathLike[str]],
               custom_objects: Optional[Mapping[str, Any]] = None, compile: bool = True,
               safe_mode: bool = True) -> Sequential:
    """Load a model saved with ``model.save(filepath)`` (see docs/saving.md).

    Nothing in the file is executed: the config is JSON, layers come only from
    cylstm's classes, the weights are read with ``allow_pickle=False``.

    Parameters
    ----------
    filepath : str or path-like
        The saved file.
    custom_objects : dict, optional
        Not supported: anything non-empty raises ``ValueError``.
    compile : bool, default True
        Restore the optimizer, loss and metrics (and the optimizer's state).
    safe_mode : bool, default True
        Accepted; loading is always safe.

    Returns
    -------
    Sequential

    Raises
    ------
    ValueError
        For a corrupt, truncated or foreign file (naming the path).
    """
    from .saving import load_model as _load
    if custom_objects:
        raise ValueError("`custom_objects` is not supported: cylstm loads only its own layer, "
                         "loss, metric and optimizer classes.")
    return _load(filepath, compile=compile)


def save_model(model: Sequential, filepath: Union[str, os.PathLike[str]],
               overwrite: bool = True, **kwargs: Any) -> None:
    """Save ``model`` to ``filepath`` (the same as ``model.save(filepath)``).

    Parameters
    ----------
    model : Sequential
    filepath : str or path-like
    overwrite : bool, default True
    **kwargs
        Accepted for Keras's signature.
    """
    from .saving import save_model as _save
    _save(model, filepath, overwrite=overwrite, **kwargs)


# -- summary rendering (rich's table layout, as Keras 3 prints it) -------------------

_RE_WORD = re.compile(r"\s*\S+\s*")


def _words(text):
    """rich's words: (start, end, word with its trailing whitespace)."""
    match = _RE_WORD.match(text, 0)
    while match is not None:
        start, end = match.span()
        yield start, end, match.group(0)
        match = _RE_WORD.match(text, end)


def _divide_line(text, width):
    """rich's ``divide_line`` without folding: offsets at which to break ``text``."""
    breaks = []
    offset = 0
    for start, _end, word in _words(text):
        word_length = len(word.rstrip())
        remaining = width - offset
        if remaining >= word_length:
            offset += len(word)
        elif word_length > width:
            if start:
                breaks.append(start)
            offset = len(word)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _truncate(line, width):
    return line if len(line) <= width else line[:max(width - 1, 0)] + "…"


def _wrap_cell(text, width, justify):
    """The lines of one table cell, wrapped and justified as rich does."""
    offsets = _divide_line(text, width)
    bounds = [0] + offsets + [len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])] or [""]
    lines = []
    for piece in pieces:
        if len(piece) > width:   # rstrip_end: drop trailing whitespace beyond the width
            stripped = piece.rstrip()
            piece = piece[:max(width, len(stripped))]
        if justify == "left":
            piece = _truncate(piece, width).ljust(width)
        elif justify == "right":
            piece = _truncate(piece.rstrip(), width).rjust(width)
        else:
            piece = _truncate(piece.rstrip(), width)
            left = (width - len(piece)) // 2
            piece = (" " * left + piece).ljust(width)
        lines.append(piece)
    return lines


def _ratio_reduce(total, ratios, maximums, values):
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining = total
    result = []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            distributed = min(maximum, round(ratio * remaining / total_ratio))
            result.append(value - distributed)
            remaining -= distributed
            total_ratio -= ratio
        else:
            result.append(value)
    return result


def _render_table(header, rows, column_widths, justify, line_length):
    n = len(header)
    widths = [w + 2 for w in column_widths]               # + padding (1, 1)
    max_width = line_length - (n + 1)                      # minus the borders
    if sum(widths) > max_width:
        widths = _ratio_reduce(sum(widths) - max_width, [1] * n, widths, widths)
        widths = [max(w, 0) for w in widths]

    def render_row(cells, vertical):
        columns = [[" " + line + " " for line in _wrap_cell(c, max(w - 2, 0), j)]
                   for c, w, j in zip(cells, widths, justify)]
        height = max(len(c) for c in columns)
        for c, w in zip(columns, widths):
            c.extend([" " * w] * (height - len(c)))
        return [vertical + vertical.join(c[i] for c in columns) + vertical
                for i in range(height)]

    def rule(left, fill, mid, right):
        return left + mid.join(fill * w for w in widths) + right

    lines = [rule("┏", "━", "┳", "┓")]
    lines += render_row(header, "┃")
    lines.append(rule("┡", "━", "╇", "┩"))
    for i, row in enumerate(rows):
        if i:
            lines.append(rule("├", "─", "┼", "┤"))
        lines += render_row(row, "│")
    lines.append(rule("└", "─", "┴", "┘"))
    return lines


def _readable_memory_size(size):
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"


def _memory(weights):
    unique = {id(w): w for w in weights}.values()
    return float(sum(w.size * w.dtype.itemsize for w in unique))


def _layer_shape_text(layer):
    spec = layer._output_spec
    if spec is None:
        if layer._build_input_shape is None:
            return "?"
        try:
            spec = layer.output
        except AttributeError:
            return "?"
    if isinstance(spec, list):
        if len(spec) == 1:
            return _format_shape(spec[0].shape)
        return "[" + ", ".join(_format_shape(s.shape) for s in spec) + "]"
    return _format_shape(spec.shape)


def _layer_index_bounds(layers, layer_range):
    if layer_range is None:
        return 0, len(layers)
    if len(layer_range) != 2 or not all(isinstance(s, str) for s in layer_range):
        raise ValueError("layer_range must be a list or tuple of two strings. Received: "
                         f"layer_range = {layer_range}")
    lower = [i for i, l in enumerate(layers) if re.match(layer_range[0], l.name)]
    upper = [i for i, l in enumerate(layers) if re.match(layer_range[1], l.name)]
    if not lower or not upper:
        raise ValueError("Passed layer_names do not match the layer names in the model. "
                         f"Received: {layer_range}")
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _summary_text(model, line_length=None, positions=None, show_trainable=False,
                  layer_range=None):
    default_line_length = 88
    positions = list(positions or [0.45, 0.80, 1.0])
    header = ["Layer (type)", "Output Shape", "Param #"]
    justify = ["left", "left", "right"]
    if show_trainable:
        default_line_length += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        justify.append("center")
    default_line_length = min(default_line_length, shutil.get_terminal_size().columns - 4)
    line_length = line_length or default_line_length
    column_widths = []
    current = 0
    for pos in positions:
        width = int(pos * line_length) - current
        if width < 4:
            raise ValueError("Insufficient console width to print summary.")
        column_widths.append(width)
        current += width

    rows = []
    start, stop = _layer_index_bounds(model._layers, layer_range)
    for layer in model._layers[start:stop]:
        name = f"{layer.name} ({type(layer).__name__})"
        if not layer.built:
            params = "0 (unbuilt)"
        else:
            params = f"{layer.count_params():,}"
        row = [name, _layer_shape_text(layer), params]
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)

    trainable = model.trainable_weights
    non_trainable = model.non_trainable_weights
    t_count = int(sum(w.size for w in trainable))
    nt_count = int(sum(w.size for w in non_trainable))
    t_mem, nt_mem = _memory(trainable), _memory(non_trainable)
    opt = model.optimizer
    opt_vars = opt.variables if (model.compiled and opt is not None and opt.built) else []
    o_count = int(sum(np.size(v) for v in opt_vars))
    o_mem = _memory([np.asarray(v) for v in opt_vars])
    lines = [f'Model: "{model.name}"']
    lines += _render_table(header, rows, column_widths, justify, line_length)
    lines.append(f" Total params: {t_count + nt_count + o_count:,} "
                 f"({_readable_memory_size(t_mem + nt_mem + o_mem)})")
    lines.append(f" Trainable params: {t_count:,} ({_readable_memory_size(t_mem)})")
    lines.append(f" Non-trainable params: {nt_count:,} ({_readable_memory_size(nt_mem)})")
    if opt_vars:
        lines.append(f" Optimizer params: {o_count:,} ({_readable_memory_size(o_mem)})")
    return "\n".join(lines) + "\n"

