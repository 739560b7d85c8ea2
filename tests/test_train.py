"""Training, run directories, resume, divergence, evaluation, prediction and the CLI's errors."""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training import TrainingDiverged, evaluate, load_run, predict, recipe_for, train
from cnnzoo.training.checkpoint import load_checkpoint

FASHION = Path("/usr/share/datasets/fashion-mnist")
QUICK = dict(data="synthetic", train_subset=512, test_subset=200, batch_size=32, device="cpu")


def test_short_run_learns_and_leaves_a_complete_run_directory(tmp_path):
    result = train("lenet5_bn_d2l", epochs=3, lr=0.1, out=tmp_path / "run", **QUICK)
    run_dir = result.run_dir
    for name in ("config.json", "metrics.csv", "curves.png", "checkpoint.pt",
                 "model.safetensors"):
        assert (run_dir / name).stat().st_size > 0, name
    assert not (run_dir / ".lock").exists()
    assert result.final["test_acc"] > 0.5  # 10 classes: chance is 0.1
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["epochs"] == 3 and config["recipe"]["lr"] == 0.1
    assert len(config["classes"]) == 10
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",") == ["epoch", "train_loss", "train_acc", "val_acc", "test_acc",
                                   "lr", "grad_norm", "seconds", "elapsed",
                                   "examples_per_sec"]
    assert len(lines) == 4
    with Image.open(run_dir / "curves.png") as image:
        assert image.size[0] > 300 and image.size[1] > 200

    run = load_run(run_dir)
    assert sum(p.numel() for p in run.model.parameters()) == 44_878
    assert result.examples_per_sec > 0
    phases = (result.train_seconds, result.setup_seconds, result.eval_seconds,
              result.save_seconds)
    assert all(seconds > 0 for seconds in phases) and sum(phases) <= result.wall_seconds


@pytest.mark.parametrize("eval_flip", [False, True])
def test_eval_reproduces_the_recorded_test_accuracy(tmp_path, eval_flip):
    result = train("lenet5_bn_d2l", epochs=2, lr=0.1, out=tmp_path / "run", data="synthetic",
                   device="cpu", train_subset=512, batch_size=32, eval_flip=eval_flip)
    evaluation = evaluate(result.run_dir, device="cpu")
    assert evaluation.accuracy == pytest.approx(result.final["test_acc"], abs=1e-9)
    # by default the recipe's eval batch size; any other gives the same confusion matrix
    totals, done = [], []

    def progress(total):
        totals.append(total)
        return lambda: done.append(1)

    assert evaluate(result.run_dir, device="cpu", batch_size=7, plot=False,
                    progress=progress).confusion == evaluation.confusion
    assert totals == [-(-evaluation.num_examples // 7)] and len(done) == totals[0]
    assert np.asarray(evaluation.confusion).sum() == evaluation.num_examples
    assert (result.run_dir / "confusion.png").stat().st_size > 0
    # the training split's matrix is a picture of its own, beside the test split's
    before = (result.run_dir / "confusion.png").read_bytes()
    evaluate(result.run_dir, split="train", device="cpu")
    assert (result.run_dir / "confusion-train.png").stat().st_size > 0
    assert (result.run_dir / "confusion.png").read_bytes() == before

    # the accuracy is that of the logits of each image averaged with its mirror image's
    from cnnzoo.data import load_dataset

    test_set = load_dataset("synthetic", split="test")
    x, y = test_set.images.float() / 255, test_set.labels
    model = load_run(result.run_dir).model
    with torch.no_grad():
        logits = model(x)
        flipped = model(x.flip(-1))
    assert not torch.equal(logits.argmax(1), flipped.argmax(1))  # the check can tell them apart
    expected = ((logits + flipped) / 2 if eval_flip else logits).argmax(1)
    assert evaluation.accuracy == (expected == y).sum().item() / len(y)
    # and the pictures of predictions (cnnzoo show predictions) see what evaluation sees
    from cnnzoo.show.predictions import predict_images

    assert predict_images(load_run(result.run_dir), test_set.images)[0] == expected.tolist()


def test_eval_of_a_run_on_subsets_uses_the_images_the_run_used(tmp_path):
    # 77 test images: not a multiple of the evaluation batch
    result = train("lenet5_bn_d2l", epochs=5, lr=0.1, out=tmp_path / "run", data="synthetic",
                   device="cpu", train_subset=256, test_subset=77, batch_size=32,
                   eval_batch_size=50)
    evaluation = evaluate(result.run_dir, device="cpu", plot=False)
    assert evaluation.num_examples == 77
    assert evaluation.accuracy == result.final["test_acc"]
    assert evaluate(result.run_dir, split="train", device="cpu", plot=False).num_examples == 256


def test_eval_computes_as_the_run_did_unless_told_fp32(tmp_path):
    from safetensors.torch import save_file

    from cnnzoo.data import load_dataset

    result = train("lenet5_bn_d2l", epochs=2, lr=0.1, out=tmp_path / "run", data="synthetic",
                   device="cpu", train_subset=512, batch_size=32, amp=True, channels_last=True)
    evaluation = evaluate(result.run_dir, device="cpu", plot=False)
    assert evaluation.amp
    assert evaluation.accuracy == pytest.approx(result.final["test_acc"], abs=1e-9)

    # Make the ten scores differ by a relative 1e-4: far above float32's rounding, below
    # bfloat16's (2^-8), so the two precisions pick different classes.
    weights = load_file(result.run_dir / "model.safetensors")
    for i in range(10):
        weights["classifier.fc3.weight"][i] = weights["classifier.fc3.weight"][0] * (1 + 1e-4 * i)
        weights["classifier.fc3.bias"][i] = weights["classifier.fc3.bias"][0]
    save_file(weights, result.run_dir / "model.safetensors")

    test_set = load_dataset("synthetic", split="test")
    x, y = test_set.images.float() / 255, test_set.labels
    model = load_run(result.run_dir).model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        fp32 = model(x).argmax(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x.contiguous(memory_format=torch.channels_last)).argmax(1)
    assert (fp32 != bf16).sum() > len(y) // 2  # the check can tell the two apart

    def confusion(pred):
        return torch.bincount(y * 10 + pred, minlength=100).view(10, 10).tolist()

    assert evaluate(result.run_dir, device="cpu", plot=False).confusion == confusion(bf16)
    plain = evaluate(result.run_dir, device="cpu", fp32=True, plot=False)
    assert not plain.amp and plain.confusion == confusion(fp32)
    # pictures of predictions compute as evaluation does
    from cnnzoo.show.predictions import predict_images

    assert predict_images(load_run(result.run_dir), test_set.images)[0] == bf16.tolist()


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_the_1998_lenet_learns_with_its_textbook_recipe(tmp_path):
    # its RBF logits are hundreds in size: the LeNets' usual rates left it at chance (0.119)
    result = train("lenet5", train_subset=4096, test_subset=1000, batch_size=32, epochs=2,
                   device="cpu", out=tmp_path / "run")
    assert result.final["test_acc"] > 0.5


def test_resume_refuses_new_run_options_but_may_move_the_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    tiny = ["--data", "synthetic", "--subset", "256", "--device", "cpu"]
    assert main(["train", "lenet5_d2l", *tiny, "--epochs", "1", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    for extra, named in ((["--amp"], "--amp"), (["--fast"], "--fast"), (["--lr", "0.5"], "--lr"),
                         (["resnet9_fmnist"], "NAME"), (["--recipe", "modern"], "--recipe"),
                         (["--set", "erasing=0"], "--set")):
        assert main(["train", *extra, "--resume", str(run_dir), "--epochs", "2"]) == 2, extra
        err = capsys.readouterr().err
        assert f"leave out {named} " in err and len(err.strip().splitlines()) == 1, err
    assert load_run(run_dir).history[-1]["epoch"] == 1  # nothing ran

    # a run set up for a device this machine lacks continues on the one given
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(dict(config, device="mps")))
    assert main(["train", "--resume", str(run_dir), "--epochs", "2"]) == 2
    assert "mps" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--device", "cpu"]) == 0
    resumed = load_run(run_dir)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert resumed.config["device"] == "cpu"


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    common = dict(epochs=3, lr=0.3, seed=7, **QUICK)
    straight = train("lenet5_bn_d2l", out=tmp_path / "straight", **common)
    cut = train("lenet5_bn_d2l", out=tmp_path / "cut", stop_after_epoch=1, **common)
    assert not (cut.run_dir / "model.safetensors").exists()
    resumed = train("lenet5_bn_d2l", resume=tmp_path / "cut", device="cpu")
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    a = load_file(straight.run_dir / "model.safetensors")
    b = load_file(resumed.run_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_finished_run_trained_further_is_read_back_at_its_latest_epoch(tmp_path):
    """The final weights of the run as it first ended are dropped once it trains further: eval,
    predict and export read the checkpoint of its latest epoch, not the older weights."""
    train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK)
    train("lenet5_d2l", resume=tmp_path / "run", epochs=3, stop_after_epoch=2)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    run = load_run(tmp_path / "run")
    latest = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert latest["epoch"] == run.history[-1]["epoch"] == 2
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, latest["model"][key]), key


def test_compile_warm_up_is_never_counted_as_steps_even_across_epochs_and_resumes(
        tmp_path, monkeypatch):
    """The first 3 steps of every process with --compile are warm-up, wherever they fall: here
    epochs of 2 steps, so the warm-up takes all of epoch 1 and a step of epoch 2, and a resumed
    run compiles (and warms up) anew. A stand-in for torch.compile spends its compile time on
    the first call, as the real one does."""
    compile_seconds = 0.4

    class SlowFirstCall(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net, self.compiled = net, False

        def forward(self, x):
            if not self.compiled:
                time.sleep(compile_seconds)
                self.compiled = True
            return self.net(x)

    monkeypatch.setattr(torch, "compile", SlowFirstCall)
    common = dict(epochs=3, lr=0.1, compile=True, data="synthetic", train_subset=64,
                  test_subset=32, batch_size=32, device="cpu")
    first = train("lenet5_bn_d2l", out=tmp_path / "run", stop_after_epoch=2, **common)
    assert first.warmup_seconds >= compile_seconds
    assert first.train_seconds < compile_seconds  # one timed step, not the compilation
    epoch1, epoch2 = first.history
    assert math.isnan(epoch1["examples_per_sec"]) and epoch1["seconds"] >= compile_seconds
    assert epoch2["examples_per_sec"] > 32 / compile_seconds
    resumed = train("lenet5_bn_d2l", resume=tmp_path / "run", device="cpu")
    assert resumed.warmup_seconds >= compile_seconds and resumed.train_seconds < compile_seconds
    assert math.isnan(resumed.history[2]["examples_per_sec"])  # its 2 steps: all warm-up
    assert math.isnan(resumed.examples_per_sec)
    assert main(["report", str(tmp_path / "run"), "--device", "cpu"]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    # the examples/s of epochs 1 and 3, and the val acc of all three (no validation split)
    assert page.count("<td class=\"num\">—</td>") == 2 + 3


def test_fast_path_flags_change_how_not_what_the_run_computes(tmp_path):
    # At a rate of 0.1 two epochs stay on one path: the rounding differences of another
    # summation order stay near 1e-6 (at 0.3 the run is chaotic and they grow to 3e-2 on an
    # AVX2 CPU), so the comparisons can be tight enough to catch a layout that computes
    # something else.
    common = dict(epochs=2, lr=0.1, seed=3, **QUICK)
    plain = train("lenet5_bn_d2l", out=tmp_path / "plain", **common)
    nhwc = train("lenet5_bn_d2l", out=tmp_path / "nhwc", channels_last=True, **common)
    mixed = train("lenet5_bn_d2l", out=tmp_path / "mixed", channels_last=True, amp=True,
                  **common)
    assert json.loads((nhwc.run_dir / "config.json").read_text())["channels_last"] is True
    for a, b in zip(plain.history, nhwc.history):  # fp32 either way: summation order only
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["test_acc"] == pytest.approx(a["test_acc"], abs=0.02)
    assert mixed.final["train_loss"] == pytest.approx(plain.final["train_loss"], abs=0.05)
    a = load_file(plain.run_dir / "model.safetensors")
    b = load_file(nhwc.run_dir / "model.safetensors")  # saved contiguous, loadable anywhere
    for key in a:  # rounding differences grow over the steps: compare relative to the size
        if a[key].is_floating_point():
            gap = (a[key] - b[key]).norm() / a[key].norm().clamp_min(1e-6)
            assert gap < 1e-3, (key, gap)
        else:
            assert torch.equal(a[key], b[key]), key
    resumed = train("lenet5_bn_d2l", resume=nhwc.run_dir, epochs=3, device="cpu")
    assert resumed.config["channels_last"] is True and len(resumed.history) == 3


def test_divergence_stops_the_run_naming_the_epoch(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"epoch 1 .*lower learning rate"):
        train("lenet5_d2l", epochs=2, lr=1e6, out=tmp_path / "run", **QUICK)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_run_at_chance_is_told_so_once_and_at_its_end():
    from cnnzoo.training.loop import chance_warning

    def history(*losses_and_accs):
        return [dict(epoch=i, train_loss=loss, train_acc=acc)
                for i, (loss, acc) in enumerate(losses_and_accs, start=1)]

    def said(rows, epochs):  # what each epoch of the run would print
        return [chance_warning(rows[:n], 10, 0.1, epochs) for n in range(1, len(rows) + 1)]

    # the book's sigmoid LeNet: its first epoch at chance (2.302, 0.117), then it learns
    assert said(history((2.302, 0.117), (1.161, 0.537), (0.817, 0.678)), 10) == [None] * 3
    # NiN's first epoch is just off chance (0.162 accuracy): no alarm either
    assert said(history((2.255, 0.162)), 1) == [None]
    stuck = said(history(*[(2.31, 0.1)] * 5), 6)
    assert stuck[:2] == [None, None] and stuck[3:] == [None, None]
    assert stuck[2].startswith("still at chance after 3 epochs") and "lr=0.01" in stuck[2]
    # a loss far above ln 10 (weights blown up but finite) is no better than chance
    final = said(history((2.31, 0.1), (31.8, 0.1)), 2)
    assert final[0] is None and final[1].startswith("the run ended at chance")


def test_cli_warns_of_a_run_that_is_not_learning_and_not_of_one_that_is(tmp_path, capsys):
    tiny = ["--data", "synthetic", "--subset", "256", "--batch-size", "32", "--device", "cpu"]
    assert main(["train", "lenet5_d2l", *tiny, "--lr", "1e-6", "--epochs", "4",
                 "--out", str(tmp_path / "stuck")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 2, warnings
    assert "still at chance after 3 epochs" in warnings[0]
    assert "the run ended at chance" in warnings[1] and "--lr 1e-06" in warnings[1]
    assert main(["train", "lenet5_bn_d2l", *tiny, "--lr", "0.1", "--epochs", "2",
                 "--out", str(tmp_path / "learns")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_finished_run_is_not_overwritten(tmp_path):
    train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK)
    with pytest.raises(CnnzooError, match="already holds a run"):
        train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK)


def test_out_takes_a_new_empty_or_unstarted_folder_but_not_one_of_other_files(tmp_path):
    with pytest.raises(CnnzooError, match="out='' is empty"):
        train("lenet5_d2l", epochs=1, out="", **QUICK)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"not a run")
    with pytest.raises(CnnzooError, match=r"folder of other files \(cat.png\)"):
        train("lenet5_d2l", epochs=1, out=tmp_path / "photos", **QUICK)
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == ["cat.png"]
    # a run that failed before its first epoch left its config.json: the folder is reusable
    with pytest.raises(TrainingDiverged):
        train("lenet5_d2l", epochs=1, lr=1e30, out=tmp_path / "run", **QUICK)
    assert (tmp_path / "run" / "config.json").exists()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    result = train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK)
    assert result.config["recipe"]["lr"] != 1e30 and len(result.history) == 1


def test_a_folder_of_images_of_several_sizes_trains_and_evaluates_with_resize(tmp_path):
    # photos come in many sizes: the run's resize (the book's recipe for LeNet: 28, or
    # --resize) reads each at that size, in training and in every later reading of the run
    rng = np.random.default_rng(0)
    for label, name in enumerate(("dark", "light")):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(12):
            size = (int(rng.integers(8, 20)), int(rng.integers(8, 20)))
            value = 40 + 150 * label + int(rng.integers(0, 30))
            Image.new("L", size, value).save(tmp_path / "pics" / name / f"{index}.png")
    run = tmp_path / "run"
    result = train("lenet5_d2l", data="folder", data_dir=tmp_path / "pics", epochs=2,
                   batch_size=8, device="cpu", out=run)
    assert result.config["image_size"] == [1, 28, 28]
    evaluation = evaluate(run, device="cpu", plot=False)
    assert evaluation.num_examples == 4  # the held-out fifth, rounded down: 2 of each class
    assert evaluation.accuracy == pytest.approx(result.final["test_acc"], abs=1e-9)


def test_runs_begun_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = train("lenet5_d2l", epochs=1, **QUICK).run_dir
    # the dated name is taken (as by a run begun alongside, in the same second)
    monkeypatch.setattr("cnnzoo.training.loop.check_out", lambda out, model: first)
    second = train("lenet5_d2l", epochs=1, **QUICK).run_dir
    assert second == first.with_name(first.name + "-2")
    assert (first / "model.safetensors").exists() and (second / "model.safetensors").exists()


def test_the_run_records_its_data_by_canonical_name_and_absolute_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    result = train("lenet5_d2l", data="Synthetic", data_dir="data", epochs=1,
                   out=tmp_path / "run", **{k: v for k, v in QUICK.items() if k != "data"})
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == result.config["data"] == "synthetic"
    assert config["data_dir"] == str(tmp_path / "data")
    # a run of an older version, which kept the name as typed, reads back canonical: the
    # preprocessing of predict (which inverts light photos for Fashion-MNIST) depends on it
    config["data"] = "FashionMNIST"
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    assert load_run(tmp_path / "run").config["data"] == "fashion-mnist"


def test_a_run_without_its_checkpoint_but_with_finished_epochs_is_not_started_over(tmp_path):
    run_dir = train("lenet5_d2l", epochs=2, out=tmp_path / "run", **QUICK).run_dir
    before = (run_dir / "metrics.csv").read_text()
    (run_dir / "checkpoint.pt").unlink()
    with pytest.raises(CnnzooError, match="checkpoint.pt is missing but metrics.csv records 2"):
        train("lenet5_d2l", resume=run_dir, epochs=3)
    assert (run_dir / "metrics.csv").read_text() == before


def test_a_metrics_file_without_its_header_is_damaged_not_empty(tmp_path):
    run_dir = train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK).run_dir
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(["garbage,header", *lines[1:]]) + "\n")
    with pytest.raises(CnnzooError, match="metrics.csv is damaged .*lacks epoch"):
        load_run(run_dir)


@pytest.mark.parametrize("setting, message", [
    (dict(lr=1e308), "lr=1e\\+308: lr must be a positive number float32 can hold"),
    (dict(weight_decay=1e308), "weight_decay=1e\\+308: weight_decay must be 0 or a positive "
                               "number float32 can hold"),
    (dict(lr=float("inf")), "lr=inf: lr must be a positive number"),
    (dict(crop_padding=1_000_000), "crop_padding=1000000 is too large for the 28x28 input"),
    (dict(crop_padding=28), "crop_padding=28 is too large for the 28x28 input.*at most 27"),
])
def test_settings_the_run_cannot_use_are_refused_before_it_starts(tmp_path, setting, message):
    with pytest.raises(CnnzooError, match=message):
        train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK, **setting)
    assert not (tmp_path / "run").exists()


def test_recipes_are_the_books_and_flags_override_fields():
    lenet = recipe_for("lenet5_d2l", "d2l")
    assert (lenet.lr, lenet.batch_size, lenet.epochs, lenet.optimizer) == (0.9, 256, 10, "sgd")
    alexnet = recipe_for("alexnet_d2l", "d2l")
    assert (alexnet.lr, alexnet.batch_size, alexnet.resize) == (0.01, 128, 224)
    assert recipe_for("lenet5_d2l", "modern").epochs <= 10
    assert lenet.replace(lr=0.1, epochs=None).lr == 0.1
    with pytest.raises(CnnzooError, match="lr=-1.0: lr must be a positive number"):
        lenet.replace(lr=-1.0)
    with pytest.raises(CnnzooError, match="unknown recipe field"):
        lenet.replace(nonsense=1)
    best = recipe_for("resnet9_fmnist", "best")
    assert (best.name, best.optimizer, best.nesterov, best.epochs, best.resize) == (
        "best", "sgd", True, 30, None)
    assert best.flip and best.crop_padding == 2 and best.erasing > 0 and best.normalize
    with pytest.raises(CnnzooError, match="unknown recipe"):
        recipe_for("lenet5_d2l", "fastest")


def run_cli(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit:  # argparse's own usage errors
        return exit.code


@pytest.mark.parametrize("argv, message", [
    (["train", "nosuchnet"], "unknown model"),
    (["train", "lenet5_d2l", "--epochs", "-1"], "1 or more"),
    (["train", "lenet5_d2l", "--lr", "0"], "above 0"),
    (["train", "lenet5_d2l", "--batch-size", "0"], "1 or more"),
    (["train", "lenet5_d2l", "--data", "nosuchdata"], "nosuchdata"),
    (["train", "alexnet_d2l", "--data", "synthetic", "--resize", "16"], "too small"),
    (["train", "densenet_d2l", "--data", "synthetic", "--resize", "20", "--subset", "64"],
     "at layer features.transition3.3 (AvgPool2d, kernel 2x2, stride 2x2, padding 0x0) the size "
     "1x1 becomes 0x0; the smallest input that works is 1x29x29"),
    (["train", "lenet5_d2l", "--device", "cuda"] if not torch.cuda.is_available() else
     ["train", "nosuchnet"], "cuda" if not torch.cuda.is_available() else "unknown model"),
    (["eval", "/nonexistent/run"], "not a run directory"),
])
def test_bad_flags_give_one_line_errors(argv, message, capsys, tmp_path):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "r")]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


@pytest.mark.parametrize("gpus, name, message", [
    (0, "cuda:1", "device cuda:1 asked for, but no CUDA GPU is available here; use cpu or auto"),
    (1, "cuda:1", "device cuda:1 asked for, but this machine has 1 CUDA GPU; use cpu, cuda, "
                  "cuda:0 or auto"),
    (2, "cuda:2", "device cuda:2 asked for, but this machine has 2 CUDA GPUs; use cpu, cuda, "
                  "cuda:0, cuda:1 or auto"),
])
def test_a_device_this_machine_lacks_is_one_line_naming_those_it_has(monkeypatch, gpus, name,
                                                                     message):
    """A GPU number beyond the machine's is refused where the command starts, not by CUDA in the
    middle of its work; the message lists what --device may be here."""
    from cnnzoo import device as loop

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(loop, "_has_mps", lambda: False)
    with pytest.raises(CnnzooError) as refused:
        loop.pick_device(name)
    assert str(refused.value) == message
    if gpus:
        assert loop.pick_device(f"cuda:{gpus - 1}") == torch.device("cuda", gpus - 1)


def test_predict_on_png_files_matches_the_model_on_the_same_images(tmp_path):
    result = train("lenet5_d2l", epochs=1, out=tmp_path / "run", **QUICK)
    from cnnzoo.data import load_dataset

    test_set = load_dataset("synthetic", split="test")
    paths = []
    for i in range(4):
        path = tmp_path / f"image{i}.png"
        Image.fromarray(test_set.images[i, 0].numpy()).save(path)
        paths.append(path)
    predictions = predict(result.run_dir, paths, topk=3, device="cpu")
    run = load_run(result.run_dir)
    with torch.no_grad():
        expected = run.model(test_set.images[:4].float() / 255).argmax(dim=1)
    for prediction, label in zip(predictions, expected.tolist()):
        names = [name for name, _ in prediction.top]
        probs = [p for _, p in prediction.top]
        assert len(names) == 3 and names[0] == run.classes[label]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6

    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    with pytest.raises(CnnzooError, match="not a readable image"):
        predict(result.run_dir, [bad], device="cpu")


def test_predict_runs_the_model_in_batches_of_the_recipes_eval_batch_size(tmp_path):
    result = train("lenet5_d2l", epochs=1, out=tmp_path / "run", eval_batch_size=2, **QUICK)
    paths = []
    for i in range(5):
        path = tmp_path / f"image{i}.png"
        Image.fromarray(np.full((28, 28), 50 * i, dtype=np.uint8)).save(path)
        paths.append(path)
    batches = []
    model = load_run(result.run_dir).model
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: batches.append(len(args[0])) if type(module) is type(model) else None)
    try:
        together = predict(result.run_dir, paths, topk=10, device="cpu")
    finally:
        hook.remove()
    assert batches == [2, 2, 1]  # not all 5 images' activations at once
    alone = [predict(result.run_dir, [path], topk=10, device="cpu")[0] for path in paths]
    for one, other in zip(together, alone):
        assert [name for name, _ in one.top] == [name for name, _ in other.top]
        assert [p for _, p in one.top] == pytest.approx([p for _, p in other.top], abs=1e-6)


def test_predict_scales_a_16_bit_png_to_8_bits_as_the_folder_data_set_does(tmp_path):
    from cnnzoo.data.folder import _pixels
    from cnnzoo.training.evaluation import load_image

    ramp = np.tile(np.linspace(0, 65535, 28).astype(np.uint16), (28, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    pixels = load_image(path, 1, (28, 28), dark_background=False)
    # Pillow's own conversion clips everything above 255 to white
    assert torch.equal(pixels, torch.from_numpy(_pixels(path, 1, (28, 28)).copy()))
    assert torch.equal(pixels[0, 0], torch.from_numpy(np.rint(ramp[0] / 257).astype(np.uint8)))


def test_cli_train_eval_predict_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "cli-run"
    assert main(["train", "lenet5_d2l", "--data", "synthetic", "--epochs", "1", "--subset",
                 "256", "--device", "cpu", "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "test acc" in out and "examples/sec" in out
    assert main(["eval", str(run_dir), "--device", "cpu"]) == 0
    assert "confusion matrix" in capsys.readouterr().out
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(image)
    assert main(["predict", str(run_dir), str(image), "--device", "cpu"]) == 0
    assert str(image) in capsys.readouterr().out


def test_eval_of_many_classes_prints_the_largest_confusions_not_a_matrix_too_wide(tmp_path,
                                                                                  capsys):
    """Over MATRIX_MAX_CLASSES classes the matrix is left to confusion.png; the largest cells
    off its diagonal are printed, as the API counts them."""
    from cnnzoo.cli.eval import MATRIX_MAX_CLASSES, TOP_CONFUSIONS

    names = [f"class {index:02d}" for index in range(MATRIX_MAX_CLASSES + 4)]
    for label, name in enumerate(names):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(3):
            Image.new("L", (8, 8), 10 * label + index).save(
                tmp_path / "pics" / name / f"{index}.png")
    run = tmp_path / "run"
    train("lenet5_d2l", data="folder", data_dir=tmp_path / "pics", epochs=1, resize=28,
          device="cpu", out=run, progress=False)
    assert main(["eval", str(run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "confusion matrix (rows" not in out
    assert max(len(line) for line in out.splitlines() if str(run) not in line) < 100
    confusion = evaluate(run, device="cpu", plot=False).confusion
    largest = sorted((-count, true, predicted) for true, row in enumerate(confusion)
                     for predicted, count in enumerate(row) if count and true != predicted)
    assert largest
    printed = out.split("most frequent confusions")[1].splitlines()[2:2 + TOP_CONFUSIONS]
    assert printed == [f"  {names[true]}  {names[predicted]:<9}  {-count:>6,}"
                       for count, true, predicted in largest[:TOP_CONFUSIONS]]


def test_a_log_file_sees_progress_within_an_epoch(tmp_path, capsys, monkeypatch):
    """Without a terminal there is no bar; a long epoch still reports, at most every
    LOG_EVERY_SECONDS (here every batch), how far it is, and never after its last batch."""
    from cnnzoo.training.progress import TextReporter as ProgressReporter

    tiny = ["lenet5_d2l", "--data", "synthetic", "--subset", "256", "--batch-size", "64",
            "--device", "cpu"]
    assert main(["train", *tiny, "--epochs", "1", "--out", str(tmp_path / "quiet")]) == 0
    assert "batches" not in capsys.readouterr().err  # a quick epoch: no progress lines
    monkeypatch.setattr(ProgressReporter, "LOG_EVERY_SECONDS", 0.0)
    assert main(["train", *tiny, "--epochs", "2", "--out", str(tmp_path / "chatty")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "batches" in line]
    assert [line.split(",")[0] for line in lines] == [
        f"epoch {epoch}/2: {done} of 4 batches" for epoch in (1, 2) for done in (1, 2, 3)]
    assert all(line.endswith("left in this epoch") for line in lines)


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_subset_learns(tmp_path):
    result = train("lenet5_bn_d2l", epochs=2, lr=1.0, out=tmp_path / "run", device="cpu",
                   train_subset=6000, test_subset=1000)
    assert result.final["test_acc"] > 0.6


def test_seed_out_of_range_is_a_one_line_error(tmp_path):
    with pytest.raises(CnnzooError, match="seed must be"):
        train("lenet5_d2l", seed=-1, out=tmp_path / "r", **QUICK)


def test_cli_set_and_model_arg_reach_the_recipe_and_the_model(tmp_path, capsys):
    run_dir = tmp_path / "narrow"
    assert main(["train", "resnet9_fmnist", "--recipe", "best", "--data", "synthetic",
                 "--subset", "128", "--device", "cpu", "--out", str(run_dir),
                 "--set", "epochs=1", "--set", "erasing=0", "--set", "nesterov=false",
                 "--set", "grad_clip=none", "--model-arg", "width=4"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_args"] == {"width": 4}
    recipe = config["recipe"]
    assert (recipe["epochs"], recipe["erasing"], recipe["nesterov"]) == (1, 0.0, False)
    assert recipe["crop_padding"] == recipe_for("resnet9_fmnist", "best").crop_padding
    run = load_run(run_dir)  # rebuilt at width 4: the saved weights fit only that width
    assert run.model.fc.in_features == 8 * 4
    assert sum(p.numel() for p in run.model.parameters()) < 30_000  # 1.6 M at width 32


@pytest.mark.parametrize("flags, message", [
    (["--model-arg", "depth=3"], "no such setting 'depth'; choose from width"),
    (["--model-arg", "width=wide"], "not a whole number"),
    (["--set", "erasing"], "give NAME=VALUE"),
    (["--set", "colour=1"], "no such setting 'colour'"),
    (["--set", "nesterov=maybe"], "not true or false"),
    (["--set", "lr=0.1", "--lr", "0.2"], "both given"),
])
def test_cli_bad_settings_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["train", "resnet9_fmnist", "--data", "synthetic", "--device", "cpu",
                 "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_model_too_large_for_memory_is_one_line(tmp_path, capsys):
    # LeNet's first Linear layer grows with the input: at 100,000 px a side, terabytes
    with pytest.raises(CnnzooError, match="does not fit in memory"):
        train("lenet5_d2l", resize=100_000, out=tmp_path / "r", **QUICK)
    assert main(["bench", "lenet5_d2l", "--resize", "100000", "--steps", "1",
                 "--device", "cpu", "--results", str(tmp_path / "b.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "does not fit in memory" in err and len(err.strip().splitlines()) == 1, err


def test_model_args_outside_the_builder_are_refused_by_the_api(tmp_path):
    with pytest.raises(CnnzooError, match="takes no model argument 'width'"):
        train("lenet5_d2l", model_args={"width": 3}, out=tmp_path / "r", **QUICK)


@pytest.mark.parametrize("fast_bf16", [False, True])
def test_amp_on_a_cpu_without_bf16_is_one_warning_per_process(tmp_path, capsys, monkeypatch,
                                                              fast_bf16):
    import cnnzoo.cli
    from cnnzoo import device as loop
    from cnnzoo.cli import _args

    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(cnnzoo.cli, "_warned", set())
    run_dir = tmp_path / "run"
    tiny = ["--data", "synthetic", "--subset", "256", "--device", "cpu"]
    assert main(["train", "lenet5_d2l", *tiny, "--epochs", "1", "--amp",
                 "--out", str(run_dir)]) == 0
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--device", "cpu"]) == 0
    # bench and leaderboard check their flags here before any work
    _args.check_fast_path(argparse.Namespace(amp=True, cuda_graphs=False, compile=False),
                          torch.device("cpu"))
    err = capsys.readouterr().err
    # (a run this short on synthetic data also ends at chance, which is another warning)
    warnings = [line for line in err.splitlines()
                if line.startswith("cnnzoo: warning:") and "at chance" not in line]
    if fast_bf16:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "leave out --amp" in warnings[0], err
        monkeypatch.setattr(cnnzoo.cli, "_warned", set())  # a resumed run keeps its --amp
        assert main(["train", "--resume", str(run_dir), "--epochs", "3",
                     "--device", "cpu"]) == 0
        assert "leave out --amp" in capsys.readouterr().err
    # evaluating the run computes as it trained, under bf16 autocast, unless told --fp32
    for flags, warned in (([], not fast_bf16), (["--fp32"], False)):
        monkeypatch.setattr(cnnzoo.cli, "_warned", set())
        assert main(["eval", str(run_dir), "--device", "cpu", *flags]) == 0
        out, err = capsys.readouterr()
        assert ("pass --fp32" in err) == warned, err
        assert ("bf16 autocast, as the run trained" in out) == (not flags), out
    assert loop.amp_warning(torch.device("cuda")) is None  # GPUs are not judged by the CPU
