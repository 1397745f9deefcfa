"""Every public class, function, method and property of the API reference's
modules has a docstring (``help()`` and docs/api show cylstm's own words).

Methods that override a documented base method inherit its docstring, as
``inspect.getdoc`` and Sphinx do. Exempt, on purpose: the read-only
properties through which ``cylstm.layers.LSTM`` shows its cell's arguments
(``units``, ``activation``, ...), documented once as the constructor's
parameters and in the class docstring.
"""
import importlib
import inspect

import pytest

MODULES = ["cylstm.layers", "cylstm.nn", "cylstm.models", "cylstm.optimizers",
           "cylstm.losses", "cylstm.metrics", "cylstm.callbacks", "cylstm.initializers",
           "cylstm.regularizers", "cylstm.constraints", "cylstm.activations",
           "cylstm.preprocessing.sequence", "cylstm.interop", "cylstm.utils"]
TOP_LEVEL = ["set_num_threads", "get_num_threads", "threads", "blas_info", "from_keras",
             "from_onnx"]
LSTM_CELL_PROPERTIES = {
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias",
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint", "dropout", "recurrent_dropout", "seed"}


def _property_doc(cls, name):
    for klass in cls.__mro__:
        prop = vars(klass).get(name)
        if isinstance(prop, property) and (prop.__doc__ or "").strip():
            return prop.__doc__
    return None


def _public_objects():
    import cylstm
    seen = set()
    for modname in MODULES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", None) or []:
            obj = getattr(module, name)
            if inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{modname}.{name}", obj
    for name in TOP_LEVEL:
        yield f"cylstm.{name}", getattr(cylstm, name)


def _undocumented():
    missing = []
    for qual, obj in _public_objects():
        # A class needs its own docstring (getdoc would return its base's).
        doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
        if not (doc or "").strip():
            missing.append(qual)
        if not inspect.isclass(obj):
            continue
        for name, value in vars(obj).items():
            if name.startswith("_") and name != "__call__":
                continue
            if isinstance(value, property):
                if obj.__name__ == "LSTM" and name in LSTM_CELL_PROPERTIES:
                    continue
                if not _property_doc(obj, name):
                    missing.append(f"{qual}.{name}")
            elif inspect.isfunction(inspect.unwrap(getattr(value, "__func__", value))):
                if not (inspect.getdoc(getattr(obj, name)) or "").strip():
                    missing.append(f"{qual}.{name}")
    return missing


def test_every_public_object_has_a_docstring():
    assert _undocumented() == []


@pytest.mark.parametrize("cls", ["cylstm.layers.LSTM", "cylstm.nn.LSTM",
                                 "cylstm.models.Sequential"])
def test_main_classes_document_their_parameters(cls):
    module, name = cls.rsplit(".", 1)
    obj = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(obj)
    assert "Parameters\n----------" in doc
    for param in inspect.signature(obj).parameters:
        if param not in ("kwargs",):
            assert param in doc, f"{cls}: parameter {param!r} is not documented"
