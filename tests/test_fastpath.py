"""--fast: the fast-path flags measured per model and machine, remembered, and recorded."""

import json

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training import fastpath, load_run, recipe_for, train
from cnnzoo.training.fastpath import Flags
from cnnzoo.training.rundir import build_model

QUICK = dict(data="synthetic", train_subset=256, test_subset=100, batch_size=32, device="cpu",
             epochs=2, lr=0.1)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A cache of this test's own, and short probes."""
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fastpath, "MIN_SECONDS", 0.02)
    return tmp_path / "cache" / fastpath.CACHE_FILE


def test_a_fast_run_is_the_run_of_the_flags_it_chose(tmp_path, cache):
    fast = train("lenet5_bn_d2l", out=tmp_path / "fast", fast=True, **QUICK)
    record = fast.config["fast_path"]
    rates = record["examples_per_sec"]
    assert list(rates) == [str(f) for f in fastpath.candidates(torch.device("cpu"))]
    assert all(rate > 0 for rate in rates.values())
    assert record["chosen"] == max(rates, key=rates.get) and not record["remembered"]
    chosen = {key: fast.config[key] for key in ("amp", "channels_last", "cuda_graphs")}
    assert str(Flags(**chosen)) == record["chosen"]
    saved = json.loads((fast.run_dir / "config.json").read_text())
    assert saved["fast_path"] == record and saved["fast"] is True

    # the probe draws its own random numbers, so it leaves the run's generator as it found it
    # (a model with dropout would draw from it), and by hand the same flags give the same weights
    state = torch.get_rng_state()
    fastpath.choose(fast.config, recipe_for("lenet5_bn_d2l", "d2l"), torch.device("cpu"),
                    cache=False)
    assert torch.equal(torch.get_rng_state(), state)
    by_hand = train("lenet5_bn_d2l", out=tmp_path / "by-hand", **chosen, **QUICK)
    a = load_file(fast.run_dir / "model.safetensors")
    b = load_file(by_hand.run_dir / "model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert fast.history[-1]["test_acc"] == by_hand.history[-1]["test_acc"]


def test_a_measurement_is_remembered_per_model_and_batch(tmp_path, cache, monkeypatch):
    first = train("lenet5_d2l", out=tmp_path / "first", fast=True, **QUICK)
    assert cache.exists()

    def measuring(*args, **kwargs):
        raise AssertionError("measured again")

    with monkeypatch.context() as patch:
        patch.setattr(fastpath, "examples_per_sec", measuring)
        second = train("lenet5_d2l", out=tmp_path / "second", fast=True, **QUICK)
    assert second.config["fast_path"]["remembered"]
    assert second.config["fast_path"]["chosen"] == first.config["fast_path"]["chosen"]
    assert second.config["fast_path"]["examples_per_sec"] == \
        first.config["fast_path"]["examples_per_sec"]

    # another batch size is another measurement, and both stay in the file
    other = train("lenet5_d2l", out=tmp_path / "other", fast=True, **dict(QUICK, batch_size=64))
    assert not other.config["fast_path"]["remembered"]
    assert len(json.loads(cache.read_text())) == 2


def test_the_probe_steps_at_the_runs_own_batch_and_says_so_before_measuring(tmp_path, cache):
    from cnnzoo.training import Reporter

    class Notes(Reporter):
        def __init__(self):
            self.notes = []

        def note(self, text):
            self.notes.append(text)

    # 64 training images: every step of the run is a batch of 64, whatever the recipe says
    heard = Notes()
    train("lenet5_d2l", out=tmp_path / "a", fast=True, reporter=heard,
          **dict(QUICK, train_subset=64, batch_size=100_000))
    assert [key.split("|")[-2] for key in json.loads(cache.read_text())] == ["batch 64"]
    count = len(fastpath.candidates(torch.device("cpu")))
    assert heard.notes == [f"fast=True: timing {count} sets of flags for lenet5_d2l on cpu "
                           f"(remembered for the next run)"]
    again = Notes()
    train("lenet5_d2l", out=tmp_path / "b", fast=True, reporter=again,
          **dict(QUICK, train_subset=64, batch_size=100_000))
    assert again.notes == []  # remembered: nothing to wait for


def test_a_cache_that_cannot_be_written_is_said_in_one_warning(tmp_path, monkeypatch):
    """The run goes on with its measurement; the user hears why the next one measures again."""
    from cnnzoo.errors import CnnzooWarning

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CNNZOO_DATA", str(blocker / "cache"))
    with pytest.warns(CnnzooWarning, match=f"not remembered in {blocker}/cache/fast-path.json "
                                           f"\\(Not a directory\\): the next run measures"):
        result = train("lenet5_d2l", out=tmp_path / "run", fast=True, **dict(QUICK, epochs=1))
    assert not result.config["fast_path"]["remembered"]
    assert blocker.read_text() == "not a folder"


def test_a_damaged_cache_is_measured_over(tmp_path, cache):
    cache.parent.mkdir(parents=True)
    cache.write_text('{"truncated": ')
    result = train("lenet5_d2l", out=tmp_path / "run", fast=True, **QUICK)
    assert not result.config["fast_path"]["remembered"]
    assert len(json.loads(cache.read_text())) == 1
    # an entry of the wrong shape under the right key is measured over too
    key, entry = next(iter(json.loads(cache.read_text()).items()))
    for number, damaged in enumerate((
            {"flags": {"turbo": True}},
            dict(entry, flags={"amp": "yes", "channels_last": 1, "cuda_graphs": 0}),
            dict(entry, examples_per_sec={"--turbo": 1.0}),
            dict(entry, examples_per_sec=[1, 2]), None, "text")):
        cache.write_text(json.dumps({key: damaged}))
        again = train("lenet5_d2l", out=tmp_path / f"again-{number}", fast=True, **QUICK)
        assert not again.config["fast_path"]["remembered"], damaged
    assert fastpath._entry(entry) is not None  # the check can tell a good entry


@pytest.mark.parametrize("fast_bf16", [False, True])
def test_candidates_on_the_cpu_follow_its_bf16_arithmetic(monkeypatch, fast_bf16):
    from cnnzoo import device as loop

    monkeypatch.setattr(loop, "cpu_has_fast_bf16", lambda: fast_bf16)
    names = [str(f) for f in fastpath.candidates(torch.device("cpu"))]
    expected = ["no flags", "--channels-last"]
    if fast_bf16:
        expected += ["--amp", "--amp --channels-last"]
    assert names == expected


def test_a_candidate_far_behind_the_leader_takes_no_more_turns():
    # each candidate's rate turn by turn, as a probe would read them
    readings = {"slow": [30, 31, 32], "close": [80, 90, 85], "best": [100, 95, 105]}
    turns = []

    def turn(name):
        turns.append(name)
        return readings[name][turns.count(name) - 1]

    best = fastpath.race(turn, list(readings), rounds=3)
    assert best == {"slow": 30, "close": 90, "best": 105}  # each keeps its best turn
    assert turns.count("slow") == 1 and turns.count("close") == turns.count("best") == 3
    # a pause that slows the eventual winner's first turn by less than DROP_RATIO keeps it in
    readings = {"paused": [70, 100, 100], "other": [90, 90, 90]}
    turns.clear()
    best = fastpath.race(turn, list(readings), rounds=3)
    assert max(best, key=best.get) == "paused" and turns.count("paused") == 3


def test_the_probe_tells_a_light_model_from_a_heavy_one(monkeypatch, one_thread):
    # one thread: with two on two cores busy with other tests, LeNet's tiny operators wait for
    # a core at every barrier, and once read 105 examples/s against ResNet-9's 26
    monkeypatch.setattr(fastpath, "MIN_SECONDS", 0.1)  # the default: a busy machine's pauses
    device = torch.device("cpu")
    rates = {}
    for name, width in (("lenet5_d2l", None), ("resnet9_fmnist", 64)):
        config = dict(model=name, model_args={"width": width} if width else {},
                      classes=list(range(10)), input_size=[1, 28, 28])
        recipe = recipe_for(name, "d2l").replace(batch_size=32)
        rates[name], = fastpath.examples_per_sec(lambda: build_model(config), recipe,
                                                 config["input_size"], 10, device,
                                                 [Flags()]).values()
    # ResNet-9 at width 64 does about 300 times LeNet's arithmetic per example
    assert rates["lenet5_d2l"] > 5 * rates["resnet9_fmnist"], rates


def test_fast_with_the_flags_it_chooses_or_torchrun_is_refused(tmp_path, capsys):
    tiny = ["--data", "synthetic", "--subset", "256", "--device", "cpu", "--epochs", "1"]
    for flag in ("--amp", "--channels-last", "--compile"):
        assert main(["train", "lenet5_d2l", *tiny, "--fast", flag,
                     "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert f"leave out {flag}" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
    assert main(["leaderboard", "--models", "lenet5_d2l", "--fast", "--amp", "--device", "cpu",
                 "--out", str(tmp_path / "board")]) == 2
    assert "leave out --amp" in capsys.readouterr().err
    with pytest.raises(CnnzooError, match="under torchrun"):
        fastpath.check({"fast": True}, world_size=2)


def test_the_command_line_says_what_it_chose_and_a_resumed_run_keeps_it(tmp_path, capsys):
    run_dir = tmp_path / "run"
    tiny = ["--data", "synthetic", "--subset", "256", "--device", "cpu", "--batch-size", "32"]
    assert main(["train", "lenet5_d2l", *tiny, "--epochs", "1", "--fast",
                 "--out", str(run_dir)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("fast path: "))
    record = load_run(run_dir).config["fast_path"]
    assert line.startswith(f"fast path: {record['chosen']} (") and "measured in" in line
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", "--device", "cpu"]) == 0
    resumed = load_run(run_dir).config
    assert resumed["fast_path"] == record
    assert [resumed[k] for k in ("amp", "channels_last")] == \
        [(f in record["chosen"].split()) for f in ("--amp", "--channels-last")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_candidates_are_recorded_graphs(tmp_path):
    result = train("lenet5_bn_d2l", out=tmp_path / "run", fast=True,
                   **dict(QUICK, device="cuda"))
    record = result.config["fast_path"]
    assert all("--cuda-graphs" in name for name in record["examples_per_sec"])
    assert result.config["cuda_graphs"] and result.history[-1]["test_acc"] > 0
