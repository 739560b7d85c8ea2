"""torch.hub: every registry entry is a hub entry point of the repository's hubconf.py."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cnnzoo

REPO = Path(__file__).resolve().parents[1]


def load_hubconf():
    spec = importlib.util.spec_from_file_location("cnnzoo_hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HUBCONF = load_hubconf()


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_registry_name_is_a_hub_entry(name):
    entry = getattr(HUBCONF, name)
    assert callable(entry) and entry.__name__ == name
    assert cnnzoo.model_info(name).description in entry.__doc__


def test_hub_lists_exactly_the_registry():
    # torch.hub.list's rule: the public callables of hubconf.py
    public = {n for n in dir(HUBCONF) if callable(getattr(HUBCONF, n)) and not n.startswith("_")}
    assert public == set(cnnzoo.list_models())
    assert HUBCONF.dependencies == ["torch"]


@pytest.mark.parametrize("name, kwargs, input_size, classes", [
    ("resnet18_d2l", {"num_classes": 3}, (1, 32, 32), 3),
    ("lenet5", {}, (1, 32, 32), 10),
    ("alexnet_d2l", {"input_size": (1, 65, 65)}, (1, 65, 65), 10),
])
def test_torch_hub_load_from_the_local_repository(name, kwargs, input_size, classes):
    model = torch.hub.load(str(REPO), name, source="local", **kwargs)
    assert type(model) is type(cnnzoo.get_model(name, **kwargs))
    with torch.no_grad():
        assert model.eval()(torch.randn(2, *input_size)).shape == (2, classes)


def test_torch_hub_load_passes_weights_through(tmp_path):
    torch.manual_seed(0)
    source = cnnzoo.get_model("lenet5_d2l").eval()
    torch.save(source.state_dict(), tmp_path / "lenet.pth")
    model = torch.hub.load(str(REPO), "lenet5_d2l", source="local",
                           weights=str(tmp_path / "lenet.pth")).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_weights_saved_without_batchnorms_batch_counts_load_as_torch_loads_them(tmp_path):
    """Files from before PyTorch 0.4.1 lack BatchNorm's num_batches_tracked; load_state_dict
    fills them with 0, and so does get_model(weights=...). Any other missing key is refused."""
    torch.manual_seed(0)
    source = cnnzoo.get_model("lenet5_bn_d2l").eval()
    state = {k: v for k, v in source.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    assert len(state) < len(source.state_dict())
    torch.save(state, tmp_path / "old.pth")
    model = cnnzoo.get_model("lenet5_bn_d2l", weights=tmp_path / "old.pth").eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), source(x))
    state.pop(next(k for k in state if k.endswith("running_mean")))
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(cnnzoo.CnnzooError, match="1 missing keys"):
        cnnzoo.get_model("lenet5_bn_d2l", weights=tmp_path / "short.pth")


def test_hubconf_finds_the_package_in_src_when_it_is_not_installed():
    # -S skips site-packages and its .pth files (cnnzoo's editable install is one); torch and
    # numpy come back through PYTHONPATH, cnnzoo only through hubconf's own src/ fallback
    paths = [p for p in sys.path if p and not (Path(p) / "cnnzoo" / "__init__.py").exists()]
    hubconf = str(REPO / "hubconf.py")
    script = ("import importlib.util, sys\n"
              "assert importlib.util.find_spec('cnnzoo') is None, 'cnnzoo is importable'\n"
              f"spec = importlib.util.spec_from_file_location('hubconf', {hubconf!r})\n"
              "hub = importlib.util.module_from_spec(spec); spec.loader.exec_module(hub)\n"
              "import cnnzoo; print(cnnzoo.__file__); print(type(hub.lenet5_d2l()).__name__)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run([sys.executable, "-S", "-c", script], cwd="/", env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    path, model = result.stdout.split()
    assert Path(path).is_relative_to(REPO / "src") and model == "LeNet"
