"""Pictures of what is inside: data, kernels, feature maps, predictions, receptive fields,
gradients and architecture, drawn headless with matplotlib and written as PNG.

Each kind has a ``draw_*`` function that takes objects (a model, tensors, a ``DataSet``) and
returns a matplotlib figure, and a ``show_*`` function that takes names and run directories,
writes the PNG atomically and returns its path (what ``cnnzoo show ...`` calls).
"""

from .architecture import draw_architecture, layer_boxes, show_architecture
from .data import draw_data, show_data
from .features import draw_features, show_features
from .filters import draw_filters, show_filters
from .gradients import compare_stacks, draw_gradients, layer_gradient_norms, show_gradients
from .predictions import draw_predictions, show_predictions
from .receptive_field import (draw_receptive_field, receptive_region, show_receptive_field,
                              structural_twin)

__all__ = ["compare_stacks", "draw_architecture", "draw_data", "draw_features", "draw_filters",
           "draw_gradients", "draw_predictions", "draw_receptive_field", "layer_boxes",
           "layer_gradient_norms", "receptive_region", "show_architecture", "show_data",
           "show_features", "show_filters", "show_gradients", "show_predictions",
           "show_receptive_field", "structural_twin"]
