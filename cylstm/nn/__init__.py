"""PyTorch-style modules (``torch.nn`` with ``cylstm`` in front): ``LSTM``, ``LSTMCell``.

    lstm = cylstm.nn.LSTM.from_torch(state_dict)     # torch tensors or NumPy arrays
    output, (h_n, c_n) = lstm(x)
"""
from .lstm import LSTM, LSTMCell

__all__ = ["LSTM", "LSTMCell"]
