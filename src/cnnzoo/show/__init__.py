"""Pictures of what is inside: data, kernels, feature maps, predictions, receptive fields,
gradients, class activation maps and architecture, drawn with matplotlib and written as PNG, SVG, PDF or JPEG.

Each kind has a ``draw_*`` function that takes objects (a model, tensors, a ``DataSet``) and
returns a matplotlib figure (``cnnzoo.plots.Picture``: the last expression of a notebook cell,
it shows as an image), and a ``show_*`` function that takes names and run directories, writes
the picture atomically and returns its path (what ``cnnzoo show ...`` calls); an ``out`` that
exists is replaced only with ``force=True``, and a link, a device or a run's own file never. No
backend is chosen and no matplotlib setting is changed by importing or drawing.

The public names are imported on first use, so that ``cnnzoo.show.limits`` (the command line's
help states them) is read without importing torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "draw_architecture": ".architecture", "layer_boxes": ".architecture",
    "show_architecture": ".architecture",
    "attribute": ".cam", "cam_layer": ".cam", "deletion_curve": ".cam", "draw_cams": ".cam",
    "show_cam": ".cam",
    "draw_data": ".data", "show_data": ".data",
    "draw_features": ".features", "show_features": ".features",
    "draw_filters": ".filters", "show_filters": ".filters",
    "compare_stacks": ".gradients", "draw_gradients": ".gradients",
    "layer_gradient_norms": ".gradients", "show_gradients": ".gradients",
    "draw_predictions": ".predictions", "show_predictions": ".predictions",
    "draw_receptive_field": ".receptive_field", "receptive_region": ".receptive_field",
    "show_receptive_field": ".receptive_field", "structural_twin": ".receptive_field",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
