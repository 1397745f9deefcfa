"""One registry type and Keras 3's get/serialize/deserialize over it, shared by
every family of named objects (activations, constraints, initializers,
regularizers, losses, metrics, optimizers, layers).

A family module builds one :class:`Registry` from its tables and keeps only
what is its own (Keras's aliases, the error texts its users see, a special
case such as ``"accuracy"``). This module imports nothing else from cylstm,
so every family can depend on it without an import cycle.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, Optional

from ._typing import Config

__all__ = ["Registry", "MODELS"]

_Message = Callable[[Any], Exception]


class Registry:
    """The names and classes of one family, and how its objects are looked up.

    Parameters
    ----------
    kind : str
        The family's singular noun, used in error messages ("loss", "metric").
    module : str
        The ``"module"`` entry of the serialised form (``"keras.losses"``).
    names : dict
        Identifier string -> factory (a class, or any zero-argument callable).
        With ``instantiate=False`` the values are returned as they are.
    classes : dict, optional
        ``"class_name"`` -> class, for ``deserialize`` (default: ``names``).
    base : type, optional
        Instances are returned as they are; subclasses are instantiated.
        Without a base, every class is instantiated.
    functions : dict, optional
        A functional form -> the class it stands for (``losses.mse`` -> MSE).
    optional : bool, default False
        None stays None in ``get`` and ``serialize``.
    keep_names : bool, default False
        A string stays a string in ``serialize`` (losses and metrics given by name).
    only_registered : bool, default False
        ``serialize`` refuses classes that are not in ``classes``.
    instantiate : bool, default True
        Call the factory found under a name.
    normalize : callable, optional
        Applied to a string before it is looked up (``str.lower``).
    callable_fallback : callable, optional
        What ``get`` makes of any other callable (identity: return it as is);
        without one, such a callable is refused.
    unknown : callable
        ``unknown(identifier) -> Exception`` for anything ``get`` cannot interpret.
    unknown_name : callable, optional
        The same for an unknown name (default: ``unknown``).
    strict_config : bool, default False
        ``deserialize`` refuses a non-dict or a dict without ``class_name``
        with ``"Could not interpret <kind> config"`` and an unknown class with
        ``"Unknown <kind> class"``; otherwise both are ``unknown(config)``.
    """

    def __init__(self, kind: str, module: str, names: Mapping[str, Any], *,
                 unknown: _Message, classes: Optional[Mapping[str, Any]] = None,
                 base: Optional[type] = None, functions: Optional[Mapping[Any, Any]] = None,
                 optional: bool = False, keep_names: bool = False,
                 only_registered: bool = False, instantiate: bool = True,
                 normalize: Optional[Callable[[str], str]] = None,
                 callable_fallback: Optional[Callable[[Any], Any]] = None,
                 unknown_name: Optional[_Message] = None, strict_config: bool = False) -> None:
        self.kind = kind
        self.module = module
        self.names: Dict[str, Any] = dict(names)
        self.classes: Dict[str, Any] = dict(names if classes is None else classes)
        self.base = base
        self.functions: Dict[Any, Any] = dict(functions or {})
        self.optional = optional
        self.keep_names = keep_names
        self.only_registered = only_registered
        self.instantiate = instantiate
        self.normalize = normalize
        self.callable_fallback = callable_fallback
        self.unknown = unknown
        self.unknown_name = unknown_name or unknown
        self.strict_config = strict_config

    # -- lookups ---------------------------------------------------------------------
    def by_name(self, name: str) -> Any:
        """The factory (or object) registered under ``name``; ``unknown_name`` if none."""
        key = self.normalize(name) if self.normalize is not None else name
        if key not in self.names:
            raise self.unknown_name(name)
        found = self.names[key]
        return found() if self.instantiate else found

    def class_named(self, class_name: Any) -> Any:
        """The class serialised as ``class_name``, or None."""
        cls = self.classes.get(class_name) if isinstance(class_name, str) else None
        if cls is None and self.normalize is not None and class_name is not None:
            cls = self.names.get(self.normalize(str(class_name)))
        return cls

    # -- Keras's trio ------------------------------------------------------------------
    def serialize(self, obj: Any) -> Any:
        """Keras 3's dict form ``{"module", "class_name", "config", "registered_name"}``.

        Raises
        ------
        ValueError
            For an object without ``get_config`` (or, with ``only_registered``,
            of a class the family does not have).
        """
        if obj is None and self.optional:
            return None
        if isinstance(obj, str) and self.keep_names:
            return obj
        if self.only_registered and type(obj).__name__ not in self.classes:
            raise ValueError(f"Cannot serialize {self.kind} {obj!r}: only cylstm's {self.kind} "
                             "classes and names can be saved.")
        if not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot serialize {obj!r}: it has no get_config().")
        return {"module": self.module, "class_name": type(obj).__name__,
                "config": obj.get_config(), "registered_name": None}

    def deserialize(self, config: Mapping[str, Any]) -> Any:
        """An object from ``{"class_name", "config"}`` (``module`` is not needed).

        Raises
        ------
        ValueError
            For a malformed config or an unknown class.
        """
        if self.strict_config:
            if not isinstance(config, dict) or "class_name" not in config:
                raise ValueError(f"Could not interpret {self.kind} config: {config!r}.")
            cls = self.class_named(config["class_name"])
            if cls is None:
                raise ValueError(f"Unknown {self.kind} class {config['class_name']!r}; cylstm "
                                 f"has {sorted(self.classes)}.")
        else:
            cls = self.class_named(config.get("class_name"))
            if cls is None:
                raise self.unknown(config)
        return cls.from_config(dict(config.get("config") or {}))

    def get(self, identifier: Any) -> Any:
        """An object from None, a name, a config dict, an instance, a class or a callable.

        Raises
        ------
        Exception
            What ``unknown``/``unknown_name`` make, for anything else.
        """
        if identifier is None and self.optional:
            return None
        if self.base is not None and isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if isinstance(identifier, str):
            return self.by_name(identifier)
        if inspect.isclass(identifier) and (self.base is None
                                            or issubclass(identifier, self.base)):
            return identifier()
        if callable(identifier):
            cls = self._function_class(identifier)
            if cls is not None:
                return cls()
            if self.callable_fallback is not None:
                return self.callable_fallback(identifier)
        raise self.unknown(identifier)

    def register(self, cls: type, name: Optional[str] = None) -> type:
        """Add ``cls`` under ``name`` (default: its class name); returns ``cls``,
        so that it can decorate a class.

        Parameters
        ----------
        cls : type
        name : str, optional

        Returns
        -------
        type
        """
        key = name or cls.__name__
        self.names[key] = cls
        self.classes[key] = cls
        return cls

    def _function_class(self, fn):
        try:
            return self.functions.get(fn)
        except TypeError:   # an unhashable callable is no registered function
            return None

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {len(self.names)} names>"


# Model classes register themselves here when their module is imported
# (cylstm.models); saving rebuilds models through it without importing them.
MODELS = Registry(
    "model", "cylstm.models", {}, strict_config=True,
    unknown=lambda identifier: ValueError(f"Unknown model {identifier!r}."))


def keras_entry(module: str, obj: Any) -> Config:
    """The serialised form of ``obj`` under ``module`` (a layer in a model config)."""
    return {"module": module, "class_name": type(obj).__name__, "config": obj.get_config(),
            "registered_name": None}
