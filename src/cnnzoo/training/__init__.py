"""Training, evaluation and prediction: recipes, the loop, run directories and safe files.

- ``config``: ``RunConfig``, a run's choices typed and validated; ``recipes``: ``Recipe``
- ``prepare``: data, model, device and fast path made ready; ``loop``: ``train`` and the epochs
- ``progress``: ``Reporter``s (terminal, log, notebook, live curves)
- ``rundir``: what a run leaves and ``load_run``; ``checkpoint``: weights and checkpoints
- ``compare``: ``compare_runs``, runs side by side; ``runfile``: a run described in a YAML or
  JSON file (``read_run_file``)
- ``events``: TensorBoard's event files; ``determinism``: ``deterministic=True``
- ``evaluation``: ``evaluate`` and ``predict``; ``fastpath``, ``step``, ``optim``, ``pooling``,
  ``allocator``, ``distributed``: how the steps run

The public names are imported on first use, so that ``cnnzoo.training.recipes`` (the command
line's list of recipes) is read without importing torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Comparison": ".compare", "compare_runs": ".compare",
    "RunConfig": ".config",
    "EvalResult": ".evaluation", "Prediction": ".evaluation", "evaluate": ".evaluation",
    "predict": ".evaluation",
    "TrainingDiverged": ".loop", "TrainResult": ".loop", "train": ".loop",
    "run_config": ".loop", "read_run_file": ".runfile",
    "Reporter": ".progress",
    "RECIPES": ".recipes", "Recipe": ".recipes", "recipe_for": ".recipes",
    "Run": ".rundir", "load_run": ".rundir",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
