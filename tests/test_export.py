"""Export round trips: ONNX through onnxruntime, TorchScript and torch.export files loaded back,
each compared here with the PyTorch model on a batch size the file was not traced with."""

from pathlib import Path

import pytest
import torch

import cnnzoo
from cnnzoo import to_fully_convolutional
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.export import ExportError, export_model, load_for_export

# each writes a 0.2-0.6 GB file: the VGG class is exported here as vgg11_d2l, the bottleneck
# ResNet as resnet50
HEAVY = {"vgg11", "vgg13", "vgg16", "vgg19", "resnet101", "resnet152"}
# fixed-head models built smaller than their default, and the smallest input nin_d2l takes
SMALL_SIZES = {"alexnet": (3, 67, 67), "alexnet_d2l": (1, 65, 65), "vgg11_d2l": (1, 32, 32),
               "nin_d2l": (1, 67, 67)}
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
ONNX_CASES = ["lenet5", "lenet5_d2l", "resnet18_d2l", "googlenet_d2l", "densenet_d2l",
              "mobilenet_v1", "nin_d2l"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(name: str):
    """The model with 10 classes at a small input it accepts, and that input's (C, H, W)."""
    info = cnnzoo.model_info(name)
    size = SMALL_SIZES.get(name)
    if size is None:
        size = info.input_size if info.input_size[1] <= 64 else (info.input_size[0], 32, 32)
    torch.manual_seed(0)
    model, size, _ = load_for_export(name, size, num_classes=10)
    return model, size


def randomize_batch_norm(model):
    # non-trivial running statistics, so that exporting in training mode would show
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "running_var"):  # nn.BatchNorm*d and the from-scratch one
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)


@pytest.mark.parametrize("name", ONNX_CASES)
def test_onnx_round_trip_through_onnxruntime(name, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime")
    onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx")
    model, size = small_model(name)
    randomize_batch_norm(model)
    model.train()  # the export must switch to eval mode, and back
    path = tmp_path / f"{name}.onnx"
    report = export_model(model, path, "onnx", size, optimize=False)
    assert model.training
    assert report.max_abs_diff <= 1e-4 and report.path == path

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (images,) = session.get_inputs()
    assert isinstance(images.shape[0], str) and images.shape[1:] == list(size)  # dynamic batch
    x = torch.randn(5, *size)
    (logits,) = session.run(None, {images.name: x.numpy()})
    with torch.no_grad():
        expected = model.eval()(x)
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("opset", [17, 21])  # lowered by onnx's converter; raised by torch
def test_onnx_file_has_the_opset_asked_for(opset, tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx")
    pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime")
    model, size = small_model("lenet5_d2l")
    report = export_model(model, tmp_path / "m.onnx", "onnx", size, opset=opset)
    imports = {entry.domain: entry.version for entry in onnx.load(str(report.path)).opset_import}
    assert imports[""] == report.opset == opset and report.max_abs_diff <= 1e-4


def test_an_opset_that_cannot_be_written_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx")
    pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime")
    model, size = small_model("lenet5_d2l")
    newest = onnx.defs.onnx_opset_version()
    for opset, message in [(newest + 1, f"choose one from 7 to {newest}"),
                           (3, f"choose one from 7 to {newest}"),
                           (13, "cannot lower this model to opset 13 .*Reshape")]:
        with pytest.raises(ExportError, match=message) as error:
            export_model(model, tmp_path / "m.onnx", "onnx", size, opset=opset)
        assert "\n" not in str(error.value)
    with pytest.raises(ExportError, match="applies to ONNX files only"):
        export_model(model, tmp_path / "m.pt", "torchscript", size, opset=18)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_model_exports_to_torchscript(name, tmp_path):
    if name in HEAVY:
        pytest.skip(f"{name}: a 0.2-0.6 GB file; its code is exported here by a smaller model")
    model, size = small_model(name)
    randomize_batch_norm(model)
    path = tmp_path / "model.pt"
    export_model(model, path, "torchscript", size)

    loaded = torch.jit.load(str(path))
    x = torch.randn(4, *size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_exported_program_round_trip(name, tmp_path):
    model, size = small_model(name)
    path = tmp_path / "model.pt2"
    export_model(model, path, "exported-program", size)

    program = torch.export.load(str(path))
    x = torch.randn(1, *size)  # a single image: the batch axis starts at 1
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model.eval()(x), rtol=1e-4, atol=1e-4)


def test_lenet5_fixed_rbf_prototypes_travel_with_the_file(tmp_path):
    model = cnnzoo.get_model("lenet5")
    path = tmp_path / "lenet5.pt2"
    export_model(model, path, "exported-program")  # lenet5 records its 1x32x32 input
    program = torch.export.load(str(path))
    constants = {**program.state_dict, **program.constants}
    prototypes = [t for t in constants.values() if t.shape == (10, 84)]
    assert any(torch.equal(t, model.classifier.output.prototypes) for t in prototypes)


class BatchSizeBakedIn(torch.nn.Module):
    """Multiplies by the batch size as a Python number, which tracing freezes at 2."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float(x.shape[0])


def test_a_file_that_disagrees_is_refused_and_removed(tmp_path):
    path = tmp_path / "bad.pt"
    with pytest.raises(ExportError, match="disagrees with the model on random .* batches: max abs "
                                          "difference") as error:
        export_model(BatchSizeBakedIn(), path, "torchscript", (1, 2, 2))
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


class NaNWhenTraced(torch.nn.Module):
    """Returns NaN at the traced batch of 2, which tracing freezes; finite logits otherwise."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        logits = self.fc(x.flatten(1))
        return logits * float("nan") if x.shape[0] == 2 else logits


def test_a_file_that_returns_nan_where_the_model_does_not_is_refused(tmp_path):
    with pytest.raises(ExportError, match="batches: max abs difference inf"):
        export_model(NaNWhenTraced(), tmp_path / "nan.pt", "torchscript", (1, 2, 2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("format, name", [("torchscript", "m.pt"),
                                          ("exported-program", "m.pt2")])
def test_a_folder_that_takes_no_files_is_one_line(format, name):
    # /proc takes no new files, even from root
    with pytest.raises(ExportError, match=f"cannot write /proc/{name}") as error:
        export_model(cnnzoo.get_model("lenet5_d2l"), Path("/proc") / name, format, (1, 28, 28))
    assert "\n" not in str(error.value)


def test_bad_requests_give_one_line_errors(tmp_path):
    model = cnnzoo.get_model("lenet5_d2l")
    cases = [
        (dict(format="keras"), "unknown export format"),
        (dict(input_size=(1, 64, 64)), "does not run on a 1x64x64 input"),  # fixed 16x5x5 head
        (dict(path=tmp_path), "is a directory"),
        (dict(path=tmp_path / "no" / "such.onnx"), "no folder"),
        (dict(format="exported-program"), "must end in .pt2"),
    ]
    for overrides, message in cases:
        kwargs = dict(path=tmp_path / "m.pt", format="torchscript", input_size=(1, 28, 28))
        kwargs.update(overrides)
        with pytest.raises(CnnzooError, match=message) as error:
            export_model(model, **kwargs)
        assert "\n" not in str(error.value)
    with pytest.raises(CnnzooError, match="give the input size"):
        export_model(cnnzoo.get_model("resnet18_d2l"), tmp_path / "m.pt", "torchscript")
    # a global-pool model runs at any size its layers leave a map at: the layer, the smallest
    with pytest.raises(CnnzooError, match=r"at layer features\.transition3\.3 .* the smallest "
                                          r"input that works is 1x29x29$"):
        export_model(cnnzoo.get_model("densenet_d2l"), tmp_path / "m.pt", "torchscript",
                     (1, 20, 20))


# --- the command line ---------------------------------------------------------------------------

def test_cli_exports_a_trained_run_to_onnx(tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime")
    from cnnzoo.training import load_run, train

    run_dir = train("lenet5_d2l", data="synthetic", epochs=1, out=tmp_path / "run",
                    device="cpu", train_subset=256, test_subset=64).run_dir
    capsys.readouterr()
    assert main(["export", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run_dir / 'model.onnx'} (ONNX opset " in out and "max abs difference" in out

    run = load_run(run_dir)
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    x = torch.randn(3, *run.config["input_size"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), run.model(x), rtol=1e-4, atol=1e-4)

    # made fully convolutional (trained weights copied), it returns a map of scores
    assert main(["export", str(run_dir), "--fully-convolutional", "--format", "torchscript",
                 "--input-size", "1,60,44"]) == 0
    assert "output N x 10x9x5" in capsys.readouterr().out
    dense = torch.jit.load(str(run_dir / "model-fcn.pt"))
    x = torch.randn(2, 1, 60, 44)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), to_fully_convolutional(run.model)(x), rtol=0, atol=0)

    # the run's fixed head takes only the size it was trained on; names take no run options
    for argv, message in [
        (["export", str(run_dir), "--input-size", "1,64,64"], "was built for 1x28x28"),
        (["export", str(run_dir), "--input-size", "3,28,28"], "takes 1-channel inputs, not 3"),
        (["export", str(run_dir), "--num-classes", "3"], "not to a run directory"),
        (["export", "lenet5_dl2"], "unknown model 'lenet5_dl2'"),
        (["export", str(tmp_path / "absent")], "no run directory"),
        (["export", "lenet5_d2l", "--input-size", "1,x,28"], "not a whole number"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("cnnzoo: error: ") and message in err and err.count("\n") == 1


def test_a_run_evaluated_with_flips_exports_the_flip_average(tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime")
    from cnnzoo.training import load_run, train
    from cnnzoo.training.evaluation import run_logits

    run_dir = train("lenet5_d2l", data="synthetic", epochs=1, out=tmp_path / "run",
                    device="cpu", train_subset=256, test_subset=64, eval_flip=True).run_dir
    capsys.readouterr()
    assert main(["export", str(run_dir)]) == 0
    assert "the file returns the mean of both outputs" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--format", "torchscript"]) == 0

    run = load_run(run_dir)
    x = torch.randn(3, *run.config["input_size"])
    expected = run_logits(run, x)  # what predict and eval compute
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        traced = torch.jit.load(str(run_dir / "model.pt"))(x)
    torch.testing.assert_close(traced, expected, rtol=1e-5, atol=1e-5)


def test_cli_exports_a_model_name_with_options(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "alexnet_d2l", "--format", "torchscript", "--input-size", "1,65,65",
                 "--num-classes", "4"]) == 0
    out = capsys.readouterr().out
    assert "wrote alexnet_d2l.pt (TorchScript" in out and "random weights" in out
    loaded = torch.jit.load(str(tmp_path / "alexnet_d2l.pt"))
    assert loaded(torch.randn(2, 1, 65, 65)).shape == (2, 4)

    assert main(["export", "alexnet_d2l", "--input-size", "1,60,60"]) == 2
    assert "smallest input that works is 1x65x65" in capsys.readouterr().err


def test_a_size_too_large_for_memory_is_one_line(tmp_path, capsys):
    # LeNet's Linear layer grows with the input: terabytes of weights at 100,000 px a side
    assert main(["export", "lenet5_d2l", "--input-size", "1,100000,100000",
                 "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lenet5_d2l for 1x100000x100000 inputs does not fit" in err
    # resnet18's weights fit at any size; its traced batch of 200,000-px inputs does not
    with pytest.raises(CnnzooError, match="cannot make an input of 2x3x200000x200000 on cpu: "
                                          "it does not fit in memory") as error:
        export_model(cnnzoo.get_model("resnet18"), tmp_path / "m.pt", "torchscript",
                     (3, 200_000, 200_000))
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_the_check_allows_float32_rounding_relative_to_the_outputs_size():
    """A deep net's logits of about 3e4 differ by ordinary float32 rounding (2-3e-6 relative)
    between runtimes: within the limit, as torch.testing would judge; a real disagreement of
    the same absolute size on small outputs is not."""
    from cnnzoo.export import _differences

    large = torch.full((3, 10), 3e4)
    absolute, relative, ratio = _differences(large, large * (1 + 3e-6), 1e-4, 1e-5)
    assert absolute == pytest.approx(0.09, rel=0.01) and relative == pytest.approx(3e-6, rel=0.1)
    assert ratio <= 1
    small = torch.full((3, 10), 0.5)
    assert _differences(small, small + 0.09, 1e-4, 1e-5)[2] > 1


def test_a_model_with_large_outputs_exports_and_checks(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    with torch.no_grad():
        model[1].weight.mul_(3e4)  # logits of thousands, as resnet101's at random init
    report = export_model(model, tmp_path / "big.onnx", "onnx", (1, 4, 4))
    assert report.max_abs_diff <= 1e-4 + 1e-5 * 3e4 * 16 and report.rtol == 1e-5
