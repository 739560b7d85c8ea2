"""Data-parallel training under torchrun (gloo on the CPU) against a single process."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.train import train

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
    "torchrun")
ARGS = ["lenet5_d2l", "--data", "synthetic", "--subset", "512", "--batch-size", "64",
        "--epochs", "2", "--lr", "0.5", "--device", "cpu"]


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found beside this Python")
def test_two_process_gloo_run_matches_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    out = tmp_path / "ddp"
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "cnnzoo",
                           "train", *ARGS, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # rank 0 alone reports and writes one run directory
    assert done.stdout.count("run directory:") == 2  # the header and the closing line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert (out / "model.safetensors").exists() and not (out / ".lock").exists()

    # The same global batches in one process: without BatchNorm or dropout, DDP's averaged
    # gradients are the single-process gradients, so the weights agree to rounding.
    single = train("lenet5_d2l", data="synthetic", train_subset=512, batch_size=64, epochs=2,
                   lr=0.5, device="cpu", out=tmp_path / "single")
    a, b = load_file(out / "model.safetensors"), load_file(single.run_dir / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-4, msg=key)
    ddp_acc = float((out / "metrics.csv").read_text().splitlines()[-1].split(",")[3])
    assert abs(ddp_acc - single.final["test_acc"]) < 0.02


def test_global_batch_must_split_over_the_processes(monkeypatch, tmp_path):
    from cnnzoo.errors import CnnzooError

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CnnzooError, match="does not split over 3 processes"):
        train("lenet5_d2l", data="synthetic", batch_size=64, epochs=1, device="cpu",
              out=tmp_path / "r")


def test_a_global_batch_larger_than_the_training_set_is_one_line(monkeypatch, tmp_path):
    from cnnzoo.errors import CnnzooError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CnnzooError, match="batch size 128 is larger than the 64 training"):
        train("lenet5_d2l", data="synthetic", train_subset=64, batch_size=128, epochs=1,
              device="cpu", out=tmp_path / "r")


def test_each_rank_takes_its_own_slice_of_every_global_batch():
    from cnnzoo.data import BatchIterator, load_dataset
    from cnnzoo.train.distributed import Context
    from cnnzoo.train.loop import _shard

    data = load_dataset("synthetic", split="train").subset(256)
    batches = BatchIterator(data, 64, seed=3, drop_last=True)
    whole = list(batches)
    parts = [list(_shard(Context(rank, 2), batches)) for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert len(y0) == len(y1) == 32
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
