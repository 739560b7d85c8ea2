"""Run directories that were handed over, tampered with or damaged on the disk: a lock file that
is not cnnzoo's, run files that are FIFOs, weights that hold NaN, a byte changed in a
checkpoint, another data set under a resumed run. Each is one line; nothing is written over."""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from cnnzoo import get_model
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training import evaluate, load_run, train
from cnnzoo.training.checkpoint import load_checkpoint, save_checkpoint

TINY = dict(data="synthetic", train_subset=128, test_subset=32, batch_size=32, device="cpu",
            progress=False)


@pytest.fixture
def finished(tmp_path) -> Path:
    """A one-epoch run directory, its run finished."""
    return train("lenet5_d2l", epochs=1, out=tmp_path / "run", **TINY).run_dir


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("cnnzoo: warning:")]
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: error: "), err
    return lines[0]


# --- the lock ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "devnull", "foreign"])
def test_a_lock_file_that_is_not_cnnzoos_is_refused_and_left_alone(tmp_path, finished, capsys,
                                                                   kind):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch\n")
    lock = finished / ".lock"
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, lock)
    elif kind == "fifo":
        os.mkfifo(lock)
    elif kind == "devnull":
        lock.symlink_to("/dev/null")
    else:
        lock.write_text("my notes, not a pid\n")
    before = {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()
              and not p.is_symlink() and p.name != ".lock"}
    for command in (["train", "--resume", str(finished), "--epochs", "2"],
                    ["train", "lenet5_d2l", "--data", "synthetic", "--subset", "64",
                     "--device", "cpu", "--out", str(tmp_path / "fresh")]):
        if command[1] == "lenet5_d2l":  # a new run into a folder holding only that lock
            (tmp_path / "fresh").mkdir()
            os.rename(lock, tmp_path / "fresh" / ".lock")
            lock = tmp_path / "fresh" / ".lock"
        assert main(command) == 2
        line = one_error_line(capsys)
        assert ".lock" in line and "remove it" in line, line
    assert victim.read_text() == "do not touch\n"
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.is_file()
            and not p.is_symlink() and p.name != ".lock"} == before


# --- run files that are not files ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "metrics.csv"])
def test_a_fifo_in_place_of_a_run_file_is_refused_without_waiting(finished, name):
    (finished / name).unlink()
    os.mkfifo(finished / name)
    done = subprocess.run([sys.executable, "-m", "cnnzoo", "eval", str(finished), "--device",
                           "cpu"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("cnnzoo: error: ") and "FIFO" in done.stderr
    assert done.stderr.count("\n") == 1


# --- damaged weights -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_weights_that_hold_nan_or_infinity_are_refused(finished, value):
    weights = load_file(finished / "model.safetensors")
    first = next(key for key in weights if key.endswith("weight"))
    weights[first] = weights[first].double()
    weights[first][0] = value  # 1e300: a float64 beyond float32, infinite once loaded
    save_file(weights, finished / "model.safetensors")
    with pytest.raises(CnnzooError, match=f"{first} holds NaN or infinite values"):
        load_run(finished)
    with pytest.raises(CnnzooError, match="NaN or infinite"):
        import cnnzoo

        cnnzoo.get_model("lenet5_d2l", weights=finished / "model.safetensors")


def flip_a_byte_of(path: Path, zip_member: str | None = None) -> None:
    """Change one byte inside the tensors' data: in a torch zip, inside ``zip_member``'s stored
    bytes; in a safetensors file, the last byte (its data follow the header)."""
    data = bytearray(path.read_bytes())
    if zip_member is None:
        offset = len(data) - 1
    else:
        with zipfile.ZipFile(path) as archive:
            info = next(i for i in archive.infolist() if i.filename.endswith(zip_member))
        name_length = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28],
                                     "little")
        extra_length = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30],
                                      "little")
        offset = info.header_offset + 30 + name_length + extra_length + 1
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_byte_changed_in_the_checkpoint_or_the_weights_is_refused(finished, capsys):
    flip_a_byte_of(finished / "checkpoint.pt", "data/0")
    with pytest.raises(CnnzooError, match="checkpoint.pt is damaged: what it holds is not"):
        load_checkpoint(finished / "checkpoint.pt")
    assert main(["train", "--resume", str(finished), "--epochs", "2"]) == 2
    assert "checkpoint.pt is damaged" in one_error_line(capsys)
    flip_a_byte_of(finished / "model.safetensors")
    with pytest.raises(CnnzooError, match="model.safetensors is damaged"):
        load_run(finished)


def test_checkpoints_and_weights_of_older_versions_without_a_digest_still_load(finished):
    state = torch.load(finished / "checkpoint.pt", weights_only=True)
    del state["sha256"]
    torch.save(state, finished / "checkpoint.pt")
    save_file(load_file(finished / "model.safetensors"), finished / "model.safetensors")
    assert load_checkpoint(finished / "checkpoint.pt")["epoch"] == 1
    assert load_run(finished).history[0]["epoch"] == 1


# --- another data set under a resumed run --------------------------------------------------------

def folder_of(root: Path, names) -> Path:
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for index in range(6):
            Image.new("L", (12, 12), 40 * label + 20 * index).save(root / name / f"{index}.png")
    return root


@pytest.mark.parametrize("names", [("x", "y"), ("dog", "cat2"), ("cat", "dog", "eel")])
def test_resume_on_a_data_set_of_other_classes_is_refused(tmp_path, capsys, names):
    run = tmp_path / "run"
    train("lenet5_d2l", data="folder", data_dir=folder_of(tmp_path / "pets", ("cat", "dog")),
          epochs=1, resize=28, device="cpu", out=run, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    other = folder_of(tmp_path / "other", names)
    assert main(["train", "--resume", str(run), "--epochs", "2", "--data-dir", str(other)]) == 2
    line = one_error_line(capsys)
    assert "are not those the run was trained on (cat, dog)" in line, line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    with pytest.raises(CnnzooError, match="not those the run was trained on"):
        train(resume=run, epochs=2, data_dir=other, progress=False)
    evaluate(run, device="cpu", plot=False)  # its own data still evaluates it


# --- outputs -------------------------------------------------------------------------------------

def test_export_and_report_write_only_where_a_file_may_go(finished, tmp_path, capsys):
    existing = tmp_path / "model.onnx"
    existing.write_text("mine")
    os.mkfifo(tmp_path / "fifo.onnx")
    (tmp_path / "link.onnx").symlink_to(existing)
    checkpoint = (finished / "checkpoint.pt").read_bytes()
    cases = [(["export", str(finished), "--out", str(existing)], "exists; pass --force"),
             (["export", str(finished), "--out", str(tmp_path / "fifo.onnx")],
              "not a regular file"),
             (["export", str(finished), "--out", str(tmp_path / "link.onnx")], "is a link"),
             (["export", str(finished), "--out", str(finished / "checkpoint.pt"), "--format",
               "torchscript"], "a run's own file"),
             (["report", str(finished), "--out", str(finished / "config.json")],
              "a run's own file"),
             (["show", "filters", str(finished), "--out", str(finished / "curves.png")],
              "a run's own file")]
    for argv, words in cases:
        assert main(argv) == 2, argv
        assert words in one_error_line(capsys), argv
    assert existing.read_text() == "mine" and (finished / "checkpoint.pt").read_bytes() == \
        checkpoint
    assert main(["export", str(finished), "--out", str(existing), "--force"]) == 0
    assert existing.read_bytes() != b"mine"
    assert main(["export", str(finished)]) == 0  # its own default name, made again
    assert main(["export", str(finished)]) == 0


def test_a_photo_stored_on_its_side_reaches_the_model_upright(tmp_path):
    from cnnzoo.data import load_dataset
    from cnnzoo.training.evaluation import load_image

    picture = Image.new("L", (20, 10), 0)  # wide: a bright stripe on its left
    picture.paste(255, (0, 0, 4, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    picture.save(tmp_path / "side.jpg", exif=exif, quality=95)
    seen = load_image(tmp_path / "side.jpg", 1, (20, 10), dark_background=False)
    assert seen.shape == (1, 20, 10)
    assert seen[0, :4].float().mean() > 200 and seen[0, -4:].float().mean() < 50  # on top
    for name in ("a", "b"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(3):
            (tmp_path / "pics" / name / f"{index}.jpg").write_bytes(
                (tmp_path / "side.jpg").read_bytes())
    images = load_dataset("folder", "train", data_dir=tmp_path / "pics").images
    assert tuple(images.shape[2:]) == (20, 10)


def test_an_image_over_pillows_pixel_limit_is_refused_not_decoded(tmp_path, monkeypatch):
    from cnnzoo.training.evaluation import load_image

    Image.new("L", (40, 40), 9).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: the warning's range
    with pytest.raises(CnnzooError, match="decompression-bomb limit"):
        load_image(tmp_path / "big.png", 1, (28, 28), dark_background=False)


# --- a damaged or other version's config.json -----------------------------------------------------

def edit_config(run: Path, change) -> None:
    path = run / "config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


CONFIG_DAMAGE = {
    "a recipe field of a newer version": (lambda c: c["recipe"].update(mixup=0.2), "'mixup'"),
    "a string for a number": (lambda c: c["recipe"].update(lr="0.1"), "lr is '0.1'"),
    "a fraction of an epoch": (lambda c: c["recipe"].update(epochs=1.5), "epochs is 1.5"),
    "a float32 zero rate": (lambda c: c["recipe"].update(lr=1e-320), "lr is 1e-320"),
    "an eval batch of 0": (lambda c: c["recipe"].update(eval_batch_size=0), "eval_batch_size"),
    "a negative seed": (lambda c: c.update(seed=-1), "seed is -1"),
    "a seed of text": (lambda c: c.update(seed="x"), "seed is 'x'"),
    "a null seed": (lambda c: c.update(seed=None), "seed is None"),
    "a test subset of 0": (lambda c: c.update(test_subset=0), "test_subset is 0"),
    "a negative train subset": (lambda c: c.update(train_subset=-5), "train_subset is -5"),
    "bad normalisation statistics": (lambda c: c.update(normalize_stats=[[0.5], [0.0]]),
                                     "normalize_stats"),
    "an absurd image size": (lambda c: c.update(image_size=[1, 60000, 60000]),
                             "1x60000x60000"),
    "an unknown model kind": (lambda c: c.update(model_kind="plugin"), "model_kind"),
    "a missing recipe": (lambda c: c.pop("recipe"), "'recipe'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_DAMAGE))
def test_a_damaged_config_is_one_line_for_every_reader(finished, capsys, case):
    change, words = CONFIG_DAMAGE[case]
    edit_config(finished, change)
    with pytest.raises(CnnzooError, match=re.escape(words)) as error:
        load_run(finished)
    assert "\n" not in str(error.value) and "config.json" in str(error.value)
    with pytest.raises(CnnzooError, match=re.escape(words)):
        train(resume=finished, epochs=2, progress=False)
    for command in (["eval", str(finished)], ["predict", str(finished), str(finished)]):
        assert main(command) == 2
        assert words in one_error_line(capsys)


def test_a_config_of_an_older_version_lacking_fields_still_loads(finished):
    # fields added later (eval_flip, the fast path's flags, the recipe's name) take defaults
    edit_config(finished, lambda c: [c["recipe"].pop("eval_flip"), c["recipe"].pop("name"),
                                     c.pop("channels_last"), c.pop("model_kind")])
    run = load_run(finished)
    assert run.config["recipe"]["eval_flip"] is False and run.config["model_kind"] == "registry"
    assert train(resume=finished, epochs=2, progress=False).history[-1]["epoch"] == 2


# --- a damaged checkpoint on resume ---------------------------------------------------------------

@pytest.fixture
def interrupted(tmp_path) -> Path:
    """A run of lenet5_d2l with momentum, stopped after its first of two epochs (no final
    weights: eval and resume read the checkpoint)."""
    run = train("lenet5_d2l", epochs=2, out=tmp_path / "run", momentum=0.9,
                stop_after_epoch=1, **TINY).run_dir
    assert not (run / "model.safetensors").exists()
    return run


def _zeros(shape):
    return torch.zeros(shape)


CHECKPOINT_DAMAGE = {
    "another model's weights": (
        lambda s: s.update(model=get_model("lenet5_bn_d2l").state_dict()), "does not fit"),
    "a negative epoch": (lambda s: s.update(epoch=-3), "epoch -3"),
    "a random state of the wrong size": (
        lambda s: s.update(rng_cpu=torch.zeros(7, dtype=torch.uint8)), "random generator"),
    "an optimiser state of another optimiser": (
        lambda s: s["optimizer"]["state"][0].update(exp_avg=_zeros(1)), "SGD keeps"),
    "an optimiser state of another shape": (
        lambda s: s["optimizer"]["state"][0].update(momentum_buffer=_zeros(3)), "shape (3,)"),
    "an optimiser state holding NaN": (
        lambda s: s["optimizer"]["state"][0].update(
            momentum_buffer=torch.full_like(s["optimizer"]["state"][0]["momentum_buffer"],
                                            float("nan"))), "finite"),
    "optimiser groups that are not a list": (
        lambda s: s["optimizer"].update(param_groups="x"), "torch.optim's layout"),
    "a schedule before its start": (lambda s: s.update(scheduler={"last_epoch": -5}),
                                    "step -5"),
    "a schedule beyond its end": (lambda s: s.update(scheduler={"last_epoch": 10 ** 9}),
                                  "step 1000000000"),
    "a schedule of text": (lambda s: s.update(scheduler={"last_epoch": "x"}), "step 'x'"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_DAMAGE))
def test_resume_from_a_damaged_checkpoint_is_one_line(interrupted, capsys, case):
    # written as cnnzoo writes, digest included: the content itself is wrong, not its bytes
    change, words = CHECKPOINT_DAMAGE[case]
    path = interrupted / "checkpoint.pt"
    state = load_checkpoint(path)
    state["optimizer"] = {"state": {k: dict(v) for k, v in state["optimizer"]["state"].items()},
                          "param_groups": state["optimizer"]["param_groups"]}
    change(state)
    save_checkpoint(path, state)
    before = path.read_bytes()
    assert main(["train", "--resume", str(interrupted), "--epochs", "2"]) == 2
    assert words in one_error_line(capsys)
    assert path.read_bytes() == before and not (interrupted / "model.safetensors").exists()


# --- memory, the Python API, temporary files ------------------------------------------------------

class Greedy(torch.nn.Module):
    """A classifier whose training steps ask for a terabyte per image (in eval mode, as the
    check before training runs it, it asks for nothing): an activation too large to hold."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(28 * 28, 10)

    def forward(self, x):
        if self.training:
            x.new_zeros(len(x), 2 ** 38)
        return self.fc(x.flatten(1))


def test_training_or_benching_beyond_memory_is_one_line_naming_the_size(tmp_path):
    with pytest.raises(CnnzooError, match=r"batch_size=32 on 1x28x28 inputs does not fit in "
                                          r"cpu memory; give a smaller batch_size="):
        train(Greedy(), epochs=1, out=tmp_path / "big", **TINY)
    from cnnzoo.bench import bench_model

    # a synthetic set of one batch of 10**8 images: 78 GB
    with pytest.raises(CnnzooError, match="batch_size=100000000 does not fit in memory"):
        bench_model("lenet5_d2l", batch_size=10 ** 8, device="cpu", steps=1)


@pytest.mark.parametrize("weights", [123, b"model.pt", ["a.pt"], True, ""])
def test_get_model_refuses_weights_that_are_not_a_path(weights):
    with pytest.raises(CnnzooError, match="weights=.*or the path of a weights file"):
        get_model("lenet5_d2l", weights=weights)


@pytest.mark.parametrize("field", ["lr", "weight_decay", "grad_clip"])
def test_a_rate_float32_rounds_to_zero_is_refused(tmp_path, field):
    with pytest.raises(CnnzooError, match=f"{field}=1e-320: {field} must be"):
        train("lenet5_d2l", epochs=1, out=tmp_path / "run", **{field: 1e-320}, **TINY)
    assert not (tmp_path / "run").exists()


def test_a_temporary_file_a_killed_writer_left_is_removed_by_the_next_write(tmp_path):
    from cnnzoo._io import atomic_write_bytes

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f".model.onnx.{dead}-k2x9.tmp"
    live = tmp_path / f".model.onnx.{os.getpid()}-a7b1.tmp"  # a write under way
    others = [tmp_path / ".model.onnx.notes.tmp", tmp_path / f".other.onnx.{dead}-q.tmp"]
    for path in (orphan, live, *others):
        path.write_bytes(b"half an export")
    atomic_write_bytes(tmp_path / "model.onnx", b"whole")
    assert (tmp_path / "model.onnx").read_bytes() == b"whole"
    assert not orphan.exists() and live.exists() and all(p.exists() for p in others)


def test_a_run_records_and_says_where_its_data_came_from(tmp_path, capsys):
    assert main(["train", "lenet5_d2l", "--data", "synthetic", "--subset", "64", "--epochs",
                 "1", "--device", "cpu", "--out", str(tmp_path / "run")]) == 0
    source = json.loads((tmp_path / "run" / "config.json").read_text())["data_source"]
    assert source["test"].startswith("synthetic: 10 classes")
    assert source["train"].startswith("synthetic: 10 classes") and "subset: 64" in \
        source["train"]
    assert f"data: train {source['train']}; test {source['test']}" in capsys.readouterr().out
