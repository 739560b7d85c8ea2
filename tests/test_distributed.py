"""Data-parallel training under torchrun (gloo on the CPU) against a single process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.training import train
from cnnzoo.training.rundir import read_metrics

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun")
needs_torchrun = pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found beside this Python")
# 509 images in batches of 64 end in a short batch of 61, which splits 31 + 30; the 200 test
# images in batches of 67 split 34 + 33 twice and 33 + 33
ARGS = ["lenet5_d2l", "--data", "synthetic", "--subset", "509", "--batch-size", "64",
        "--epochs", "2", "--lr", "0.5", "--device", "cpu", "--set", "eval_batch_size=67"]
SINGLE = dict(data="synthetic", train_subset=509, batch_size=64, epochs=2, lr=0.5, device="cpu",
              eval_batch_size=67)


def torchrun(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The run of one process that two must reproduce."""
    return train("lenet5_d2l", out=tmp_path_factory.mktemp("single") / "run", **SINGLE)


def assert_same_run(run_dir, single):
    """The same weights to rounding, and the same metrics, over all the examples, each once."""
    a, b = load_file(run_dir / "model.safetensors"), load_file(single.run_dir / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-4, msg=key)
    rows = read_metrics(run_dir)
    assert len(rows) == len(single.history)
    for row, expected in zip(rows, single.history):
        assert abs(row["train_loss"] - expected["train_loss"]) < 1e-5
        assert row["train_acc"] == expected["train_acc"]
        assert row["test_acc"] == expected["test_acc"]
        # each process holds the averaged gradients: their norm is the one process's
        assert row["grad_norm"] == pytest.approx(expected["grad_norm"], rel=1e-4)
        assert row["lr"] == expected["lr"]


@needs_torchrun
def test_two_process_gloo_run_matches_one_process(tmp_path, single):
    out = tmp_path / "ddp"
    done = torchrun("-m", "cnnzoo", "train", *ARGS, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    # rank 0 alone reports and writes one run directory
    assert done.stdout.count("run directory:") == 2  # the header and the closing line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert (out / "model.safetensors").exists() and not (out / ".lock").exists()
    # Without BatchNorm or dropout, DDP's averaged gradients are the single-process gradients
    # (the short last batch's slices weighted by their shares), so the weights agree to rounding.
    assert_same_run(out, single)


@needs_torchrun
def test_a_two_process_run_stopped_after_an_epoch_resumes_in_one_process(tmp_path, single):
    script = tmp_path / "stop.py"
    script.write_text("import sys\nfrom cnnzoo.training import train\n"
                      f"train('lenet5_d2l', out=sys.argv[1], stop_after_epoch=1, **{SINGLE!r})\n")
    out = tmp_path / "ddp"
    done = torchrun(str(script), str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len((out / "metrics.csv").read_text().splitlines()) == 2
    assert not (out / "model.safetensors").exists()
    train("lenet5_d2l", resume=out)
    assert_same_run(out, single)


def test_global_batch_must_split_over_the_processes(monkeypatch, tmp_path):
    from cnnzoo.errors import CnnzooError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CnnzooError, match="does not split over 3 processes"):
        train("lenet5_d2l", data="synthetic", batch_size=64, epochs=1, device="cpu",
              out=tmp_path / "r")


def test_a_last_batch_with_too_few_images_for_the_processes_is_one_line(monkeypatch, tmp_path):
    from cnnzoo.errors import CnnzooError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CnnzooError, match="last batch of the 98 training images holds 2, too "
                                          "few to give each of the 3 processes one"):
        train("lenet5_d2l", data="synthetic", train_subset=98, batch_size=48, epochs=1,
              device="cpu", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_each_rank_takes_its_own_slice_of_every_global_batch():
    from cnnzoo.data import BatchIterator, load_dataset
    from cnnzoo.training.distributed import Context
    from cnnzoo.training.loop import _shard

    data = load_dataset("synthetic", split="train").subset(256)
    batches = BatchIterator(data, 64, seed=3, drop_last=True)
    whole = list(batches)
    parts = [list(_shard(Context(rank, 2), batches)) for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert len(y0) == len(y1) == 32
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)


def test_a_test_set_smaller_than_the_processes_is_one_line(monkeypatch, tmp_path):
    from cnnzoo.errors import CnnzooError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CnnzooError, match="test set holds 1 image, fewer than the 2 processes"):
        train("lenet5_d2l", data="synthetic", train_subset=64, test_subset=1, batch_size=32,
              epochs=1, device="cpu", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_short_batch_splits_into_slices_one_image_apart():
    from cnnzoo.training.distributed import Context
    from cnnzoo.training.loop import _slice

    x, y = torch.arange(27.0)[:, None], torch.arange(27)
    parts = [_slice(Context(rank, 2), x, y) for rank in (0, 1)]
    assert [len(part[1]) for part in parts] == [14, 13]
    assert torch.equal(torch.cat([part[1] for part in parts]), y)
