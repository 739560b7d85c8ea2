"""Training, evaluation and prediction: recipes, the loop, run directories and safe files.

The public names are imported on first use, so that ``cnnzoo.train.recipes`` (the command
line's list of recipes) is read without importing torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "EvalResult": ".evaluation", "Prediction": ".evaluation", "evaluate": ".evaluation",
    "predict": ".evaluation",
    "Reporter": ".loop", "TrainingDiverged": ".loop", "TrainResult": ".loop",
    "pick_device": ".loop", "train": ".loop",
    "RECIPES": ".recipes", "Recipe": ".recipes", "recipe_for": ".recipes",
    "Run": ".rundir", "load_run": ".rundir",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
