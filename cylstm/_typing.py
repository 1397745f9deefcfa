"""Type aliases of cylstm's public API (for annotations; nothing here runs).

``Array`` is what cylstm returns (a NumPy array of the layer's dtype);
``ArrayLike`` what it accepts (anything ``numpy.asarray`` takes).
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]
FloatArray = npt.NDArray[np.floating[Any]]
ArrayLike = npt.ArrayLike
DTypeLike = npt.DTypeLike

#: A shape with unknown dimensions as None, as Keras writes input shapes.
Shape = Tuple[Optional[int], ...]
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
