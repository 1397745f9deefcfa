"""Type aliases of cylstm's public API, used by its annotations.

``Array`` is what cylstm returns (a NumPy array of the layer's dtype);
``ArrayLike`` what it accepts (anything ``numpy.asarray`` takes).
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy.typing as npt

#: What cylstm returns: a NumPy array (of the layer's dtype for layer outputs).
Array = npt.NDArray[Any]
#: What cylstm accepts as data: anything ``numpy.asarray`` takes.
ArrayLike = npt.ArrayLike
#: A dtype as NumPy takes it (``"float32"``, ``numpy.float64``, ...).
DTypeLike = npt.DTypeLike

#: A shape with unknown dimensions as None, as Keras writes input shapes.
Shape = Tuple[Optional[int], ...]
#: A shape as a caller passes it (any sequence of int or None).
ShapeLike = Sequence[Optional[int]]

#: What a layer call returns: one array, or a list (``return_state=True``,
#: Keras's ``[output, h, c]``).
LayerOutput = Union[Array, List[Array]]

#: ``[h, c]`` states as a caller passes them.
StatesLike = Sequence[ArrayLike]

#: A name ("tanh"), a Python callable, or None (linear).
ActivationLike = Union[str, Callable[[Array], Any], None]

#: A registered name, a Keras-style config dict, an instance (callable) or None.
IdentifierLike = Union[str, Mapping[str, Any], Callable[..., Any], None]

#: A JSON-like config dict (``get_config`` / ``from_config``).
Config = Dict[str, Any]
