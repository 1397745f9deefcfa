"""``cylstm.preprocessing`` mirrors ``tensorflow.keras.preprocessing``:
``cylstm.preprocessing.sequence.pad_sequences`` (also here and in ``cylstm.utils``)."""
from . import sequence
from .sequence import pad_sequences

__all__ = ["sequence", "pad_sequences"]
