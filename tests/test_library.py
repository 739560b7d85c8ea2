"""cnnzoo as a Python library: public names that stay what they are, any model and any data
trained from Python, errors that name parameters, results that show themselves."""

import importlib
import json
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed "
                                   "(apt-get install dataset-fashion-mnist)")
TINY = dict(data="synthetic", train_subset=256, test_subset=64, batch_size=64, device="cpu",
            progress=False)


def every_module():
    """The name of every module of the package but the ``__main__``s (which run the program)."""
    names = ["cnnzoo"]
    for info in pkgutil.walk_packages(cnnzoo.__path__, "cnnzoo."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_every_public_name_stays_what_all_promises_after_every_module_is_imported():
    promised = {name: getattr(cnnzoo, name) for name in cnnzoo.__all__}
    for name in every_module():
        importlib.import_module(name)
    for name in cnnzoo.__all__:
        value = getattr(cnnzoo, name)
        assert value is promised[name], name
        assert not isinstance(value, types.ModuleType), name
        # and no name could become a module: none is also a submodule's
        assert importlib.util.find_spec(f"cnnzoo.{name}") is None, name
    assert callable(cnnzoo.train) and cnnzoo.train.__module__ == "cnnzoo.training.loop"


def test_train_is_the_function_whatever_a_fresh_interpreter_imports_first():
    code = ("import cnnzoo\n"
            "from cnnzoo.show import draw_architecture\n"
            "import cnnzoo.training.rundir\n"
            "from cnnzoo.cli.train import run\n"
            "assert callable(cnnzoo.train), type(cnnzoo.train)\n"
            "import cnnzoo.training\n"
            "assert callable(cnnzoo.train), type(cnnzoo.train)\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


class SmallNet(nn.Module):
    """A student's own convolutional net, nothing of cnnzoo's in it."""

    def __init__(self, classes: int = 10, channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))

    def forward(self, x):
        return self.body(x)


class FlatNet(nn.Module):
    """Two conv-pool stages and a linear head sized for 28x28 images."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 10))

    def forward(self, x):
        return self.head(self.features(x))


@needs_fashion
def test_a_users_own_module_trains_on_fashion_mnist_from_python(tmp_path):
    net = FlatNet()
    result = cnnzoo.train(net, recipe="modern", epochs=2, train_subset=3000, test_subset=1000,
                          device="cpu", out=tmp_path / "run", progress=False)
    assert result.model is net and result.model_name == "FlatNet"
    assert result.final["test_acc"] > 0.65  # chance is 0.1
    # the module is handed back as it came: its own pooling classes, its trained weights
    assert type(net.features[2]) is nn.AvgPool2d
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(net.cpu().eval()(x),
                           cnnzoo.load_run(result.run_dir, model=FlatNet()).model(x))
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["model"] == "FlatNet" and config["model_kind"] == "module"
    with pytest.raises(CnnzooError, match="model of your own"):
        cnnzoo.load_run(result.run_dir)


def test_tensors_and_a_builder_train_and_a_misfit_is_refused_before_training(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(240) % 3
    images = (labels.view(-1, 1, 1).float() * 0.4 + 0.1
              + 0.05 * torch.rand(240, 12, 12, generator=generator))  # floats in [0, 1]
    data = ((images[:180], labels[:180]), (images[180:].numpy(), labels[180:].numpy()))
    def build(num_classes, in_channels):  # the data decides both
        return SmallNet(num_classes, in_channels)

    result = cnnzoo.train(build, data=data, recipe="modern", epochs=3, batch_size=30,
                          device="cpu", out=tmp_path / "run", progress=False)
    assert isinstance(result.model, SmallNet) and result.model.body[-1].out_features == 3
    assert result.final["test_acc"] == 1.0
    assert result.config["data"] == "in-memory" and result.config["input_size"] == [1, 12, 12]
    with pytest.raises(CnnzooError, match="takes 3-channel images .* the data has 1 channels"):
        cnnzoo.train(SmallNet(channels=3), data=data, epochs=1, out=tmp_path / "c",
                     progress=False)
    with pytest.raises(CnnzooError, match="gives 10 outputs per image, the data has 3 classes"):
        cnnzoo.train(SmallNet(), data=data, epochs=1, out=tmp_path / "k", progress=False)
    for folder in ("c", "k"):  # refused before anything was written
        assert not (tmp_path / folder).exists()


@pytest.fixture
def registry_kept():
    """The registry as it was after the test: what a test registers is taken out again."""
    from cnnzoo.models import registry

    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


def test_a_model_registered_by_name_alone_trains_and_reads_back(tmp_path, registry_kept):
    @cnnzoo.register_model("small_net_of_a_test")
    def small_net(num_classes=10, in_channels=1, width=8):
        net = SmallNet(num_classes, in_channels)
        return net

    info = cnnzoo.model_info("small_net_of_a_test")
    assert info.source == "user" and info.input_size is None and not info.fixed_head
    result = cnnzoo.train("small_net_of_a_test", epochs=1, out=tmp_path / "run",
                          model_args={"width": 4}, **TINY)
    model, config, history = cnnzoo.load_run(result.run_dir)
    assert isinstance(model, SmallNet) and config["model_args"] == {"width": 4}
    assert [row["epoch"] for row in history] == [1]
    # the same definition run again (a notebook cell) replaces its entry; another refuses
    cnnzoo.register_model("small_net_of_a_test")(small_net)
    with pytest.raises(ValueError, match="registered twice"):
        cnnzoo.register_model("small_net_of_a_test")(SmallNet)


@pytest.mark.parametrize("kwargs, named", [
    (dict(epochs=1.5), "epochs=1.5"), (dict(lr="0.1"), "lr='0.1'"), (dict(seed=True), "seed="),
    (dict(batch_size=64.0), "batch_size=64.0"), (dict(batch_size=True), "batch_size=True"),
    (dict(train_subset=-1), "train_subset=-1"), (dict(train_subset=0), "train_subset=0"),
    (dict(amp="yes"), "amp='yes'"), (dict(weight_decay="x"), "weight_decay='x'"),
    (dict(momentun=0.9), "no parameter 'momentun'"), (dict(progress="on"), "progress='on'"),
    (dict(reporter=object()), "reporter=object"), (dict(out=3), "out=3"),
    (dict(model=3), "model=int"), (dict(data=[1, 2, 3]), "data=list"),
])
def test_bad_parameters_are_one_line_errors_that_name_them(tmp_path, kwargs, named):
    kwargs = dict(dict(TINY, out=tmp_path / "run", epochs=1), **kwargs)
    model = kwargs.pop("model", "lenet5_d2l")
    with pytest.raises(CnnzooError) as error:
        cnnzoo.train(model, **kwargs)
    assert named in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_what_contradicts_the_run_naming_the_parameter(tmp_path):
    run = cnnzoo.train("lenet5_d2l", epochs=1, out=tmp_path / "run", **TINY).run_dir
    for kwargs, named in ((dict(lr=0.1), "lr="), (dict(batch_size=32), "batch_size="),
                          (dict(recipe="modern"), "recipe="), (dict(amp=True), "amp="),
                          (dict(model_args={"x": 1}), "model_args="),
                          (dict(erasing=0.5), "erasing="), (dict(seed=3), "seed=")):
        with pytest.raises(CnnzooError, match=f"leave out {named}") as error:
            cnnzoo.train(resume=run, epochs=2, progress=False, **kwargs)
        assert "only epochs=, device= and data_dir= may be given" in str(error.value)
    with pytest.raises(CnnzooError, match="continues the run of lenet5_d2l, not alexnet_d2l"):
        cnnzoo.train("alexnet_d2l", resume=run, epochs=2, progress=False)
    assert [row["epoch"] for row in cnnzoo.load_run(run).history] == [1]  # nothing ran
    # what may change, does; the run's own names given again are no conflict
    resumed = cnnzoo.train("lenet5_d2l", data="synthetic", recipe="d2l", resume=run, epochs=2,
                           device="cpu", progress=False)
    assert [row["epoch"] for row in resumed.history] == [1, 2]


def test_the_results_show_themselves_as_tables(tmp_path):
    result = cnnzoo.train("lenet5_d2l", epochs=1, out=tmp_path / "run", **TINY)
    text = repr(result)
    assert text.startswith("TrainResult(lenet5_d2l on synthetic, 1 epoch: loss ")
    assert len(text) < 300 and "<table>" in result._repr_html_()
    evaluation = cnnzoo.evaluate(result.run_dir, device="cpu", plot=False)
    assert repr(evaluation).startswith("EvalResult(accuracy ") and len(repr(evaluation)) < 200
    assert evaluation._repr_html_().count("<tr>") == 1 + 10  # header and one row per class
    summary = cnnzoo.summary(result.model, input_size=(1, 1, 28, 28))
    assert repr(summary) == str(summary) and "Total params: 61,706" in repr(summary)
    assert "<table>" in summary._repr_html_() and "61,706" in summary._repr_html_()
    trace = cnnzoo.trace_shapes(result.model, (1, 28, 28))
    assert repr(trace).splitlines()[0] == "input shape: [1, 1, 28, 28]" and len(trace) > 5
    assert "output shape: [1, 6, 28, 28]" in repr(trace)
    assert "[1, 10]" in trace._repr_html_()
    run = cnnzoo.load_run(result.run_dir)
    assert repr(run).startswith("Run(") and "lenet5_d2l on synthetic, 1 of 1 epochs" in repr(run)


def test_importing_and_drawing_change_no_matplotlib_setting():
    # rcParams' values read as stored: reading "backend" the usual way would resolve it,
    # importing pyplot
    code = ("import sys, matplotlib\n"
            "def settings():\n"
            "    rc = matplotlib.rcParams\n"
            "    return {k: dict.__getitem__(rc, k) for k in rc}\n"
            "before = settings()\n"
            "import cnnzoo, cnnzoo.show, cnnzoo.plots\n"
            "import torch\n"
            "fig = cnnzoo.show.draw_architecture(cnnzoo.get_model('lenet5_d2l'), (1, 28, 28))\n"
            "png = fig._repr_png_()\n"
            "assert png.startswith(b'\\x89PNG'), png[:8]\n"
            "assert 'matplotlib.pyplot' not in sys.modules\n"
            "after = settings()\n"
            "changed = [k for k in before if before[k] != after[k]]\n"
            "assert not changed, changed\n"
            "assert matplotlib.rcParams._get_backend_or_none() is None\n"
            "print('ok')\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "MPLBACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_the_command_line_words_library_messages_as_its_flags():
    from cnnzoo.cli import as_flags, build_parser

    build_parser()
    assert as_flags("try a lower learning rate, e.g. lr=0.09") == \
        "try a lower learning rate, e.g. --lr 0.09"
    assert as_flags("resume= continues a run; leave out batch_size=, fast= (only epochs=)") == \
        "--resume continues a run; leave out --batch-size, --fast (only --epochs)"
    assert as_flags("fast=True chooses; leave out amp=True channels_last=True") == \
        "--fast chooses; leave out --amp --channels-last"
    assert as_flags("crop_padding=30 is too large; train_subset=") == \
        "--set crop_padding=30 is too large; --subset"
    assert as_flags("continue it with resume='/tmp/a b'") == "continue it with --resume '/tmp/a b'"
    assert as_flags("continue it with resume='/tmp/ab'") == "continue it with --resume /tmp/ab"
    # words that are not parameters, --set's own text and what the user typed, quoted back,
    # stay as they are; a colon after a parameter ends it
    assert as_flags("lr 0.9, x=1, --set erasing=0, /data/a=b") == \
        "lr 0.9, x=1, --set erasing=0, /data/a=b"
    assert as_flags("--set 'lr=abc': 'abc' is not a number") == \
        "--set 'lr=abc': 'abc' is not a number"
    assert as_flags("fast=True: timing 2 sets") == "--fast: timing 2 sets"
    assert as_flags("needs data_dir=: a directory") == "needs --data-dir: a directory"


def test_messages_are_worded_with_the_running_commands_flags(capsys):
    from cnnzoo.cli import main

    # optimizer is a recipe field of train's --set; --optimizer is a flag of summary's only
    assert main(["train", "--set", "optimizer=foo", "--data", "synthetic", "--device",
                 "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--set optimizer=foo" in err and "--optimizer" not in err, err


def test_resume_on_the_command_line_takes_the_runs_own_seed_and_names_model_arg(tmp_path,
                                                                                capsys):
    from cnnzoo.cli import main

    run = tmp_path / "run"
    tiny = ["--data", "synthetic", "--subset", "128", "--device", "cpu"]
    assert main(["train", "lenet5_d2l", *tiny, "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "1", "--model-arg",
                 "width=64"]) == 2
    assert "leave out --model-arg" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2", "--seed", "0",
                 "--device", "cpu"]) == 0


def test_data_given_as_arrays_becomes_a_data_set_or_one_line():
    from cnnzoo.data import DataSet

    images = np.zeros((4, 8, 8), dtype=np.uint8)
    data = DataSet.from_tensors(images, np.array([0, 1, 2, 1]))
    assert data.image_size == (1, 8, 8) and data.classes == ("0", "1", "2")
    for bad, words in (((np.full((2, 8, 8), 2.0), [0, 1]), "float images must lie in"),
                       ((images, [0.5] * 4), "labels must be whole numbers"),
                       ((images, [0, 1]), "4 images but 2 labels"),
                       ((np.zeros((4, 8)), [0] * 4), "images must be")):
        with pytest.raises(CnnzooError, match=words):
            DataSet.from_tensors(*bad)


def test_a_run_on_arrays_is_evaluated_on_arrays_given_again(tmp_path):
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(120) % 2
    images = (labels.view(-1, 1, 1).float() * 0.6 + 0.2
              + 0.05 * torch.rand(120, 10, 10, generator=generator))
    test = (images[90:], labels[90:])
    result = cnnzoo.train(lambda num_classes, in_channels: SmallNet(num_classes, in_channels),
                          data=((images[:90], labels[:90]), test), recipe="modern", epochs=2,
                          batch_size=30, device="cpu", out=tmp_path / "run", progress=False)
    run = cnnzoo.load_run(result.run_dir, model=SmallNet(2, 1))
    with pytest.raises(CnnzooError, match="given from Python"):
        cnnzoo.evaluate(run, device="cpu", plot=False)
    evaluation = cnnzoo.evaluate(run, data=test, device="cpu", plot=False)
    assert evaluation.num_examples == 30
    assert evaluation.accuracy == pytest.approx(result.final["test_acc"])


def test_numpy_numbers_are_taken_as_python_numbers(tmp_path):
    result = cnnzoo.train("lenet5_d2l", epochs=np.int64(1), lr=np.float32(0.1),
                          weight_decay=np.float32(1e-4), out=tmp_path / "run",
                          **dict(TINY, train_subset=np.int64(128)))
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["recipe"]["epochs"] == 1 and config["train_subset"] == 128
    assert type(result.config["recipe"]["lr"]) is float


def test_a_module_given_keeps_its_weights_unless_told_to_initialise(tmp_path):
    net = SmallNet(10, 1)
    before = net.body[0].weight.detach().clone()
    cnnzoo.train(net, lr=1e-12, epochs=1, out=tmp_path / "kept", **TINY)
    assert torch.allclose(net.body[0].weight.detach().cpu(), before, atol=1e-6)
    cnnzoo.train(net, lr=1e-12, epochs=1, init="xavier", out=tmp_path / "xavier", **TINY)
    assert not torch.allclose(net.body[0].weight.detach().cpu(), before, atol=1e-3)


def test_builders_get_only_the_data_arguments_they_take(tmp_path, registry_kept):
    def plain():  # takes nothing: the output check says whether it fits
        return SmallNet(10, 1)

    def torchvision_style(*, weights=None, **kwargs):  # passes num_classes on, no in_channels
        assert "in_channels" not in kwargs
        return SmallNet(kwargs["num_classes"], 1)

    cnnzoo.register_model("plain_builder_of_a_test")(plain)
    assert cnnzoo.train("plain_builder_of_a_test", epochs=1, out=tmp_path / "a",
                        **TINY).final["epoch"] == 1
    assert cnnzoo.train(torchvision_style, epochs=1, out=tmp_path / "b", **TINY).final
    with pytest.raises(CnnzooError, match=r"broken\(num_classes=10\) failed: no good"):
        def broken(num_classes):
            raise ValueError("no good")

        cnnzoo.train(broken, epochs=1, out=tmp_path / "c", **TINY)


def test_a_reporter_without_every_method_is_refused_before_training(tmp_path):
    class Duck:
        def start(self, info): ...
        def epoch_start(self, epoch, epochs, batches): ...
        def step(self): ...
        def epoch_end(self, row): ...
        def note(self, text): ...
        def warn(self, text): ...

    with pytest.raises(CnnzooError, match="reporter=Duck"):
        cnnzoo.train("lenet5_d2l", epochs=1, out=tmp_path / "run", reporter=Duck(),
                     **dict(TINY, progress=None))
    assert not (tmp_path / "run").exists()


def test_the_trained_model_has_torchs_own_pooling_and_exports(tmp_path):
    result = cnnzoo.train("lenet5_d2l", epochs=1, out=tmp_path / "run", **TINY)
    assert {type(m) for m in result.model.modules()} >= {nn.AvgPool2d}
    assert not any(type(m).__name__ == "TiledAvgPool2d" for m in result.model.modules())
    report = cnnzoo.export_model(result.model.cpu(), tmp_path / "m.pt", "torchscript",
                                 (1, 28, 28))
    assert report.path.exists()


def test_predict_and_evaluate_take_a_run_and_refuse_odd_arguments(tmp_path):
    run_dir = cnnzoo.train("lenet5_d2l", epochs=1, out=tmp_path / "run", **TINY).run_dir
    run = cnnzoo.load_run(run_dir)
    from PIL import Image

    Image.new("L", (28, 28), 200).save(tmp_path / "x.png")
    assert len(cnnzoo.predict(run, [tmp_path / "x.png"], device="cpu")) == 1
    for call, words in ((lambda: cnnzoo.predict(run, torch.zeros(2, 1, 28, 28)), "images="),
                        (lambda: cnnzoo.predict(run, [tmp_path / "x.png"], topk="3"), "topk="),
                        (lambda: cnnzoo.evaluate(run, batch_size=0), "batch_size=0"),
                        (lambda: cnnzoo.load_run(3), "folder=3")):
        with pytest.raises(CnnzooError, match=words):
            call()
