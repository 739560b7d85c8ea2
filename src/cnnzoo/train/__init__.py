"""Training, evaluation and prediction: recipes, the loop, run directories and safe files."""

from .evaluate import EvalResult, Prediction, evaluate, predict
from .loop import Reporter, TrainingDiverged, TrainResult, pick_device, train
from .recipes import RECIPES, Recipe, recipe_for
from .rundir import Run, load_run

__all__ = ["EvalResult", "Prediction", "RECIPES", "Recipe", "Reporter", "Run", "TrainResult",
           "TrainingDiverged", "evaluate", "load_run", "pick_device", "predict", "recipe_for",
           "train"]
