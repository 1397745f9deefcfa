"""Sphinx configuration of cylstm's API reference.

Build (from the repository root, after an in-place build of the extension):

    python -m sphinx -W -b html docs/api docs/api/_build

``-W`` turns every warning into an error; CI runs this command (.ci/run).
"""
import os
import sys

# Document the checkout (with its in-place built extension), not an installed copy.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import cylstm  # noqa: E402

project = "cylstm"
author = "cylstm developers"
release = cylstm.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
]

# numpydoc: numpy-style docstrings; class members are listed by autodoc's
# :members: option on each page, so numpydoc does not add its own tables.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    "member-order": "bysource",
}
# Signatures show the annotations as written (the aliases of cylstm._typing).
autodoc_typehints = "signature"
autodoc_type_aliases = {
    "Array": "cylstm._typing.Array",
    "ArrayLike": "cylstm._typing.ArrayLike",
    "DTypeLike": "cylstm._typing.DTypeLike",
    "LayerOutput": "cylstm._typing.LayerOutput",
    "StatesLike": "cylstm._typing.StatesLike",
    "ActivationLike": "cylstm._typing.ActivationLike",
    "IdentifierLike": "cylstm._typing.IdentifierLike",
    "ShapeLike": "cylstm._typing.ShapeLike",
    "Shape": "cylstm._typing.Shape",
    "Config": "cylstm._typing.Config",
}

templates_path = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
nitpicky = False
