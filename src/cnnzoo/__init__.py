"""cnnzoo: the classic convolutional networks, faithfully built, inspected and trained fast.

The public names are imported on first use, so ``import cnnzoo`` stays light. None of them is
also the name of a subpackage or module (the training code lives in ``cnnzoo.training``), so
``cnnzoo.train`` is the function whatever else has been imported.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "CnnzooError": "cnnzoo.errors",
    "ModelInfo": "cnnzoo.models",
    "get_model": "cnnzoo.models",
    "get_weights": "cnnzoo.models.weights",
    "Weights": "cnnzoo.models.weights",
    "list_models": "cnnzoo.models",
    "model_info": "cnnzoo.models",
    "register_model": "cnnzoo.models",
    "conv_output_size": "cnnzoo.geometry",
    "trace_shapes": "cnnzoo.inspect.shapes",
    "minimum_input_size": "cnnzoo.inspect.shapes",
    "summary": "cnnzoo.inspect.summary",
    "ModelSummary": "cnnzoo.inspect.summary",
    "conv_cost": "cnnzoo.inspect.cost",
    "load_dataset": "cnnzoo.data",
    "DataSet": "cnnzoo.data",
    "BatchIterator": "cnnzoo.data",
    "train": "cnnzoo.training",
    "TrainResult": "cnnzoo.training",
    "Recipe": "cnnzoo.training",
    "Reporter": "cnnzoo.training",
    "Run": "cnnzoo.training",
    "load_run": "cnnzoo.training",
    "evaluate": "cnnzoo.training",
    "EvalResult": "cnnzoo.training",
    "predict": "cnnzoo.training",
    "compare_runs": "cnnzoo.training",
    "to_fully_convolutional": "cnnzoo.models.convert",
    "export_model": "cnnzoo.export",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
