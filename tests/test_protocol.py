"""A training tool's conventions: the validation split and the best epoch's weights, run files
(``--config``, ``--print-config``), TensorBoard's event files, the learning rate and gradient
norm in metrics.csv, ``deterministic`` and ``target_acc``; each end to end on tiny data."""

import json
import math
import os

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cnnzoo import compare_runs
from cnnzoo.cli import main
from cnnzoo.data import DataSet
from cnnzoo.errors import CnnzooError
from cnnzoo.training import evaluate, load_run, read_run_file, run_config, train
from cnnzoo.training.determinism import nondeterministic_operation
from cnnzoo.training.evaluation import used_images
from cnnzoo.training.rundir import read_metrics

TINY = dict(data="synthetic", train_subset=400, test_subset=100, batch_size=32, device="cpu",
            progress=False)
CHOICES = ("model", "recipe", "data", "data_dir", "seed", "device", "train_subset",
           "test_subset", "val", "target_acc", "deterministic", "tensorboard", "model_args",
           "compile", "amp", "channels_last", "cuda_graphs", "fast")


def numbered(count: int, classes: int) -> DataSet:
    """A data set whose every image holds its own index (its first two pixels), so that
    which images went where can be read back."""
    images = torch.zeros(count, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(count) // 256
    images[:, 0, 0, 1] = torch.arange(count) % 256
    labels = torch.arange(count) * 7 % classes  # classes of unequal sizes at some counts
    labels[: count // 3] = 0  # a class three times the others: stratification shows
    return DataSet.from_tensors(images, labels, classes=[str(i) for i in range(classes)])


def indices(dataset: DataSet) -> set[int]:
    return set((dataset.images[:, 0, 0, 0].long() * 256 + dataset.images[:, 0, 0, 1]).tolist())


def test_the_hold_out_is_disjoint_stratified_seeded_and_complete():
    data = numbered(1000, 5)
    rest, held = data.split(200, seed=0)
    assert len(rest) == 800 and len(held) == 200
    assert indices(rest).isdisjoint(indices(held))
    assert indices(rest) | indices(held) == set(range(1000))
    # every class keeps its share, to one image
    for whole, part in zip(data.class_counts(), held.class_counts()):
        assert abs(part - whole * 200 / 1000) < 1
    assert indices(data.split(200, seed=0)[1]) == indices(held)
    assert indices(data.split(200, seed=1)[1]) != indices(held)
    for bad in (0, 1000):
        with pytest.raises(ValueError, match="a hold-out needs 1 to 999"):
            data.split(bad)


@pytest.fixture(scope="module")
def val_run(tmp_path_factory):
    return train("lenet5_bn_d2l", epochs=3, lr=0.1, val=100,
                 out=tmp_path_factory.mktemp("val") / "run", **TINY)


def test_with_a_hold_out_epochs_are_judged_on_it_and_the_test_set_once(val_run):
    rows = read_metrics(val_run.run_dir)
    assert [row["val_acc"] is not None for row in rows] == [True, True, True]
    assert [row["test_acc"] is not None for row in rows] == [False, False, True]
    run = load_run(val_run.run_dir)
    # the images each split used, read back as the run drew them: none trained on is validated
    trained, validated = used_images(run, "train"), used_images(run, "val")
    assert len(validated) == 100 and len(trained) == 400
    seen = {bytes(image.numpy()) for image in trained.images}
    assert not any(bytes(image.numpy()) in seen for image in validated.images)
    assert evaluate(run, split="val", plot=False).accuracy == rows[-1]["val_acc"]
    assert evaluate(run, plot=False).accuracy == rows[-1]["test_acc"]


def test_the_best_epoch_weights_are_kept_beside_the_last(val_run, tmp_path):
    rows = read_metrics(val_run.run_dir)
    best = load_run(val_run.run_dir, best=True)
    assert best.weights == "best"
    accuracy = evaluate(best, split="val", plot=False).accuracy
    assert accuracy == max(row["val_acc"] for row in rows)
    # a run without a hold-out keeps none, and says why
    plain = train("lenet5_bn_d2l", epochs=1, lr=0.1, out=tmp_path / "plain", **TINY)
    assert not (plain.run_dir / "best.safetensors").exists()
    with pytest.raises(CnnzooError, match="held out no validation split"):
        load_run(plain.run_dir, best=True)
    with pytest.raises(CnnzooError, match="held out no validation split"):
        evaluate(plain.run_dir, split="val")


def test_fashion_mnist_holds_5000_out_but_for_the_books_recipe():
    assert run_config("lenet5_d2l", recipe="modern")["val"] == 5000
    assert run_config("resnet9_fmnist", recipe="best")["val"] == 5000
    assert run_config("lenet5_d2l")["val"] == 0  # the book's protocol
    assert run_config("lenet5_d2l", recipe="modern", val=0)["val"] == 0
    assert run_config("lenet5_d2l", recipe="modern", val=0.1)["val"] == 0.1
    assert run_config("lenet5_d2l", data="synthetic", recipe="modern")["val"] == 0
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(CnnzooError, match="val="):
            run_config("lenet5_d2l", val=bad)


def test_a_hold_out_of_every_training_image_is_refused(tmp_path):
    with pytest.raises(CnnzooError, match="leaving none to train on"):
        train("lenet5_d2l", epochs=1, val=1000, out=tmp_path / "r", data="synthetic",
              device="cpu", progress=False)


def test_metrics_record_the_learning_rate_and_the_gradient_norm(tmp_path):
    result = train("lenet5_bn_d2l", epochs=2, lr=0.1, out=tmp_path / "run", grad_clip=0.01,
                   **TINY)
    rows = read_metrics(result.run_dir)
    assert [row["lr"] for row in rows] == [0.1, 0.1]  # the book's constant rate
    # the norm before clipping: far above the clip of 0.01
    assert all(math.isfinite(row["grad_norm"]) and row["grad_norm"] > 0.05 for row in rows)
    modern = train("lenet5_bn_d2l", "synthetic", "modern", epochs=3, out=tmp_path / "m",
                   **{k: v for k, v in TINY.items() if k != "data"})
    lrs = [row["lr"] for row in read_metrics(modern.run_dir)]
    assert lrs[0] > lrs[1] > lrs[2] > 0  # one-cycle: past its warm-up, down to nearly 0


def test_a_metrics_file_of_an_older_version_still_reads(val_run, tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(val_run.run_dir, folder)
    (folder / "metrics.csv").write_text(
        "epoch,train_loss,train_acc,test_acc,seconds,examples_per_sec\n"
        "1,1.5,0.5,0.4,1.0,100.0\n2,1.0,0.7,0.6,1.0,nan\n")
    rows = read_metrics(folder)
    assert rows[1]["test_acc"] == 0.6 and rows[1]["val_acc"] is None and rows[1]["lr"] is None
    comparison = compare_runs(folder)
    assert comparison.runs[0].best["epoch"] == 2
    assert "0.6000" in comparison.table()


def test_target_accuracy_stops_the_run_and_times_it_as_mlperf_does(tmp_path):
    result = train("lenet5_bn_d2l", epochs=10, lr=0.1, target_acc=0.9, val=100,
                   out=tmp_path / "run", **TINY)
    rows = result.history
    reached = result.target
    assert reached is not None and reached["epoch"] == len(rows) < 10
    assert rows[-1]["val_acc"] >= 0.9 > max(row["val_acc"] for row in rows[:-1])
    assert rows[-1]["test_acc"] is not None  # the finished run's test evaluation
    elapsed = [row["elapsed"] for row in rows]
    assert elapsed == sorted(elapsed) and reached["seconds"] == elapsed[-1]
    # the clock runs through the evaluations: beyond the epochs' training seconds
    assert elapsed[-1] >= sum(row["seconds"] for row in rows)
    assert (result.run_dir / "model.safetensors").exists()
    with pytest.raises(CnnzooError, match="reached its target_acc=0.9"):
        train(resume=result.run_dir, epochs=12, progress=False)


def test_a_run_stopped_before_its_target_weights_finishes_without_training(tmp_path):
    result = train("lenet5_bn_d2l", epochs=10, lr=0.1, target_acc=0.9, val=100,
                   out=tmp_path / "run", **TINY)
    epochs = len(result.history)
    # as a run killed between its last checkpoint and its final weights leaves it
    (result.run_dir / "model.safetensors").unlink()
    resumed = train(resume=result.run_dir, progress=False)
    assert len(resumed.history) == epochs and read_metrics(result.run_dir) == result.history
    assert (result.run_dir / "model.safetensors").exists()


def test_resuming_keeps_the_best_epoch_weights(tmp_path):
    # a run killed between its first checkpoint and its best weights: epoch 1 is the best so
    # far, and its weights are the checkpoint's
    first = train("lenet5_bn_d2l", epochs=1, lr=0.1, val=100, out=tmp_path / "run", **TINY)
    for name in ("best.safetensors", "model.safetensors"):
        (first.run_dir / name).unlink()
    train(resume=first.run_dir, progress=False)
    best, final = (load_file(first.run_dir / name)
                   for name in ("best.safetensors", "model.safetensors"))
    assert all(torch.equal(best[key], final[key]) for key in final)
    # and a run resumed mid-way keeps the best of all its epochs
    second = train("lenet5_bn_d2l", epochs=4, lr=0.1, val=100, out=tmp_path / "second",
                   stop_after_epoch=2, **TINY)
    resumed = train(resume=second.run_dir, progress=False)
    rows = read_metrics(second.run_dir)
    assert len(rows) == 4 and resumed.history == rows
    accuracy = evaluate(load_run(second.run_dir, best=True), split="val", plot=False).accuracy
    assert accuracy == max(row["val_acc"] for row in rows)


def test_print_config_of_a_resumed_run_is_what_resuming_would_do(tmp_path, capsys):
    run = train("lenet5_bn_d2l", epochs=1, lr=0.1, out=tmp_path / "run", **TINY)
    assert main(["train", "--resume", str(run.run_dir), "--epochs", "3",
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"]["epochs"] == 3 and printed["model"] == "lenet5_bn_d2l"
    assert main(["train", "--resume", str(run.run_dir), "--lr", "0.5",
                 "--print-config"]) == 2
    assert "leave out --lr" in capsys.readouterr().err
    assert run_config(resume=run.run_dir, epochs=2)["recipe"]["epochs"] == 2


def test_val_reads_on_the_command_line_as_in_python(capsys):
    for text in ("1.0", "0.0", "-1", "5e3"):
        with pytest.raises(SystemExit):
            main(["train", "--val", text, "--print-config"])
        assert "--val" in capsys.readouterr().err
        with pytest.raises(CnnzooError, match="val="):
            run_config("lenet5_d2l", val=float(text))


def test_a_subset_beyond_what_the_hold_out_leaves_is_said(tmp_path):
    with pytest.warns(UserWarning, match="train_subset=950 is more than the 900 training "
                                         "images after the validation hold-out of 100"):
        train("lenet5_d2l", epochs=1, val=100, out=tmp_path / "r", data="synthetic",
              train_subset=950, test_subset=50, device="cpu", progress=False)


def test_a_target_never_reached_runs_every_epoch(tmp_path, capsys):
    assert main(["train", "lenet5_d2l", "--data", "synthetic", "--epochs", "1", "--subset",
                 "64", "--batch-size", "32", "--target-acc", "0.999", "--out",
                 str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "--target-acc 0.999 not reached" in out and "epoch   1/1" in out


class Unrepeatable(nn.Module):
    """A small net whose forward pass says, as torch's own operations do, that it has no
    deterministic version."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))

    def forward(self, x):
        if self.training:
            from torch._prims_common import alert_not_deterministic

            alert_not_deterministic("unrepeatable_scatter_op")  # what torch's own ops call
        return self.net(x)


class Observed(nn.Module):
    """A small net that records, at each training step, whether torch computes with its
    deterministic algorithms only, and cuDNN deterministically without timing."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
        self.seen = set()

    def forward(self, x):
        if self.training:
            cudnn = torch.backends.cudnn
            self.seen.add((torch.are_deterministic_algorithms_enabled(),
                           cudnn.deterministic, cudnn.benchmark,
                           os.environ.get("CUBLAS_WORKSPACE_CONFIG")))
        return self.net(x)


def test_deterministic_holds_for_the_steps_only(tmp_path, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    net = Observed()
    train(net, "synthetic", epochs=1, deterministic=True, out=tmp_path / "r", train_subset=64,
          test_subset=32, batch_size=32, device="cpu", progress=False)
    assert net.seen == {(True, True, False, ":4096:8")}
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    net = Observed()
    train(net, "synthetic", epochs=1, out=tmp_path / "s", train_subset=64, test_subset=32,
          batch_size=32, device="cpu", progress=False)
    assert net.seen == {(False, False, torch.backends.cudnn.benchmark, None)}


def test_torchs_error_is_read_through_its_wrappers():
    inner = RuntimeError("scatter_add_cuda_kernel does not have a deterministic "
                         "implementation, but you set 'torch.use_deterministic_algorithms(True)'")
    try:
        try:
            raise inner
        except RuntimeError as error:
            raise RuntimeError("backend compiler failed\nwhile tracing") from error
    except RuntimeError as wrapped:
        assert nondeterministic_operation(wrapped) == "scatter_add_cuda_kernel"
    assert nondeterministic_operation(RuntimeError("CUDA out of memory")) is None


def test_deterministic_runs_are_bit_identical_and_leave_torch_as_it_was(tmp_path):
    # on a CPU two runs are identical anyway; what this checks is that the switch is recorded,
    # changes no result, and is put back (a GPU run's kernels differ without it)
    first = train("lenet5_bn_d2l", epochs=1, lr=0.1, deterministic=True, out=tmp_path / "a",
                  **TINY)
    assert not torch.are_deterministic_algorithms_enabled()
    second = train("lenet5_bn_d2l", epochs=1, lr=0.1, deterministic=True,
                   out=tmp_path / "b", **TINY)
    a, b = (load_file(run.run_dir / "model.safetensors") for run in (first, second))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert json.loads((first.run_dir / "config.json").read_text())["deterministic"] is True


def test_an_operation_without_a_deterministic_version_is_named(tmp_path):
    with pytest.raises(CnnzooError, match="unrepeatable_scatter_op has no deterministic "
                                          "version"):
        train(Unrepeatable(), "synthetic", epochs=1, deterministic=True, out=tmp_path / "r",
              train_subset=64, test_subset=32, batch_size=32, device="cpu", progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
    # without deterministic= the same model trains
    train(Unrepeatable(), "synthetic", epochs=1, out=tmp_path / "s", train_subset=64,
          test_subset=32, batch_size=32, device="cpu", progress=False)


def choices(config: dict) -> dict:
    return {key: config[key] for key in CHOICES}


def test_a_runs_own_config_reruns_it(val_run):
    recorded = json.loads((val_run.run_dir / "config.json").read_text())
    again = run_config(**read_run_file(val_run.run_dir / "config.json"))
    assert choices(again) == choices(recorded)


def test_a_yaml_file_with_flags_over_it(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("model: lenet5_bn_d2l\ndata: synthetic\nrecipe:\n  name: modern\n"
                    "  lr: 3e-3\nepochs: 2\nval: 0.25\ntrain_subset: 200\nseed: 4\n")
    kwargs = read_run_file(path)
    assert kwargs["lr"] == 0.003 and kwargs["recipe"] == "modern"  # YAML 1.2's 3e-3
    assert main(["train", "--config", str(path), "--epochs", "3", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["recipe"]["epochs"] == 3 and printed["recipe"]["lr"] == 0.003
    assert printed["val"] == 0.25 and printed["seed"] == 4
    assert printed["recipe"]["optimizer"] == "adamw"  # the modern recipe's own fields
    # what --print-config prints is a file --config takes, giving the same configuration
    (tmp_path / "printed.json").write_text(json.dumps(printed))
    assert main(["train", "--config", str(tmp_path / "printed.json"), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == printed
    assert main(["train", "--config", str(path), "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["recipe"]["epochs"] == 1 and config["val"] == 0.25


@pytest.mark.parametrize("text, words", [
    ("model: lenet5_d2l\nlrr: 0.1\n", "unknown key 'lrr'"),
    ("recipe:\n  name: modern\n  momentum_: 1\n", "unknown recipe field 'momentum_'"),
    ("epochs: two\n", "its epochs is 'two', where it must be a whole number"),
    ("seed: -1\n", "its seed is -1"),
    ("lr: 0\n", "its lr is 0.0, where it must be a positive number"),
    ("model: 5\n", "model is 5; give a model's name"),
    ("recipe: fastest\n", "recipe is 'fastest'"),
    ("model: [lenet\n", "is not YAML \\(line 2"),
    ("- 1\n- 2\n", "holds a list, not a mapping"),
    ("lr: 0.1\nrecipe:\n  lr: 0.2\n", "lr is given twice"),
])
def test_a_bad_run_file_is_one_line_naming_the_key(tmp_path, capsys, text, words):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(CnnzooError, match=words):
        read_run_file(path)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnzoo: error: ") and len(err.splitlines()) == 1


def test_a_run_file_of_a_users_own_model_or_data_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "Net", "model_kind": "module"}))
    with pytest.raises(CnnzooError, match="model of your own"):
        read_run_file(path)
    path.write_text(json.dumps({"model": "lenet5_d2l", "data": "in-memory"}))
    with pytest.raises(CnnzooError, match="images given from Python"):
        read_run_file(path)


def test_config_and_resume_do_not_go_together(val_run, capsys):
    assert main(["train", "--config", str(val_run.run_dir / "config.json"), "--resume",
                 str(val_run.run_dir)]) == 2
    assert "--config starts a new run" in capsys.readouterr().err


def test_tensorboard_event_files_hold_the_runs_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train("lenet5_bn_d2l", epochs=2, lr=0.1, val=100, tensorboard=True,
                   out=tmp_path / "run", **TINY)
    events = EventAccumulator(str(result.run_dir / "events"),
                              size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    rows = read_metrics(result.run_dir)
    steps = events.Scalars("step/train_loss")
    assert [s.step for s in steps] == list(range(2 * math.ceil(400 / 32)))
    assert all(math.isfinite(s.value) and s.value > 0 for s in steps)
    assert [s.value for s in events.Scalars("step/lr")] == pytest.approx([0.1] * len(steps))
    for name in ("train_loss", "val_acc", "grad_norm"):
        assert [(s.step, s.value) for s in events.Scalars(f"epoch/{name}")] == [
            (row["epoch"], pytest.approx(row[name], rel=1e-6)) for row in rows]
    assert [s.step for s in events.Scalars("epoch/test_acc")] == [2]
    assert {"curves", "test/confusion"} <= set(tags["images"])
    assert tags["graph"]  # the traced model
    hparams = EventAccumulator(str(result.run_dir / "events" / "hparams"))
    hparams.Reload()
    assert hparams.Scalars("hparams/test_acc")[0].value == pytest.approx(rows[-1]["test_acc"])


def test_tensorboard_without_its_package_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(CnnzooError, match=r"pip install 'cnnzoo\[tensorboard\]'"):
        train("lenet5_d2l", epochs=1, tensorboard=True, out=tmp_path / "r", **TINY)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_val_and_seed_of_0_on_the_command_line_are_kept(capsys):
    assert main(["train", "--recipe", "modern", "--val", "0", "--seed", "0",
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["val"] == 0 and printed["seed"] == 0
