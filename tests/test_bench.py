"""The speed harness on the CPU with synthetic data: ours, the textbook's way, and the JSON."""

import json
import math
import platform
import subprocess
import sys

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
    assert 0 < record["fraction_of_peak"] < 1.5


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
