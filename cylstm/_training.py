"""The training loop of a model: compile, fit, evaluate, predict and the
``*_on_batch`` steps, as Keras 3's ``Trainer``.

``Trainer`` is a mixin: the model class supplies ``_layers``, ``_forward``,
``_forward_train``, ``_ensure_built``, ``_parameters`` and ``name``.
"""
from __future__ import annotations

from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Union)

import math
import numbers

import numpy as np

from . import callbacks as _callbacks
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from .utils import _training_rng
from ._typing import ArrayLike, Config, LayerOutput

if TYPE_CHECKING:
    from .callbacks import Callback, History
    from .losses import Loss
    from .metrics import Metric
    from .optimizers import Optimizer

    _MetricLike = Union[str, Metric, Callable[..., Any]]


def _verbose_level(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"Received an invalid value for argument `verbose`, expected 'auto', 0, "
                     f"1 or 2, got {verbose!r}.")


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


class Trainer:
    """compile/fit/evaluate/predict for a model made of ``_layers`` (see module docstring)."""

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

    def get_compile_config(self) -> Optional[Config]:
        """The optimizer, loss and metrics given to ``compile`` in Keras 3's
        serialised form (None before ``compile``); ``compile_from_config`` reads it.

        Returns
        -------
        dict or None
        """
        if not self.compiled:
            return None
        return {
            "optimizer": _optimizers.serialize(self.optimizer),
            "loss": None if self.loss is None else (
                self.loss if isinstance(self.loss, str) else _losses.serialize(self._loss_obj)),
            "metrics": [_serialize_metric(m) for m in self._metric_specs],
        }

    def compile_from_config(self, config: Mapping[str, Any]) -> None:
        """``compile`` with what ``get_compile_config`` returned.

        Parameters
        ----------
        config : dict
        """
        self.compile(optimizer=_optimizers.deserialize(config["optimizer"]),
                     loss=None if config.get("loss") is None
                     else _losses.deserialize(config["loss"]) if isinstance(config["loss"], dict)
                     else config["loss"],
                     metrics=[_metrics.deserialize(m) for m in config.get("metrics") or []])

    # The names saving used before these became public.
    _get_compile_config = get_compile_config
    _compile_from_config = compile_from_config
