"""One test over the whole registry: output shape, gradients everywhere, exact parameter counts.

Expected counts come from the papers, torchvision's documentation and d2l's reference builds
(see the anchors in the docs: docs/models.md).
"""

from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo.errors import CnnzooError, UnknownModelError

EXPECTED_PARAMS = {
    "lenet5": 60_000,
    "lenet5_d2l": 61_706,
    "lenet5_maxpool": 44_426,
    "lenet5_bn_d2l": 44_878,
    "lenet5_bn_scratch_d2l": 44_878,
    "alexnet": 62_378_344,
    "alexnet_d2l": 46_764_746,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_d2l": 43_093_322,
    "nin_d2l": 1_992_166,
    "googlenet": 6_624_904,
    "googlenet_d2l": 5_977_530,
    "inception_mnist": 97_298,
    "residual_mnist": 41_514,
    "resnet9_fmnist": 1_645_546,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet18_d2l": 11_178_378,
    "densenet121": 7_978_856,
    "densenet_d2l": 758_226,
    "mobilenet_v1": 4_231_976,
}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_every_expected_model_is_registered():
    missing = set(EXPECTED_PARAMS) - set(cnnzoo.list_models())
    assert not missing, f"not registered: {sorted(missing)}"


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_model(name):
    info = cnnzoo.model_info(name)
    torch.manual_seed(0)
    model = cnnzoo.get_model(name)
    assert name in EXPECTED_PARAMS, f"{name} has no expected parameter count in this test"
    assert count(model) == EXPECTED_PARAMS[name]

    model.train()
    x = torch.rand(2, *info.input_size)
    out = model(x)
    if isinstance(out, tuple):  # GoogLeNet with aux classifiers in training mode
        out = out[0]
    assert out.shape == (2, info.num_classes)
    out.float().pow(2).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"


@pytest.mark.parametrize("name", ["lenet5_d2l", "alexnet", "vgg11_d2l", "resnet18_d2l",
                                  "googlenet_d2l", "densenet_d2l", "mobilenet_v1", "nin_d2l"])
def test_num_classes_and_in_channels(name):
    info = cnnzoo.model_info(name)
    model = cnnzoo.get_model(name, num_classes=7, in_channels=3).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *info.input_size[1:]))
    assert out.shape == (1, 7)


def test_googlenet_aux_count():
    assert count(cnnzoo.get_model("googlenet", aux_logits=True)) == 13_004_888


def test_lenet5_connections_of_the_paper():
    # LeCun et al. 1998, section II.B: 340,908 connections, 60,000 trainable parameters.
    from cnnzoo.models.lenet import lenet5_connections
    assert lenet5_connections(cnnzoo.get_model("lenet5")) == 340_908


def test_registry_names_are_naturally_sorted_and_filtered():
    assert cnnzoo.list_models("vgg*") == ["vgg11", "vgg11_d2l", "vgg13", "vgg16", "vgg19"]
    assert cnnzoo.list_models("resnet1") == ["resnet18", "resnet18_d2l", "resnet101",
                                             "resnet152"]


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="resnet18"):
        cnnzoo.get_model("resnet81")


def test_registering_twice_is_an_error():
    from cnnzoo.models.registry import register_model
    with pytest.raises(ValueError, match="twice"):
        register_model(family="x", paper="x", year=2000, input_size=(1, 8, 8), num_classes=2,
                       source="paper", name="lenet5_d2l")(lambda **kw: None)


def test_model_info_metadata():
    from cnnzoo.models import registry

    info = cnnzoo.model_info("alexnet")
    assert info.year == 2012 and info.input_size == (3, 227, 227) and info.num_classes == 1000
    # every zoo entry names a real origin, never the files cnnzoo was written from
    origins = {registry.FROM_PAPER, registry.FROM_D2L, registry.FROM_D2L_PYTORCH,
               registry.FROM_LIU_ER, registry.FROM_TORCHVISION, registry.FROM_CNNZOO}
    sources = {cnnzoo.model_info(n).source for n in cnnzoo.list_models()} - {registry.FROM_USER}
    assert sources == origins
    assert not any("seed" in source.lower() for source in sources)


def test_fixed_head_is_stated_for_exactly_the_builders_sized_by_input_size():
    import inspect

    for name in cnnzoo.list_models():
        info = cnnzoo.model_info(name)
        takes = "input_size" in inspect.signature(info.builder).parameters
        assert info.fixed_head == takes, name


def test_fixed_head_takes_input_size_at_construction():
    model = cnnzoo.get_model("alexnet_d2l", input_size=(1, 96, 96)).eval()
    assert model(torch.rand(1, 1, 96, 96)).shape == (1, 10)
    with pytest.raises(CnnzooError, match="too small"):
        cnnzoo.get_model("alexnet", input_size=32)


def test_googlenet_transform_input_maps_imagenet_normalised_inputs_to_minus_one_one():
    model = cnnzoo.get_model("googlenet", transform_input=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = torch.rand(1, 3, 8, 8)
    mapped = model._transform_input((pixels - mean) / std)
    torch.testing.assert_close(mapped, pixels * 2 - 1)


MODELS_DOC = Path(__file__).resolve().parents[1] / "docs" / "models.md"
# docs/models.md's first table (LeNet to NiN) gives parameters only; the second, mult-adds too
DOCUMENTED_WITHOUT_MULT_ADDS = ("lenet", "alexnet", "vgg", "nin")


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_the_models_page_gives_each_models_counts_as_summary_computes_them(name):
    # the page is where a reader checks a count: it must not drift from the code
    from cnnzoo.models import model_info

    info = model_info(name)
    with torch.device("meta"):  # counting needs shapes, not numbers (nor VGG's 0.5 GB)
        model = cnnzoo.get_model(name)
    table = cnnzoo.summary(model, input_size=(1, *info.input_size), device="meta")
    page = MODELS_DOC.read_text()
    assert f"{table.total_params:,}" in page, (name, table.total_params)
    if info.family not in DOCUMENTED_WITHOUT_MULT_ADDS:
        assert f"{table.total_mult_adds:,}" in page, (name, table.total_mult_adds)


SIZE_FORMS = r"input_size=.*give S, \(H, W\) or \(C, H, W\)"  # a fixed head's sizes


@pytest.mark.parametrize("name, kwargs, message", [
    ("lenet5_d2l", dict(num_classes=0), "num_classes must be a whole number of at least 1"),
    ("resnet18_d2l", dict(num_classes=-1), "num_classes must be a whole number of at least 1"),
    ("mobilenet_v1", dict(num_classes=2.5), "num_classes must be a whole number"),
    ("resnet18_d2l", dict(in_channels=True), "in_channels must be a whole number"),
    ("lenet5_d2l", dict(in_channels=0), "in_channels must be a whole number"),
    ("lenet5_d2l", dict(input_size=(0, 28, 28)), SIZE_FORMS),
    ("vgg11_d2l", dict(input_size=32.5), SIZE_FORMS),
    ("lenet5_d2l", dict(input_size=True), SIZE_FORMS),
    ("resnet9_fmnist", dict(width=2.5), "width must be a whole number"),
    ("mobilenet_v1", dict(width_mult="1"), "width_mult must be a number"),
    ("googlenet", dict(aux_logits="no"), "aux_logits must be True or False"),
    ("alexnet_d2l", dict(dropout=1.5), "dropout probability has to be between 0 and 1"),
    ("resnet18_d2l", dict(bogus=1), "takes no argument 'bogus'; it takes: num_classes"),
])
def test_builder_arguments_of_the_wrong_kind_are_one_line_errors(name, kwargs, message):
    # a model with no outputs or a flag taken as a channel count must not be built silently
    with pytest.raises(CnnzooError, match=message) as error:
        cnnzoo.get_model(name, **kwargs)
    assert "\n" not in str(error.value)


def test_builder_arguments_take_their_defaults_kind_and_none_where_it_is_the_default():
    import numpy as np

    model = cnnzoo.get_model("mobilenet_v1", num_classes=np.int64(1), width_mult=1)
    assert model.fc.out_features == 1
    assert cnnzoo.get_model("lenet5_d2l", in_channels=None, input_size=None).input_size == (
        1, 28, 28)


@pytest.mark.parametrize("name", [None, 3])
def test_a_model_name_that_is_not_a_string_is_unknown(name):
    with pytest.raises(UnknownModelError, match="unknown model"):
        cnnzoo.model_info(name)


@pytest.mark.parametrize("width_mult, size, params, mult_adds", [
    # Howard et al. 2017, Table 6 (width multiplier alpha) and Table 7 (resolution multiplier
    # rho, as the input size), rounded as the paper prints them; the exact figures are in
    # docs/models.md
    (0.75, 224, 2.6e6, 325e6), (0.5, 224, 1.3e6, 149e6), (0.25, 224, 0.5e6, 41e6),
    (1.0, 192, 4.2e6, 418e6), (1.0, 160, 4.2e6, 290e6), (1.0, 128, 4.2e6, 186e6),
])
def test_mobilenet_multipliers_give_the_papers_counts(width_mult, size, params, mult_adds):
    with torch.device("meta"):
        model = cnnzoo.get_model("mobilenet_v1", width_mult=width_mult)
    table = cnnzoo.summary(model, input_size=(1, 3, size, size), device="meta")
    assert abs(table.total_params - params) <= 0.05e6
    assert abs(table.total_mult_adds - mult_adds) <= 1e6
    page = MODELS_DOC.read_text()
    assert f"{table.total_params:,}" in page or width_mult == 1.0
    assert f"{table.total_mult_adds / 1e6:.1f}" in page
