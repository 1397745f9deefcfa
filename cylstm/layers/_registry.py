"""The layers family of the serialization module: cylstm's own layer classes by
class name, and a layer's serialised form in a model config.

Imported by ``cylstm.models`` (not by ``cylstm.layers``, which it reads), so
there is no import cycle.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Type

from .. import layers as _layers
from .._serialization import Registry
from .._typing import Config
from .base import Layer

__all__ = ["layer_registry", "serialize_layer", "deserialize_layer"]

MODULE = "cylstm.layers"


def _classes():
    out = {}
    for name in getattr(_layers, "__all__", []):
        obj = getattr(_layers, name, None)
        if isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer:
            out[name] = obj
    return out


def _unknown_class(class_name):
    return ValueError(f"Unknown layer class {class_name!r}: cylstm can rebuild only its own "
                      f"layers ({', '.join(sorted(_REGISTRY.classes))}).")


_REGISTRY = Registry("layer", MODULE, _classes(), base=Layer, unknown=_unknown_class)


def layer_registry() -> Dict[str, Type[Layer]]:
    """Class name -> class, for every layer class ``cylstm.layers`` exports.

    Returns
    -------
    dict of str to type
    """
    return dict(_REGISTRY.classes)


def serialize_layer(layer: Layer) -> Config:
    """A layer's entry in a model config: Keras 3's serialised form, plus its
    ``build_config`` once it is built.

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    dict
    """
    entry = _REGISTRY.serialize(layer)
    if layer.built and layer._build_input_shape is not None:
        entry["build_config"] = {"input_shape": list(layer._build_input_shape)}
    return entry


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
    class_name = entry.get("class_name")
    cls = _REGISTRY.class_named(class_name)
    if cls is None:
        raise _unknown_class(class_name)
    config = entry.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"The config of layer class {class_name!r} must be a dict; got "
                         f"{type(config).__name__}.")
    try:
        return cls.from_config(dict(config))
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"Could not rebuild a {class_name} layer from its config: {e}") \
            from None
