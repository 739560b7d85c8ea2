"""The zoo: one module per architecture family; importing this package registers them all."""

import importlib

from .registry import ModelInfo, get_model, list_models, model_info, register_model

FAMILIES = ("lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet", "mobilenet")

for _family in FAMILIES:  # importing a family module fills the registry
    importlib.import_module(f"{__name__}.{_family}")

__all__ = ["FAMILIES", "ModelInfo", "get_model", "list_models", "model_info", "register_model"]
