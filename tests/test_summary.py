"""The summary: seed 000's torchinfo tables line for line, torchinfo and FlopCounterMode across
the registry, the reference numbers of the anchors, receptive fields, and a model left untouched.

Golden tables (tests/fixtures/seed_*.out) are copied from seed 000's text, not from cnnzoo's
output; the seed shows whitespace collapsed, so lines are compared with runs of whitespace
squeezed and the '=' rules reduced to one character.
"""

import csv
import functools
import io
import json
import re
from pathlib import Path

import pytest
import torch
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.inspect.summary import summary

from fixtures.seed_models import seed_alexnet, seed_lenet

FIXTURES = Path(__file__).parent / "fixtures"

# Mult-adds under torchinfo 1.8's convention at batch 1, from /work/shared/ANCHORS.md section 2
# (independent reference builds; torchvision rows as torchinfo counts them).
ANCHOR_MULT_ADDS = {
    "lenet5_d2l": 423_038,
    "lenet5_bn_d2l": 286_786,
    "lenet5": 333_072,
    "alexnet": 1_135_915_368,
    "alexnet_d2l": 938_754_826,
    "vgg11_d2l": 514_020_362,
    "vgg16": 15_483_821_032,
    "nin_d2l": 763_822_966,
    "googlenet_d2l": 276_658_874,
    "resnet18_d2l": 319_121_546,
    "densenet_d2l": 129_404_906,
    "mobilenet_v1": 568_763_240,
    "inception_mnist": 6_049_290,
    "residual_mnist": 2_030_090,
    "resnet18": 1_814_083_944,
    "resnet50": 4_089_238_376,
    "densenet121": 2_834_246_312,
    "googlenet": 1_498_391_752,
}
# The lenet5 anchor credits 840 more mult-adds than torchinfo counts for the registered model
# (84 x 10: the RBF output layer); torchinfo and cnnzoo agree with each other on 332,232.
ANCHOR_DISAGREES = {"lenet5"}

# torchvision's documented "GFLOPS" are multiply-accumulates of convolutions and linear layers
# in billions (torchvision model docs): cnnzoo's MACs must round to them.
TORCHVISION_GMACS = {"vgg11": 7.609, "vgg16": 15.47, "resnet18": 1.814, "resnet34": 3.664,
                     "resnet50": 4.089, "densenet121": 2.834, "googlenet": 1.498}

# FlopCounterMode operations that are convolutions and matrix products
PRODUCT_OPS = ("convolution", "mm", "addmm", "bmm", "baddbmm")


def zero_model(name: str, device: str = "cpu") -> nn.Module:
    """A registered model built on the meta device (no memory, no initialisation) and, for the
    CPU, given zeros for every parameter and buffer: counts depend on shapes only, and zeros run
    fast (uninitialised memory can hold denormals, which slow a CPU down a hundredfold)."""
    with torch.device("meta"):
        model = cnnzoo.get_model(name)
    if device == "meta":
        return model
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.zero_()
    return model


@functools.lru_cache(maxsize=None)
def seed_summary(which: str, batch: int = 10):
    """Seed 000's model summarized at its table's input size (cached: several tests read it)."""
    if which == "lenet":
        return summary(seed_lenet(), input_size=(batch, 1, 32, 32))
    return summary(seed_alexnet(), input_size=(batch, 3, 227, 227))


def normalized(text: str) -> list[str]:
    lines = []
    for line in text.strip().splitlines():
        line = re.sub(r"\s+", " ", line).strip()
        lines.append("=" if set(line) == {"="} else line)
    return lines


@pytest.mark.parametrize("which", ["lenet", "alexnet"])
def test_seed_000_tables(which):
    golden = (FIXTURES / f"seed_{which}.out").read_text()
    assert normalized(str(seed_summary(which))) == normalized(golden)


def test_seed_tables_have_torchinfo_widths():
    lines = str(seed_summary("lenet")).splitlines()
    assert lines[0] == "=" * 90
    assert lines[4] == f"{'├─Conv2d: 1-1':<40} {'[10, 6, 28, 28]':<25} 156"
    assert "Units." not in "\n".join(lines)


def _column_sums(result, depth):
    columns = ("num_params", "mult_adds", "macs", "weights")
    table = result.table("csv", columns=columns, depth=depth)
    sums = dict.fromkeys(columns, 0)
    for row in csv.DictReader(io.StringIO(table)):
        for key in sums:
            cell = row[key].strip("()").replace(",", "")  # "(1,234)" is a frozen layer
            if cell and cell != "recursive":
                sums[key] += int(cell)
    return sums


@pytest.mark.parametrize("name", ["seed_alexnet", "resnet18_d2l", "googlenet_d2l",
                                  "densenet_d2l"])
def test_column_sums_equal_totals(name):
    if name == "seed_alexnet":
        model, size = seed_alexnet(), (2, 3, 227, 227)
    elif name in cnnzoo.list_models():
        model, size = cnnzoo.get_model(name), (1, *cnnzoo.model_info(name).input_size)
    else:
        pytest.skip(f"{name} is not registered")
    frozen = list(model.parameters())[:2]  # shown in parentheses, and still summed
    for param in frozen:
        param.requires_grad_(False)
    result = summary(model, input_size=size)
    assert result.non_trainable_params == sum(p.numel() for p in frozen)
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.endswith("bias"))
    for depth in (0, 1, 2, 3, 4):
        sums = _column_sums(result, depth)
        assert sums == {"num_params": result.total_params, "mult_adds": result.total_mult_adds,
                        "macs": result.total_macs, "weights": weights}, depth


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_agrees_with_torchinfo_and_flop_counter(name):
    # On the meta device both tools see every shape without computing anything; the cheaper
    # models then run for real on the CPU too, to the same numbers.
    size = (1, *cnnzoo.model_info(name).input_size)
    model = zero_model(name, "meta")
    with FlopCounterMode(display=False) as counter:
        reference = torchinfo.summary(model, input_size=size, verbose=0, device="meta")
    result = summary(model, input_size=size)
    assert result.total_params == reference.total_params
    assert result.trainable_params == reference.trainable_params
    assert result.total_mult_adds == reference.total_mult_adds
    products = sum(count for op, count in counter.get_flop_counts()["Global"].items()
                   if str(op).split(".")[1] in PRODUCT_OPS)
    assert result.total_flops == products == counter.get_total_flops()
    if name in ANCHOR_MULT_ADDS and name not in ANCHOR_DISAGREES:
        assert result.total_mult_adds == ANCHOR_MULT_ADDS[name]
    if name in TORCHVISION_GMACS:
        digits = len(str(TORCHVISION_GMACS[name]).split(".")[1])
        assert round(result.total_macs / 1e9, digits) == TORCHVISION_GMACS[name]
    if result.total_macs < 1.2e9:
        real = summary(zero_model(name), input_size=size)
        assert (real.total_params, real.total_mult_adds, real.total_macs) == (
            result.total_params, result.total_mult_adds, result.total_macs)
        assert [(r.name, r.output_size, r.receptive_field, r.jump) for r in real.layers] == [
            (r.name, r.output_size, r.receptive_field, r.jump) for r in result.layers]


def test_lenet5_mult_adds_leave_out_the_fixed_rbf_prototypes():
    # The anchor table's 333,072 counts 840 = 84 x 10 for the RBF output layer, as if its
    # prototypes were parameters. In cnnzoo they are a buffer (the paper's 60,000 trainable
    # parameters), and torchinfo's convention counts mult-adds only through parameters.
    result = summary(cnnzoo.get_model("lenet5"), input_size=(1, 1, 32, 32))
    assert result.total_params == 60_000
    assert result.total_mult_adds == ANCHOR_MULT_ADDS["lenet5"] - 84 * 10


def test_seed_alexnet_anchor_and_macs():
    result = seed_summary("alexnet")
    assert result.total_params == 62_378_344
    assert result.total_mult_adds == 11_359_153_680  # ANCHORS: seed AlexNet at batch 10
    assert seed_summary("lenet").total_mult_adds == 4_221_880
    # MACs leave biases out: conv1 alone is 10 * 96*55*55 outputs * 3*11*11 weights
    conv1 = next(row for row in result.layers if row.name == "conv1")
    assert conv1.macs == 10 * 96 * 55 * 55 * 3 * 11 * 11
    assert result.total_flops == 2 * result.total_macs


def _field(result, name):
    row = next(row for row in result.layers if row.name == name)
    return row.receptive_field, row.jump


def test_receptive_field_of_seed_alexnet():
    # ANCHORS: AlexNet (seed 000) after pool5: 195 px, jump 32
    result = seed_summary("alexnet")
    assert _field(result, "conv1") == ((11, 11), (4, 4))
    assert _field(result, "pool3") == ((195, 195), (32, 32))


def test_receptive_field_of_vgg16():
    if "vgg16" not in cnnzoo.list_models():
        pytest.skip("vgg16 is not registered")
    # ANCHORS: VGG-16 after pool5: 212 px, jump 32
    result = summary(zero_model("vgg16", "meta"), input_size=(1, 3, 224, 224))
    pools = [row for row in result.layers if row.class_name == "MaxPool2d"]
    assert (pools[-1].receptive_field, pools[-1].jump) == ((212, 212), (32, 32))


class Branches(nn.Module):
    """An Inception-style concatenation and a residual addition with known fields."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, stride=2)                 # field 3, jump 2
        self.narrow = nn.Conv2d(4, 4, 1)                           # 3
        self.wide = nn.Conv2d(4, 4, 5, padding=2)                  # 3 + 4*2 = 11
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)           # 3 + 2*2 = 7
        self.body = nn.Sequential(nn.Conv2d(12, 12, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(12, 12, 3, padding=1, dilation=1))

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([self.narrow(x), self.wide(x), self.pool(x)], dim=1)  # widest: 11
        return torch.relu(x + self.body(x))  # body: 11 + 2*2 + 2*2 = 19; the sum sees 19


def test_receptive_field_through_branches():
    result = summary(Branches(), input_size=(1, 1, 33, 33), depth=5)
    assert _field(result, "narrow") == ((3, 3), (2, 2))
    assert _field(result, "wide") == ((11, 11), (2, 2))
    assert _field(result, "pool") == ((7, 7), (2, 2))
    assert _field(result, "body") == ((19, 19), (2, 2))
    assert _field(result, "") == ((19, 19), (2, 2))


def test_dilation_and_non_square_windows():
    model = nn.Sequential(nn.Conv2d(1, 1, (1, 3), dilation=(1, 2)),
                          nn.Conv2d(1, 1, 3, stride=(2, 1)), nn.AvgPool2d(2))
    result = summary(model, input_size=(1, 1, 16, 16))
    assert _field(result, "0") == ((1, 5), (1, 1))
    assert _field(result, "1") == ((3, 7), (2, 1))
    assert _field(result, "2") == ((5, 8), (4, 2))


def _widest_dependence(model, size, axis):
    """The most input pixels along ``axis`` that any one output position depends on, found by
    autograd: the extent of the nonzero gradient of each output position in turn."""
    x = torch.ones(1, 1, size, size, requires_grad=True)
    out = model(x)
    widest = 0
    for position in range(out.shape[2 + axis]):
        index = (0, 0, position, 0) if axis == 0 else (0, 0, 0, position)
        grad, = torch.autograd.grad(out[index], x, retain_graph=True)
        seen = (grad[0, 0] != 0).any(dim=1 - axis).nonzero().flatten()
        widest = max(widest, int(seen.max() - seen.min() + 1))
    return widest


@pytest.mark.parametrize("in_size, out_size", [(5, 3), (14, 5), (12, 4)])
def test_adaptive_pool_field_is_its_widest_window(in_size, out_size):
    # adaptive windows are uneven where the output size does not divide the input (5 -> 3:
    # widths 2, 3, 2), so the widest is not ceil(in / out); a layer after the pool gets an
    # upper bound (its windows' spans vary too)
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d((out_size, 1)),
                          nn.Conv2d(1, 1, (2, 1)))
    for conv in (model[0], model[2]):
        nn.init.constant_(conv.weight, 1.0)
    size = in_size + 2
    result = summary(model, input_size=(1, 1, size, size))
    assert _field(result, "1")[0][0] == _widest_dependence(model[:2], size, axis=0)
    assert _field(result, "2")[0][0] >= _widest_dependence(model, size, axis=0)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 6 * 6, 4))

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_model_mode_device_and_statistics_unchanged(mode):
    model = WithBatchNorm().train()
    model.head.eval()  # a mixed state must come back as it was, module by module
    with torch.no_grad():
        model.bn.running_mean.uniform_()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    result = summary(model, input_size=(4, 3, 8, 8), mode=mode)
    assert result.mode == mode
    assert [m.training for m in model.modules()] == flags
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.bn.num_batches_tracked.item() == 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0


def test_other_dtype_or_device_runs_on_a_copy():
    model = WithBatchNorm()
    result = summary(model, input_size=(2, 3, 8, 8), dtype=torch.float64)
    assert result.dtype == "float64" and result.params_bytes == 8 * result.total_params
    assert any("copy" in note for note in result.notes)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    shapes_only = summary(model, input_size=(2, 3, 8, 8), device="meta")
    assert shapes_only.device == "meta" and shapes_only.total_params == result.total_params
    assert all(p.device.type == "cpu" for p in model.parameters())


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
        self.fc = nn.Linear(10, 2)  # wrong width: the features give 4*6*6

    def forward(self, x):
        return self.fc(self.features(x))


def test_failing_forward_is_one_line_and_removes_hooks():
    model = Broken().train()
    with pytest.raises(CnnzooError) as caught:
        summary(model, input_size=(1, 1, 8, 8))
    message = str(caught.value)
    assert "\n" not in message
    assert "layer fc (Linear)" in message and "[1, 144]" in message
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    assert all(m.training for m in model.modules())


def test_shared_parameters_counted_once_and_frozen_apart():
    model = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 3))
    model[2].weight = model[0].weight  # tied
    model[3].requires_grad_(False)
    result = summary(model, input_size=(1, 6))
    unique = 36 + 6 + 6 + 18 + 3
    assert result.total_params == unique == sum(p.numel() for p in model.parameters())
    assert result.non_trainable_params == 21 and result.trainable_params == unique - 21
    assert "(21)" in str(result)  # torchinfo shows a frozen layer's count in parentheses


def test_training_memory_by_optimizer_and_dtype():
    model = nn.Sequential(nn.Linear(100, 50), nn.Linear(50, 10))
    params = 100 * 50 + 50 + 50 * 10 + 10
    for optimizer, copies in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        memory = summary(model, input_size=(8, 100), optimizer=optimizer).memory
        assert memory.parameters == memory.gradients == 4 * params
        assert memory.optimizer_state == copies * 4 * params
    # a linear layer keeps its input for the weight gradient: 8x100 and 8x50 floats
    memory = summary(model, input_size=(8, 100)).memory
    assert memory.activations == 4 * (8 * 100 + 8 * 50)
    assert memory.total == memory.parameters + memory.gradients + memory.activations
    double = summary(model, input_size=(8, 100), dtype=torch.float64).memory
    assert double.parameters == 8 * params and double.activations == 2 * memory.activations
    frozen = summary(nn.Sequential(nn.Linear(100, 10)).requires_grad_(False), input_size=(8, 100))
    assert frozen.memory.gradients == 0 and frozen.memory.activations == 0


def test_measured_peak_on_cpu_says_it_cannot():
    memory = summary(WithBatchNorm(), input_size=(2, 3, 8, 8), measure=True).memory
    assert memory.measured_peak is None and "cannot be measured on cpu" in memory.measured_note


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measured_peak_on_cuda():
    model = WithBatchNorm()
    result = summary(model, input_size=(64, 3, 8, 8), device="cuda", measure=True,
                     optimizer="adam")
    assert result.memory.measured_peak > result.memory.parameters
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measured_peak_of_steps_that_cannot_run_is_a_note():
    # at batch 1, BatchNorm after a global pool cannot run in training mode: the estimate
    # falls back to eval mode, the measurement says why there is none
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4))
    memory = summary(model, input_size=(1, 3, 8, 8), device="cuda", measure=True).memory
    assert memory.measured_peak is None
    assert "cannot be measured" in memory.measured_note
    assert "more than 1 value per channel" in memory.measured_note


def test_vgg16_weights_and_activations_as_seed_002():
    if "vgg16" not in cnnzoo.list_models():
        pytest.skip("vgg16 is not registered")
    result = summary(zero_model("vgg16", "meta"), input_size=(1, 3, 224, 224))
    table = io.StringIO(result.table("csv", columns=("output_size", "activations", "weights")))
    rows = [row for row in csv.DictReader(table) if row["weights"]]
    weights = [int(row["weights"]) for row in rows]
    # seed 002: conv weights 64*3*3*3 = 1728, 64*3*3*64 = 36864, ...; FC 7*7*512*4096 etc.
    assert weights[:6] == [1_728, 36_864, 73_728, 147_456, 294_912, 589_824]
    assert weights[-3:] == [102_760_448, 16_777_216, 4_096_000]
    assert int(rows[0]["activations"]) == 224 * 224 * 64
    assert int(rows[2]["activations"]) == 112 * 112 * 128


def test_summary_command_formats(capsys):
    name = "lenet5_d2l"
    if name not in cnnzoo.list_models():
        pytest.skip(f"{name} is not registered")
    assert main(["summary", name]) == 0
    out = capsys.readouterr().out
    assert "Total mult-adds (M): 0.42" in out and "Units." not in out
    assert "Training memory" in out and "FLOPs (2 x MACs)" in out
    assert main(["summary", name, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 61_706 and data["total_mult_adds"] == 423_038
    assert data["total_flops"] == 2 * data["total_macs"]
    assert main(["summary", name, "--format", "markdown", "--columns",
                 "output_size,receptive_field,jump"]) == 0
    assert "| Layer | Output Shape | Receptive field | Jump |" in capsys.readouterr().out
    assert main(["summary", name, "--format", "csv", "--depth", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name,class,depth,depth_index,output_size,num_params"
    assert all(int(line.split(",")[2]) <= 1 for line in lines[1:])


@pytest.mark.parametrize("argv, words", [
    (["--input-size", "3,x,32"], "'x' is not a whole number"),
    (["--input-size", "0,1,2"], "every size must be 1 or more"),
    (["--input-size", "1,1,1,28,28"], "give 3 or 4 numbers"),
    (["--columns", "output_size,nope"], "unknown column nope"),
    (["--depth", "-1"], "--depth must be 0 or more"),
])
def test_summary_command_bad_values_are_one_line(capsys, argv, words):
    assert main(["summary", "lenet5_d2l", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_needs_exactly_one_input():
    with pytest.raises(CnnzooError, match="exactly one"):
        summary(seed_lenet())
    result = summary(seed_lenet(), input_data=torch.rand(10, 1, 32, 32))
    assert result.total_mult_adds == 4_221_880
