"""torch.hub entry points: one per registered cnnzoo model.

    model = torch.hub.load("path/to/cnnzoo", "resnet18_d2l", source="local", num_classes=10)
    model = torch.hub.load("path/to/cnnzoo", "resnet18", source="local", weights="resnet18.pth")

Each entry takes the keyword arguments of ``cnnzoo.get_model`` for that model (``num_classes``,
``in_channels``, ``input_size`` where the head is fixed, ``weights`` for a state_dict file) and
returns a freshly built model; cnnzoo publishes no pretrained weights of its own.
"""

import os as _os
import sys as _sys

dependencies = ["torch"]

try:
    import cnnzoo as _cnnzoo
except ImportError:  # a checkout without `pip install`: use the package from its src/ folder
    _sys.path.insert(0, _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src"))
    import cnnzoo as _cnnzoo


def _entry(name: str):
    def build(**kwargs):
        return _cnnzoo.get_model(name, **kwargs)

    info = _cnnzoo.model_info(name)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"{info.description}\n\n{info.paper} ({info.year}); default input "
                     f"{'x'.join(map(str, info.input_size))}, {info.num_classes} classes. "
                     f"Keyword arguments go to cnnzoo.get_model({name!r}, ...).")
    return build


for _name in _cnnzoo.list_models():
    globals()[_name] = _entry(_name)
