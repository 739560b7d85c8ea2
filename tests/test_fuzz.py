"""Bad input, at random: the IDX, CIFAR-10 and image-folder readers and the command-line parser
fed by hypothesis, every case ending in a result or a one-line ``CnnzooError``; and models
summarized on inputs they cannot take.

The targets live in benchmarks/fuzz.py, which runs thousands of cases each; here each target
gets a few hundred, derandomized so that a failure reproduces.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import cnnzoo
from cnnzoo.cli import build_parser, main
from cnnzoo.cli._args import parse_input_size
from cnnzoo.errors import CnnzooError, InputTooSmallError

_spec = importlib.util.spec_from_file_location(
    "cnnzoo_fuzz", Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # its dataclasses look their module up there
_spec.loader.exec_module(fuzz)

CASES = {"idx": 400, "cifar": 300, "folder": 400, "cli": 400, "config": 60, "checkpoint": 60,
         "metrics": 60, "lock": 300}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", CASES)
def test_every_case_ends_in_a_result_or_one_line_error(name, empty_cache):
    target = fuzz.TARGETS[name]
    outcomes = {}

    @settings(max_examples=CASES[name], derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(target.strategy())
    def case(example):
        outcome = fuzz.run_one(target, example)  # a Defect (an AssertionError) fails the test
        assert outcome in target.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    case()
    # the strategies reach both ends: inputs that load and inputs that are refused
    assert outcomes.get("error", 0) > CASES[name] // 10
    assert sum(n for key, n in outcomes.items() if key != "error") > CASES[name] // 20


# --- what the campaign found, pinned down --------------------------------------------------------

def test_usage_errors_quoting_a_line_break_stay_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["models", "vgg", "a\nb"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a\\nb" in err


@pytest.mark.parametrize("text", ["²,1,1", "3,²,2", "3,x,2", "3,,2", "3,1.5,2"])
def test_input_size_that_is_not_whole_numbers_is_named(text):
    with pytest.raises(CnnzooError, match="is not a whole number"):
        parse_input_size(text)


@pytest.mark.parametrize("value", ["-1", str(2 ** 64), "1e3"])
def test_train_seed_out_of_range_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["train", "--seed", value])
    assert stop.value.code == 2 and "--seed" in capsys.readouterr().err
    assert build_parser().parse_args(["train", "--seed", str(2 ** 64 - 1)]).seed == 2 ** 64 - 1


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 1.5])
def test_data_set_seeds_out_of_range_are_one_line_errors(tmp_path, seed):
    with pytest.raises(CnnzooError, match="seed must be an int in 0 .. 2\\*\\*64 - 1"):
        cnnzoo.load_dataset("synthetic", "train", seed=seed)
    with pytest.raises(CnnzooError, match="seed must be an int in 0 .. 2\\*\\*64 - 1"):
        (tmp_path / "a").mkdir()
        cnnzoo.load_dataset("folder", "train", data_dir=tmp_path, seed=seed)


# --- summaries of models on inputs they cannot take ----------------------------------------------

def bn_lenet():
    return cnnzoo.get_model("lenet5_bn_d2l")


def one_line_error(call, kind=CnnzooError) -> str:
    with pytest.raises(kind) as error:
        call()
    message = str(error.value)
    assert message.strip() and "\n" not in message
    return message


def test_batch_one_in_training_mode_says_batch_norm_needs_two():
    model = bn_lenet()
    message = one_line_error(lambda: cnnzoo.summary(model, input_size=(1, 1, 28, 28),
                                                    mode="train"))
    assert "BatchNorm1d" in message and "batch of 2 or more" in message
    assert model.training  # left in the mode it was in
    # what it says works does work, and eval mode takes batch 1
    assert cnnzoo.summary(model, input_size=(2, 1, 28, 28), mode="train").batch_size == 2
    assert cnnzoo.summary(model, input_size=(1, 1, 28, 28), mode="eval").batch_size == 1


def test_a_channel_mismatch_names_the_layer_and_the_shapes():
    message = one_line_error(lambda: cnnzoo.summary(bn_lenet(), input_size=(2, 3, 28, 28)))
    assert "features.conv1" in message and "[2, 3, 28, 28]" in message
    assert "1 channels" in message  # PyTorch's own words for what the layer expects
    message = one_line_error(lambda: cnnzoo.trace_shapes(bn_lenet(), (3, 28, 28)))
    assert "features.conv1" in message


@pytest.mark.parametrize("size", [(2, 1, 0, 28), (0, 1, 28, 28), (1, 0, 28, 28), (1, 28, 0)])
def test_zero_size_inputs_are_refused(size):
    words = "every size must be 1 or more"
    assert words in one_line_error(lambda: cnnzoo.summary(bn_lenet(), input_size=size))
    assert words in one_line_error(lambda: cnnzoo.trace_shapes(bn_lenet(), size))


def test_zero_size_input_data_is_refused():
    message = one_line_error(lambda: cnnzoo.summary(bn_lenet(),
                                                    input_data=torch.zeros(0, 1, 28, 28)))
    assert "(0, 1, 28, 28)" in message and "holds no values" in message


def test_too_small_an_input_names_the_smallest_that_works():
    message = one_line_error(lambda: cnnzoo.summary(bn_lenet(), input_size=(2, 1, 3, 3)),
                             InputTooSmallError)
    assert "features.conv1" in message and "the smallest input that works is 1x" in message


@pytest.mark.parametrize("kwargs, words", [
    (dict(input_size=(1, 1, 28, 28), depth="3"), "depth must be a whole number"),
    (dict(input_size=(1, 1, 28, 28), depth=-1), "depth must be a whole number"),
    (dict(input_size="1,28,28"), "input_size='1,28,28' is not a size"),
    (dict(input_data=()), "input_data must be a tensor"),
    (dict(input_data=[None]), "input_data must be a tensor"),
    (dict(input_size=(1, 1, 28, 28), mode="training"), "mode must be 'eval' or 'train'"),
    (dict(input_size=(1, 1, 28, 28), device="gpu:x"), "unknown device"),
    (dict(input_size=(1, 1, 2 ** 31, 2 ** 31)), "cannot make an input of"),
])
def test_odd_summary_arguments_are_one_line_errors(kwargs, words):
    assert words in one_line_error(lambda: cnnzoo.summary(bn_lenet(), **kwargs))


@pytest.mark.parametrize("size", ["abc", (1, "x", 3), None, (1, 2)])
def test_odd_trace_sizes_are_one_line_errors(size):
    assert one_line_error(lambda: cnnzoo.trace_shapes(bn_lenet(), size)).startswith("input_size=")


def test_cli_summary_of_a_bad_input_size_is_one_line(capsys):
    assert main(["summary", "lenet5_bn_d2l", "--input-size", "1,1,0,28"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "every size must be 1 or more" in err
