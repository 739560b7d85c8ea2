"""The speed harness on the CPU with synthetic data: ours, the textbook's way, and the JSON."""

import json
import math
import platform
import subprocess
import sys

import pytest

from cnnzoo.bench import bench_model
from cnnzoo.cli import main


def test_bench_runs_end_to_end_and_appends_json(tmp_path, capsys):
    results = tmp_path / "bench.jsonl"
    assert main(["bench", "lenet5_d2l", "--steps", "3", "--device", "cpu",
                 "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "lenet5_d2l" in out and "TFLOP/s" in out
    record = json.loads(results.read_text().splitlines()[-1])
    assert record["model"] == "lenet5_d2l" and record["examples_per_sec"] > 0
    assert record["machine"]["torch"] and record["machine"]["date"]
    assert record["data"] == "synthetic" and record["steps"] == 3 and record["batch_size"] == 256
    assert 0 < record["fraction_of_peak"] < 1.5


def test_bench_fast_times_the_flags_it_chose(tmp_path, capsys, monkeypatch):
    from cnnzoo.training import fastpath

    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fastpath, "MIN_SECONDS", 0.02)
    results = tmp_path / "bench.jsonl"
    assert main(["bench", "lenet5_bn_d2l", "--fast", "--steps", "3", "--batch-size", "32",
                 "--device", "cpu", "--results", str(results)]) == 0
    record = json.loads(results.read_text().splitlines()[-1])
    chosen = record["fast_path"]["chosen"]
    assert chosen == max(record["fast_path"]["examples_per_sec"],
                         key=record["fast_path"]["examples_per_sec"].get)
    flags = chosen.split()
    assert record["amp"] == ("--amp" in flags)
    assert record["channels_last"] == ("--channels-last" in flags)
    assert f"--fast: {chosen} (" in capsys.readouterr().out
    assert main(["bench", "lenet5_d2l", "--fast", "--channels-last", "--device", "cpu",
                 "--results", str(results)]) == 2
    assert "leave out --channels-last" in capsys.readouterr().err


def test_textbook_baseline_and_fast_path_train_the_same_model_alike():
    # Same model, init, recipe and data; only the input pipeline and loop differ. After the
    # same number of steps both must reach a comparable loss, well below the starting 2.3.
    r = bench_model("lenet5_bn_d2l", steps=25, warmup=0, batch_size=64, baseline=True,
                    device="cpu", peak=1e11)
    assert r.baseline_examples_per_sec > 0 and r.speedup > 0
    assert r.final_loss < 1.5 and r.baseline_final_loss < 1.5
    assert math.isclose(r.final_loss, r.baseline_final_loss, rel_tol=0.5, abs_tol=0.3)


def test_the_textbook_way_is_timed_before_our_allocator_settings():
    # in a fresh process: the textbook's steps run with the allocator Python starts with, ours
    # (on the CPU) with freed memory kept
    code = ("from cnnzoo.bench import bench_model; r = bench_model('lenet5_d2l', steps=2, "
            "warmup=0, batch_size=16, baseline=True, device='cpu', peak=1e11, "
            "channels_last=True, amp=True); "
            "print(r.baseline_host_allocator, '|', r.host_allocator, '|', r.channels_last)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    expected = "keeps freed memory" if platform.libc_ver()[0] == "glibc" else "default"
    assert done.stdout.split("\n")[-2] == f"default | {expected} | True"


def test_unknown_model_fails_before_any_measuring(capsys):
    assert main(["bench", "lenet5_d2l", "nosuchnet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown model 'nosuchnet'" in captured.err


def test_the_kernel_profile_accounts_for_the_steps_operators(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "cnnzoo_kernels", Path(__file__).resolve().parents[1] / "benchmarks" / "kernels.py")
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    results = tmp_path / "kernels.jsonl"
    assert kernels.main(["lenet5_d2l", "--device", "cpu", "--steps", "2", "--warmup", "1",
                         "--no-amp", "--top", "50", "--results", str(results)]) == 0
    row = json.loads(results.read_text())
    assert row["model"] == "lenet5_d2l" and row["batch_size"] == 256
    assert row["amp"] is False and row["channels_last"] is True
    kinds = row["kinds"]
    assert sum(kinds.values()) == pytest.approx(row["operators_ms"])
    assert 0 < row["operators_ms"] <= row["wall_ms"] * 1.05
    # LeNet's two convolutions run forward and backward every step
    conv_rows = [r for r in row["top"] if r["kind"].startswith("conv")]
    assert {r["kind"] for r in conv_rows} == {"conv forward", "conv backward"}
    assert kinds["conv forward"] > 0 and kinds["conv backward"] > 0
    assert "lenet5_d2l: batch 256" in capsys.readouterr().out
    assert kernels.kind_of("aten::convolution_backward") == "conv backward"
    assert kernels.kind_of("aten::_slow_conv2d_backward") == "conv backward"
    assert kernels.kind_of("aten::mkldnn_convolution") == "conv forward"
    assert kernels.kind_of("aten::max_pool2d_with_indices") == "pooling"


def test_the_peak_is_measured_in_the_arithmetic_the_device_really_has(monkeypatch):
    import torch

    from cnnzoo import bench, device

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for fast, expected in ((True, torch.bfloat16), (False, torch.float32),
                           (None, torch.bfloat16)):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert bench.peak_dtype(cpu, amp=True) == expected
        assert bench.peak_dtype(cpu, amp=False) == torch.float32
        assert bench.peak_dtype(cuda, amp=True) == torch.bfloat16


def test_a_batch_larger_than_the_synthetic_set_gets_one_batch_of_images():
    # the synthetic set has 1,000 training images unless a batch needs more
    r = bench_model("lenet5_d2l", steps=1, warmup=0, batch_size=1200, device="cpu", peak=1e11)
    assert r.batch_size == 1200 and r.examples_per_sec > 0


def test_data_smaller_than_one_batch_is_one_line(tmp_path, capsys):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for index in range(5):
            Image.new("L", (28, 28), 40 * index).save(tmp_path / label / f"{index}.png")
    # a fifth of the ten images is held out for testing: eight to train on
    assert main(["bench", "lenet5_d2l", "--data", "folder", "--data-dir", str(tmp_path),
                 "--batch-size", "16", "--device", "cpu", "--results",
                 str(tmp_path / "b.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "folder has 8 training images, fewer than one batch of 16" in captured.err


@pytest.mark.parametrize("flags, message", [
    (["--results", "."], "is a folder; give a file to append the results to"),
    (["--data", "fahsion-mnist"], "unknown data set 'fahsion-mnist'"),
])
def test_bad_results_file_or_data_fail_before_any_measuring(tmp_path, monkeypatch, capsys,
                                                             flags, message):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "lenet5_d2l", "--device", "cpu", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.count("\n") == 1


def test_data_of_another_shape_is_timed_at_its_own_height_and_width(tmp_path):
    # resnet9_fmnist's recipe keeps the data's size: 20x32 images are timed, and their FLOPs
    # counted, at 20x32
    from PIL import Image

    from cnnzoo.bench import forward_flops
    from cnnzoo.models import get_model

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for index in range(5):
            Image.new("L", (32, 20), 40 * index).save(tmp_path / label / f"{index}.png")
    r = bench_model("resnet9_fmnist", data="folder", data_dir=str(tmp_path), steps=1, warmup=0,
                    batch_size=4, device="cpu", peak=1e11)
    assert r.input_size == [1, 20, 32] and r.data == "folder"
    model = get_model("resnet9_fmnist", num_classes=2, in_channels=1)
    assert r.forward_flops == forward_flops(model, (1, 20, 32))


def test_an_input_size_a_model_cannot_take_fails_before_any_measuring(tmp_path, capsys):
    # nin_d2l's global pool hides its too-small maps from its parameter shapes: found by a
    # forward pass before the first model is timed
    assert main(["bench", "lenet5_d2l", "nin_d2l", "--resize", "40", "--steps", "1",
                 "--device", "cpu", "--results", str(tmp_path / "b.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "nin_d2l: input 1x40x40 is too small" in captured.err
    assert not (tmp_path / "b.jsonl").exists()


def _script(name):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        f"cnnzoo_{name}", Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script, flags, message", [
    ("step_modes", ["--steps", "0"], "--steps must be at least 1, not 0"),
    ("step_modes", ["--device", "gpu"], "unknown device 'gpu'"),
    ("step_modes", ["--results", "."], "is a folder; give a file to append the results to"),
    ("kernels", ["--results", "."], "is a folder; give a file to append the results to"),
])
def test_the_step_scripts_refuse_bad_arguments_before_measuring(tmp_path, monkeypatch, capsys,
                                                                 script, flags, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        _script(script).main(["lenet5_d2l", "--device", "cpu", *flags])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err.splitlines()[-1]


def test_step_modes_fails_for_a_model_it_could_not_time(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _script("step_modes").main(["nosuch", "--device", "cpu", "--modes", "eager"]) == 1
    assert "nosuch eager: failed: unknown model 'nosuch'" in capsys.readouterr().out
