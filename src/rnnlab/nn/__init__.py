"""Layers: pure tensors in, tensors out. Imports nothing else from rnnlab."""

from rnnlab.nn.recurrent import BACKENDS, CELLS, RecurrentState, detach_state, recurrent_layer

__all__ = ["BACKENDS", "CELLS", "RecurrentState", "detach_state", "recurrent_layer"]
