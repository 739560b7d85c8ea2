"""torchvision state_dicts load unchanged into the torchvision-compatible variants, which then give
torchvision's outputs; ``get_model(weights=...)`` loads state_dict files safely.

The comparisons with torchvision itself run only where torchvision is installed (it is not a
dependency of cnnzoo); the weights-file tests always run.
"""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import cnnzoo
from cnnzoo.errors import CnnzooError
from fixtures.weights import assert_input_matters, informative

# cnnzoo name -> torchvision builder name and keyword arguments (no weights, its own init)
TORCHVISION = {
    "vgg11": ("vgg11", {}),
    "vgg13": ("vgg13", {}),
    "vgg16": ("vgg16", {}),
    "vgg19": ("vgg19", {}),
    "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}),
    "resnet50": ("resnet50", {}),
    "resnet101": ("resnet101", {}),
    "resnet152": ("resnet152", {}),
    "densenet121": ("densenet121", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True}),
}
SMALL = (2, 3, 64, 64)  # every variant pools adaptively, so a small input exercises all layers


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torchvision_models():
    return pytest.importorskip(
        "torchvision.models", reason="torchvision is not installed (it is not a cnnzoo "
                                     "dependency); install it to compare with its models").__dict__


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_state_dict_loads_unchanged_and_outputs_agree(name):
    builders = torchvision_models()
    tv_name, kwargs = TORCHVISION[name]
    torch.manual_seed(0)
    reference = informative(builders[tv_name](weights=None, **kwargs)).eval()
    ours = cnnzoo.get_model(name).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)

    x = torch.randn(*SMALL)
    with torch.no_grad():
        expected = reference(x)
        assert_input_matters(expected)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def test_googlenet_with_auxiliary_heads_matches_torchvision_in_both_modes():
    builders = torchvision_models()
    torch.manual_seed(0)
    reference = informative(builders["googlenet"](weights=None, aux_logits=True,
                                                  init_weights=True))
    ours = cnnzoo.get_model("googlenet", aux_logits=True)
    ours.load_state_dict(reference.state_dict(), strict=True)

    x = torch.randn(*SMALL)
    # training mode: three outputs, dropout included; the same seed draws the same masks, as
    # both networks run their dropout layers in the same order
    outputs = []
    for model in (ours.train(), reference.train()):
        torch.manual_seed(1)
        outputs.append(model(x))
    assert type(outputs[0]).__name__ == "GoogLeNetOutputs" and len(outputs[0]) == 3
    for mine, theirs in zip(*outputs):
        assert_input_matters(theirs)
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        expected = reference.eval()(x)
        assert_input_matters(expected)
        torch.testing.assert_close(ours.eval()(x), expected, rtol=1e-5, atol=1e-5)


def test_get_model_loads_a_torchvision_file_saved_with_torch_save(tmp_path):
    builders = torchvision_models()
    torch.manual_seed(0)
    reference = informative(builders["resnet18"](weights=None, num_classes=7)).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    ours = cnnzoo.get_model("resnet18", num_classes=7, weights=tmp_path / "resnet18.pth").eval()
    x = torch.randn(*SMALL)
    with torch.no_grad():
        expected = reference(x)
        assert_input_matters(expected)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


# --- weights files, without torchvision ---------------------------------------------------------

@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_keyword_loads_a_state_dict_file(tmp_path, suffix):
    torch.manual_seed(0)
    trained = cnnzoo.get_model("lenet5_bn_d2l").eval()
    with torch.no_grad():  # non-default values everywhere, buffers included
        for tensor in trained.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(trained.state_dict(), path)
    else:
        save_file(trained.state_dict(), str(path))

    loaded = cnnzoo.get_model("lenet5_bn_d2l", weights=path).eval()
    for key, tensor in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))


class _Planted:
    """Unpickling this calls open(path, "w"): a file appears if the loader runs pickled code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    state = cnnzoo.get_model("lenet5_d2l").state_dict()
    state["payload"] = _Planted(marker)
    path = tmp_path / "evil.pth"
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError):  # the file really is unsafe for torch.load
        torch.load(path, weights_only=True)

    with pytest.raises(CnnzooError, match="refusing to load") as error:
        cnnzoo.get_model("lenet5_d2l", weights=path)
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_weights_that_do_not_fit_give_one_line_errors(tmp_path):
    path = tmp_path / "lenet.pth"
    torch.save(cnnzoo.get_model("lenet5_d2l").state_dict(), path)
    cases = [
        (dict(name="lenet5_maxpool"), "fc1.weight has shape"),  # 16x5x5 vs 16x4x4 inputs
        (dict(name="lenet5_bn_d2l"), "missing keys"),
        (dict(name="lenet5_d2l", num_classes=5), "fc3.weight has shape"),
    ]
    for kwargs, message in cases:
        with pytest.raises(CnnzooError, match=message) as error:
            cnnzoo.get_model(kwargs.pop("name"), weights=path, **kwargs)
        assert "\n" not in str(error.value)

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(os.urandom(64))
    not_a_state = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state)
    for path, message in [(broken, "not a valid safetensors file"), (not_a_state, "no state_dict"),
                          (tmp_path / "absent.pth", "does not exist")]:
        with pytest.raises(CnnzooError, match=message):
            cnnzoo.get_model("lenet5_d2l", weights=path)


def test_googlenet_transform_input_matches_torchvision():
    builders = torchvision_models()
    torch.manual_seed(0)
    reference = informative(builders["googlenet"](weights=None, aux_logits=False,
                                                  init_weights=True, transform_input=True))
    reference.eval()
    ours = cnnzoo.get_model("googlenet", transform_input=True).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(*SMALL)
    with torch.no_grad():
        expected = reference(x)
        assert_input_matters(expected)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
        # the transform acts: the same weights without it give other logits
        plain = cnnzoo.get_model("googlenet").eval()
        plain.load_state_dict(reference.state_dict(), strict=True)
        assert not torch.allclose(plain(x), expected, rtol=1e-3, atol=1e-3)
