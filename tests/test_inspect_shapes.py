"""The shape trace, the smallest-input search and the `models` / `shapes` commands.

Expected shapes follow from seed 000's formula hout = (hin + 2p - k) / s + 1 applied by hand to
the seeds' own layers (seed 003's d2l LeNet, seed 000's AlexNet).
"""

import subprocess
import sys

import pytest
from torch import nn
from torch.nn import functional as F

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError, InputTooSmallError
from cnnzoo.inspect.shapes import minimum_input_size, trace_shapes

from fixtures.seed_models import seed_alexnet, seed_lenet

# Seed 003's loop over the d2l LeNet at 1x28x28 (conv1 padding 2: 28 -> 28, pool -> 14,
# conv2 -> 10, pool -> 5, flatten 400, then 120, 84, 10).
D2L_LENET_LEAVES = [
    ("Conv2d", [1, 6, 28, 28]), ("Sigmoid", [1, 6, 28, 28]), ("AvgPool2d", [1, 6, 14, 14]),
    ("Conv2d", [1, 16, 10, 10]), ("Sigmoid", [1, 16, 10, 10]), ("AvgPool2d", [1, 16, 5, 5]),
    ("Flatten", [1, 400]), ("Linear", [1, 120]), ("Sigmoid", [1, 120]), ("Linear", [1, 84]),
    ("Sigmoid", [1, 84]), ("Linear", [1, 10]),
]

# Seed 000's AlexNet needs 67x67: conv1 (67-11)/4+1 = 15, pool1 (15-3)/2+1 = 7, conv2 keeps 7,
# pool2 3, conv3-5 keep 3, pool3 1. At 66 conv1 gives 14, pool1 6, pool2 2 and pool3 0.
ALEXNET_MINIMUM = (3, 67, 67)


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_seed_lenet_shapes_in_call_order():
    rows = trace_shapes(seed_lenet(), (1, 32, 32), batch=10)
    assert [(r.class_name, r.output_shape) for r in rows[1:]] == [
        ("Conv2d", (10, 6, 28, 28)), ("AvgPool2d", (10, 6, 14, 14)),
        ("Conv2d", (10, 16, 10, 10)), ("AvgPool2d", (10, 16, 5, 5)),
        ("Linear", (10, 120)), ("Linear", (10, 84))]
    assert rows[0].depth == 0 and rows[0].output_shape is None  # the seed's forward returns None
    conv1 = rows[1]
    assert (conv1.kernel, conv1.stride, conv1.padding) == ((5, 5), (1, 1), (0, 0))
    assert conv1.window == "kernel 5, stride 1, padding 0"
    assert rows[5].kernel is None and rows[5].window == ""


def test_nested_blocks_are_indented_and_containers_listed():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1) for _ in range(2)])

        def forward(self, x):
            for conv in self.convs:  # the ModuleList itself is never called
                x = conv(x)
            return x

    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), Block())
    rows = trace_shapes(model, (1, 9, 9))
    assert [(r.name, r.depth) for r in rows] == [
        ("", 0), ("0", 1), ("1", 1), ("1.convs", 2), ("1.convs.0", 3), ("1.convs.1", 3)]
    assert rows[3].output_shape is None and rows[3].input_shape is None
    assert rows[-1].output_shape == (1, 4, 4, 4)


def test_d2l_lenet_of_the_registry_traces_seed_003_shapes():
    if "lenet5_d2l" not in cnnzoo.list_models():
        pytest.skip("lenet5_d2l is not registered")
    rows = trace_shapes(cnnzoo.get_model("lenet5_d2l"), (1, 28, 28))
    layer_types = {name for name, _ in D2L_LENET_LEAVES}
    assert [(r.class_name, list(r.output_shape)) for r in rows
            if r.class_name in layer_types] == D2L_LENET_LEAVES
    assert rows[0].output_shape == (1, 10)


def test_trace_leaves_the_model_as_it_was():
    model = seed_alexnet().train()
    model.conv2.eval()
    trace_shapes(model, (3, 227, 227))
    assert model.training and not model.conv2.training and model.conv1.training
    assert _hooks(model) == 0


def test_too_small_names_the_layer_and_the_minimum():
    model = seed_alexnet()
    with pytest.raises(InputTooSmallError) as caught:
        trace_shapes(model, (3, 32, 32))
    message = str(caught.value)
    assert "\n" not in message
    assert "pool2" in message and "2x2 becomes 0x0" in message
    assert "3x67x67" in message
    assert _hooks(model) == 0


def test_minimum_input_size_of_a_module_and_of_a_name():
    assert minimum_input_size(seed_alexnet()) == ALEXNET_MINIMUM
    assert minimum_input_size(seed_lenet()) == (1, 16, 16)  # 16 -> 12 -> 6 -> 2 -> 1
    if "alexnet" in cnnzoo.list_models():
        assert minimum_input_size("alexnet") == ALEXNET_MINIMUM
        cnnzoo.get_model("alexnet", input_size=ALEXNET_MINIMUM)
        with pytest.raises(CnnzooError, match="too small"):
            cnnzoo.get_model("alexnet", input_size=(3, 66, 66))


def test_functional_pooling_too_small_names_the_module():
    class Pools(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return F.max_pool2d(self.conv(x), 3)

    with pytest.raises(InputTooSmallError, match=r"Pools.*max_pool2d.*smallest input that works "
                                                 r"is 1x5x5"):
        trace_shapes(Pools(), (1, 4, 4))


def test_models_command_lists_every_model_with_its_parameters(capsys):
    initialisers = dict(vars(nn.init))
    assert main(["models"]) == 0
    assert dict(vars(nn.init)) == initialisers  # counted with them skipped, then restored
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "family", "year", "input", "classes", "parameters",
                              "source"]
    listed = {line.split()[0]: line.split()[5] for line in out[1:]}
    assert list(listed) == cnnzoo.list_models()
    for name in [n for n in ("lenet5_d2l", "alexnet", "resnet18_d2l") if n in listed]:
        built = sum(p.numel() for p in cnnzoo.get_model(name).parameters())
        assert listed[name] == f"{built:,}"


def test_models_command_pattern(capsys):
    names = cnnzoo.list_models("vgg*")
    assert main(["models", "vgg*"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == names
    assert main(["models", "no-such-model"]) == 2
    assert capsys.readouterr().err.startswith("cnnzoo: error: no model matches")


def test_shapes_command_prints_seed_003_shapes(capsys):
    if "lenet5_d2l" not in cnnzoo.list_models():
        pytest.skip("lenet5_d2l is not registered")
    assert main(["shapes", "lenet5_d2l"]) == 0
    out = capsys.readouterr().out
    shapes = [line.split("output shape: ")[1].split("  ")[0]
              for line in out.splitlines() if "output shape: " in line]
    for _, shape in D2L_LENET_LEAVES:
        assert str(shape) in shapes
    assert "kernel 5, stride 1, padding 2" in out


@pytest.mark.parametrize("value, words", [("3,x,32", "'x' is not a whole number"),
                                          ("0,1,2", "every size must be 1 or more"),
                                          ("1,3,32,32", "give 3 numbers"),
                                          ("3,32", "give 3 numbers")])
def test_bad_input_size_is_one_line(capsys, value, words):
    assert main(["shapes", "lenet5_d2l", "--input-size", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: --input-size")
    assert words in err


def test_alexnet_at_32_is_one_line_without_traceback():
    if "alexnet" not in cnnzoo.list_models():
        pytest.skip("alexnet is not registered")
    run = subprocess.run([sys.executable, "-m", "cnnzoo", "shapes", "alexnet", "--input-size",
                          "3,32,32"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith("cnnzoo: error: input 3x32x32 is too small")
    assert "3x67x67" in lines[0]


@pytest.mark.parametrize("command, size", [("shapes", "1,100000,100000"),
                                           ("summary", "1,100000,100000"),
                                           ("shapes", "3,200000,200000")])
def test_a_size_too_large_for_memory_is_one_line(capsys, command, size):
    # LeNet's Linear layer grows with the input (terabytes at 100,000 px a side); resnet18's
    # weights do not, but its 200,000 px input alone is half a terabyte
    name = "lenet5_d2l" if size.startswith("1,") else "resnet18"
    assert main([command, name, "--input-size", size]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit in memory" in err, err
    assert "try a smaller input size" in err


@pytest.mark.parametrize("argv", [["shapes", "lenet5_d2l", "--batch", str(10 ** 26)],
                                  ["shapes", "lenet5_d2l", "--input-size", f"1,{10 ** 26},28"],
                                  ["summary", "lenet5_d2l", "--input-size", f"{2 ** 63},1,28,28"]])
def test_a_size_beyond_64_bits_is_one_line(capsys, argv):
    # torch cannot even hold such a size (a TypeError, not an allocation failure)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit in memory" in err, err
