"""Fully connected heads turned into convolutions: the same logits on the original input size, a
score map of the size the shape formula predicts on larger inputs, and windows that match crops.

The layer chains below are written from the papers and d2l (kernel, stride, padding of every conv
and pool), not read from the models, and pushed through ``conv_output_size``.
"""

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo import conv_output_size, to_fully_convolutional
from cnnzoo.errors import CnnzooError
from cnnzoo.export import export_model
from cnnzoo.models.vgg import VGG

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
ALEXNET = [(11, 4, 0), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1),
           (3, 2, 0)]
VGG_POOLS = [(2, 2, 0)] * 5  # its 3x3 convs with padding 1 keep the size
MNIST_SEED = [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]  # seed 004: blocks keep the size

# name, builder keywords, the input the head was built for, a larger input, the chain up to the
# head (whose first linear layer becomes a conv with the map's size as its kernel)
CASES = [
    ("lenet5", {}, (1, 32, 32), (1, 64, 48),
     [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0), (5, 1, 0)]),  # C1 S2 C3 S4 C5
    ("lenet5_d2l", {}, (1, 28, 28), (1, 60, 44),
     [(5, 1, 2), (2, 2, 0), (5, 1, 0), (2, 2, 0)]),
    ("lenet5_bn_d2l", {}, (1, 28, 28), (1, 60, 44),
     [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]),
    ("lenet5_bn_scratch_d2l", {}, (1, 28, 28), (1, 60, 44),
     [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]),
    ("lenet5_maxpool", {}, (1, 28, 28), (1, 41, 52),
     [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]),
    ("alexnet", {"input_size": (3, 99, 99)}, (3, 99, 99), (3, 163, 131), ALEXNET),
    ("alexnet_d2l", {"input_size": (1, 99, 99)}, (1, 99, 99), (1, 163, 131),
     [(11, 4, 1)] + ALEXNET[1:]),
    ("vgg11_d2l", {"input_size": (1, 64, 64)}, (1, 64, 64), (1, 128, 96), VGG_POOLS),
    ("residual_mnist", {}, (1, 28, 28), (1, 60, 44), MNIST_SEED),
    ("inception_mnist", {}, (1, 28, 28), (1, 60, 44), MNIST_SEED),
]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def through(chain, size):
    height, width = size
    for kernel, stride, padding in chain:
        height = conv_output_size(height, kernel, stride, padding)
        width = conv_output_size(width, kernel, stride, padding)
    return height, width


def trained_looking(model):
    """Eval mode with non-default BatchNorm statistics, so that converting them is tested."""
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "running_var"):  # nn.BatchNorm*d and the from-scratch one
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name, kwargs, size, larger, chain", CASES, ids=[c[0] for c in CASES])
def test_same_logits_on_the_original_size_and_a_predicted_score_map_on_larger(
        name, kwargs, size, larger, chain):
    torch.manual_seed(0)
    model = trained_looking(cnnzoo.get_model(name, **kwargs))
    converted = to_fully_convolutional(model)
    assert not converted.training

    x = torch.randn(2, *size)
    with torch.no_grad():
        scores, logits = converted(x), model(x)
    assert scores.shape == (2, logits.shape[1], 1, 1)
    # lenet5's RBF outputs are squared distances near 160: float32 rounding there is ~1e-5
    torch.testing.assert_close(scores.flatten(1), logits, atol=1e-5, rtol=1.3e-6)

    kernel = through(chain, size[1:])
    assert kernel[0] == kernel[1]  # every case is built for a square input
    expected = through(chain + [(kernel[0], 1, 0)], larger[1:])
    with torch.no_grad():
        score_map = converted(torch.randn(1, *larger))
    assert score_map.shape == (1, logits.shape[1], *expected)
    assert expected[0] > 1 and expected[1] > 1


@pytest.mark.parametrize("name, stride", [("lenet5", 4), ("lenet5_maxpool", 4),
                                          ("lenet5_bn_d2l", 4), ("lenet5_bn_scratch_d2l", 4)])
def test_each_score_is_the_model_on_one_window(name, stride):
    # these LeNets pad nothing, so a window of the large image is exactly a crop
    torch.manual_seed(0)
    model = trained_looking(cnnzoo.get_model(name))
    converted = to_fully_convolutional(model)
    channels, height, width = cnnzoo.model_info(name).input_size
    image = torch.randn(1, channels, height + 3 * stride, width + 5 * stride)
    with torch.no_grad():
        score_map = converted(image)
        for row, col in [(0, 0), (2, 5), (3, 1)]:
            crop = image[..., row * stride:row * stride + height, col * stride:col * stride + width]
            torch.testing.assert_close(score_map[..., row, col], model(crop), atol=1e-5,
                                       rtol=1.3e-6)


def small_torchvision_vgg():
    """torchvision's VGG layout (adaptive 7x7 pool, 4096-wide classifier) on 8-channel convs."""
    layers = []
    channels = 3
    for _ in range(5):
        layers += [nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)]
        channels = 8
    classifier = nn.Sequential(nn.Linear(8 * 7 * 7, 64), nn.ReLU(), nn.Dropout(),
                               nn.Linear(64, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 5))
    return VGG(nn.Sequential(*layers), nn.AdaptiveAvgPool2d((7, 7)), classifier).eval()


def test_vgg_adaptive_pool_is_dropped_identical_at_224():
    torch.manual_seed(0)
    model = small_torchvision_vgg()
    converted = to_fully_convolutional(model)
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in converted.modules())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(converted(x).flatten(1), model(x), atol=1e-5, rtol=1.3e-6)
        score_map = converted(torch.randn(1, 3, 288, 256))
    # 288 x 256 -> 9 x 8 after five 2x2 pools, then the 7x7 conv that was fc1
    assert score_map.shape == (1, 5, *through(VGG_POOLS + [(7, 1, 0)], (288, 256)))


def test_vgg_used_where_its_adaptive_pool_resamples_is_refused():
    # at 64x64 the features give 2x2, which the pool stretches to 7x7: no convolution equals that
    with pytest.raises(CnnzooError, match="a 2x2 map, not the 7x7"):
        to_fully_convolutional(small_torchvision_vgg(), input_size=(3, 64, 64))
    assert to_fully_convolutional(small_torchvision_vgg(), input_size=(3, 224, 224))


def test_weights_are_copied_not_shared():
    model = cnnzoo.get_model("lenet5_d2l").eval()
    converted = to_fully_convolutional(model)
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        before = converted(x)
        model.classifier.fc1.weight.zero_()
        model.features.conv1.weight.zero_()
        torch.testing.assert_close(converted(x), before, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["lenet5_bn_d2l", "lenet5_bn_scratch_d2l"])
def test_a_float64_head_with_batch_norm_converts_in_float64(name):
    model = trained_looking(cnnzoo.get_model(name).double())
    converted = to_fully_convolutional(model)
    assert {t.dtype for t in converted.state_dict().values() if t.is_floating_point()} == {
        torch.float64}
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x).flatten(1), model(x), atol=1e-12, rtol=1e-12)


def test_non_square_head_needs_the_input_size():
    model = cnnzoo.get_model("vgg11_d2l", input_size=(1, 64, 96)).eval()
    with pytest.raises(CnnzooError, match="pass input_size"):
        to_fully_convolutional(model)
    converted = to_fully_convolutional(model, input_size=(1, 64, 96))
    x = torch.randn(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(converted(x).flatten(1), model(x), atol=1e-5, rtol=1.3e-6)


@pytest.mark.parametrize("name", ["nin_d2l", "googlenet_d2l", "resnet18_d2l", "densenet_d2l",
                                  "mobilenet_v1", "resnet18", "googlenet", "densenet121"])
def test_models_without_a_fixed_head_say_so_in_one_line(name):
    with pytest.raises(CnnzooError, match="fixed fully connected head") as error:
        to_fully_convolutional(cnnzoo.get_model(name))
    assert "\n" not in str(error.value)


def test_a_converted_model_exports_with_its_score_map(tmp_path):
    converted = to_fully_convolutional(cnnzoo.get_model("lenet5_d2l").eval())
    report = export_model(converted, tmp_path / "dense.pt", "torchscript", (1, 60, 44))
    assert torch.jit.load(str(report.path))(torch.randn(2, 1, 60, 44)).shape == (2, 10, 9, 5)
    assert converted.input_size == (1, 28, 28)


def test_convert_is_a_public_name():
    assert cnnzoo.to_fully_convolutional is to_fully_convolutional
    assert isinstance(to_fully_convolutional(cnnzoo.get_model("lenet5")).head, nn.Sequential)
