"""Built-in score-model builders: ``build(event_shape)`` returns the network (see ``_net``)."""

from .conv import Conv
from .linear import Linear
from .mlp import MLP

MODELS = [MLP, Conv, Linear]
