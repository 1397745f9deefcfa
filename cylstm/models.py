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

Where the pieces live (as Keras splits them): this module holds the model
(layers, building, weights, config, save); the training loop is the
``Trainer`` mixin in ``cylstm/_training.py``; the summary table is rendered
by ``cylstm/_summary.py``; layers are (de)serialised by
``cylstm/layers/_registry.py`` over the generic registry of
``cylstm/_serialization.py``; files are written and read by ``cylstm/saving.py``.
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import json
import sys

import numpy as np

from .layers.base import Layer, SymbolicTensor, unique_name
# layer_registry and deserialize_layer stay importable from here, as before the split.
from .layers._registry import deserialize_layer, layer_registry, serialize_layer  # noqa: F401
from ._serialization import MODELS
from ._summary import summary_text
from ._training import Trainer, _as_batchable
from ._typing import Array, ArrayLike, Config, LayerOutput, Shape, ShapeLike

if TYPE_CHECKING:
    import os

    from typing_extensions import Self

__all__ = ["Sequential", "load_model", "save_model", "model_from_json", "model_from_config"]


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


class Sequential(Trainer):
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
        for i, layer in enumerate(self._layers):
            # The first layer's inputs are data: nothing uses their gradient.
            skip = {"input_gradient": False} if i == 0 and layer._input_gradient_optional else {}
            y, backprop = layer.forward_train(x, mask=mask, training=True, **skip)
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

    def named_parameters(self) -> List[Tuple[str, Array, Array]]:
        """``(key, array, grad)`` of every trainable weight, keys ``'layer/weight'``
        (the keys the optimizer's slots and saved files use).

        Returns
        -------
        list of tuple
        """
        out = []
        for layer in self._layers:
            out.extend(_named_parameters(layer, layer.name))
        return out

    _parameters = named_parameters   # the training loop's name for it

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
        text = summary_text(self, line_length, positions, show_trainable, layer_range)
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
        layer_configs = [serialize_layer(layer) for layer in self._layers]
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
    """(key, array, grad) for a layer's trainable weights, its tracked sub-layers'
    included (``Layer.named_parameters``)."""
    return [(f"{prefix}/{n}", a, g) for n, a, g in layer.named_parameters()]


MODELS.register(Sequential)


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
    cylstm's classes, the weights are read with ``allow_pickle=False``. A file
    written by a quantized object's ``save`` (its config declares the format
    ``"cylstm.quantized"``) is read by :func:`cylstm.load_quantized` and gives
    that quantized object back (``compile`` does not apply; see
    docs/quantization.md).

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
    from .quantization import load_quantized
    return _load(filepath, compile=compile, quantized_reader=load_quantized)


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
