"""Training callbacks with Keras 3's hooks: ``Callback``, ``History``,
``EarlyStopping``, ``ProgbarLogger`` and ``LambdaCallback``.

``Sequential.fit`` calls, in Keras's order: ``on_train_begin``, then per epoch
``on_epoch_begin``, ``on_train_batch_begin``/``on_train_batch_end`` per batch,
``on_epoch_end(epoch, logs)`` (logs hold the epoch's ``loss``, metrics and
``val_*`` values), and ``on_train_end``. Setting ``model.stop_training = True``
in a callback ends training after the current epoch.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Union

import warnings

import numpy as np

from .utils import Progbar

__all__ = ["Callback", "CallbackList", "History", "EarlyStopping", "ProgbarLogger",
           "LambdaCallback"]


class Callback:
    """Base class of the callbacks: every hook does nothing.

    Subclass it and override the hooks you need; ``fit``, ``evaluate`` and
    ``predict`` call them with logs such as ``{"loss": 0.3, "accuracy": 0.9}``.
    ``self.model`` (the model being trained) and ``self.params``
    (``{"verbose", "epochs", "steps"}``) are set before the first hook.
    """

    def __init__(self) -> None:
        self.params = None
        self._model = None

    def set_params(self, params: Optional[Dict[str, Any]]) -> None:
        """Set ``self.params``.

        Parameters
        ----------
        params : dict or None
            ``{"verbose", "epochs", "steps"}`` as ``fit`` passes them.
        """
        self.params = params

    def set_model(self, model: Any) -> None:
        """Set ``self.model``.

        Parameters
        ----------
        model : Sequential
            The model the callback is attached to.
        """
        self._model = model

    @property
    def model(self) -> Any:
        """The model the callback is attached to (None before ``set_model``)."""
        return self._model

    def on_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of a training batch (legacy alias of ``on_train_batch_begin``).

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The logs so far (may be empty).
        """

    def on_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of a training batch (legacy alias of ``on_train_batch_end``).

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The batch's logs.
        """

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of an epoch of ``fit``.

        Parameters
        ----------
        epoch : int
            The epoch's index (from 0).
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of an epoch of ``fit``.

        Parameters
        ----------
        epoch : int
            The epoch's index (from 0).
        logs : dict, optional
            The epoch's logs: loss, metrics, and the ``val_`` entries when validating.
        """
        pass

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of a training batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The logs so far (may be empty).
        """
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of a training batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The running loss and metrics of the epoch.
        """
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of an evaluation batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_test_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of an evaluation batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The running loss and metrics.
        """
        pass

    def on_predict_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of a prediction batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_predict_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of a prediction batch.

        Parameters
        ----------
        batch : int
            The batch's index within the epoch (or the evaluation/prediction).
        logs : dict, optional
            ``{"outputs": the batch's outputs}``.
        """
        pass

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of ``fit``.

        Parameters
        ----------
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of ``fit``.

        Parameters
        ----------
        logs : dict, optional
            The last epoch's logs.
        """
        pass

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of ``evaluate`` (and of each validation pass).

        Parameters
        ----------
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_test_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of ``evaluate`` (and of each validation pass).

        Parameters
        ----------
        logs : dict, optional
            The evaluation's logs.
        """
        pass

    def on_predict_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the start of ``predict``.

        Parameters
        ----------
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass

    def on_predict_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        """Called at the end of ``predict``.

        Parameters
        ----------
        logs : dict, optional
            The logs so far (may be empty).
        """
        pass


class CallbackList(Callback):
    """Dispatches every hook to a list of callbacks. As Keras, a ``ProgbarLogger``
    is put first (when verbose) and a ``History`` last unless given.

    Parameters
    ----------
    callbacks : Callback or list of Callback, optional
        The callbacks to call.
    add_history : bool, default False
        Append a ``History`` if none is given.
    add_progbar : bool, default False
        Put a ``ProgbarLogger`` first if none is given.
    model : Sequential, optional
        Passed to every callback's ``set_model``.
    **params
        Passed to every callback's ``set_params`` (``verbose``, ``epochs``, ``steps``).

    Raises
    ------
    TypeError
        For anything that is not a list of callbacks.
    """

    def __init__(self, callbacks: Union[Callback, Sequence[Callback], None] = None,
                 add_history: bool = False, add_progbar: bool = False, model: Any = None,
                 **params: Any) -> None:
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback) and not isinstance(callbacks, CallbackList):
            callbacks = [callbacks]
        try:
            self.callbacks = list(callbacks)
        except TypeError:
            raise TypeError("`callbacks` must be a list of cylstm.callbacks.Callback instances; "
                            f"got {type(callbacks).__name__}.") from None
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Callbacks must be cylstm.callbacks.Callback instances; got "
                                f"{type(cb).__name__}.")
        self.history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if progbar is None and add_progbar:
            self.callbacks.insert(0, ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def set_params(self, params: Optional[Dict[str, Any]]) -> None:
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_predict_batch_end", batch, logs)

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_train_end", logs)

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_test_begin", logs)

    def on_test_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._call("on_predict_end", logs)


class History(Callback):
    """Records the epoch logs: ``history.history['loss']`` etc., ``history.epoch``.

    ``fit`` returns it (and keeps it as ``model.history``); ``history.params``
    is ``{'verbose', 'epochs', 'steps'}`` as in Keras.

    Attributes
    ----------
    history : dict of str to list
        One value per epoch for every log key.
    epoch : list of int
        The epochs recorded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        if self.model is not None:
            self.model.history = self

    def __repr__(self) -> str:
        return f"<cylstm.callbacks.History epochs={len(self.epoch)} keys={list(self.history)}>"


class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving (Keras 3 rules).

    An epoch improves when ``current - min_delta`` beats the best so far
    (``+`` for 'min'); training stops once ``patience`` epochs in a row did
    not improve (never on the first epoch).

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs.
    min_delta : float, default 0
        The smallest change that counts as an improvement.
    patience : int, default 0
        Epochs without improvement before stopping.
    verbose : int, default 0
        1 prints when it stops (and restores weights).
    mode : {"auto", "min", "max"}, default "auto"
        'auto' minimises losses and errors and maximises accuracies.
    baseline : float, optional
        Improvements only reset the wait if they also beat it.
    restore_best_weights : bool, default False
        Put back the weights of the best epoch at the end.
    start_from_epoch : int, default 0
        Epochs to skip before monitoring.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto",
                 baseline: Optional[float] = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"EarlyStopping mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.monitor_op = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            direction = None
            if name == "loss":
                direction = "down"
            model = self.model
            for metric in getattr(model, "_compiled_metric_objects", lambda: [])():
                if metric.name == name:
                    direction = getattr(metric, "_direction", "down")
            if direction is None:
                if "acc" in name:
                    direction = "up"
                elif any(s in name for s in ("loss", "error", "mae", "mse", "crossentropy")):
                    direction = "down"
            if direction is None:
                raise ValueError(
                    f"EarlyStopping callback received monitor={self.monitor}, but cylstm "
                    "isn't able to automatically determine whether that metric should be "
                    "maximized or minimized. Pass `mode='max'` in order to monitor based on "
                    "the highest metric value, or pass `mode='min'` in order to use the "
                    "lowest value.")
            self.monitor_op = np.greater if direction == "up" else np.less
        self._signed_delta = -self.min_delta if self.monitor_op is np.less else self.min_delta

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return bool(self.monitor_op(value - self._signed_delta, reference))

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.", flush=True)
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs: Optional[Dict[str, Any]]) -> Optional[float]:
        """The monitored value in ``logs`` (None, with a warning, when it is absent).

        Parameters
        ----------
        logs : dict, optional

        Returns
        -------
        float or None
        """
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}", stacklevel=2)
        return value


class ProgbarLogger(Callback):
    """Prints Keras's progress bar (verbose=1) or one line per epoch (verbose=2)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params: Optional[Dict[str, Any]]) -> None:
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._called_in_fit = True

    def on_test_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._called_in_fit:
            self._reset()
            self._maybe_init()

    def on_predict_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._reset()
        self._maybe_init()

    def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._reset()
        self._maybe_init()
        if self.verbose and self.epochs > 1:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._update(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._update(batch, None)

    def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
        self._finalize(logs)

    def on_test_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
        self._finalize(logs)

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init(self):
        if self.progbar is None:
            self.progbar = Progbar(target=self.target, verbose=self.verbose, unit_name="step",
                                   stateless_metrics=set())

    def _update(self, batch, logs=None):
        self._maybe_init()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs):
        self._maybe_init()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable, optional
        ``f(epoch, logs)``.
    on_train_begin, on_train_end : callable, optional
        ``f(logs)``.
    on_train_batch_begin, on_train_batch_end : callable, optional
        ``f(batch, logs)``.
    **kwargs
        Any other hook by name (``on_test_end=...``).

    Raises
    ------
    ValueError
        For a name that is not a hook.
    """

    def __init__(self, on_epoch_begin: Optional[Callable[..., Any]] = None,
                 on_epoch_end: Optional[Callable[..., Any]] = None,
                 on_train_begin: Optional[Callable[..., Any]] = None,
                 on_train_end: Optional[Callable[..., Any]] = None,
                 on_train_batch_begin: Optional[Callable[..., Any]] = None,
                 on_train_batch_end: Optional[Callable[..., Any]] = None,
                 **kwargs: Optional[Callable[..., Any]]) -> None:
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise ValueError(f"LambdaCallback: unknown hook {name!r}.")
            setattr(self, name, fn)
