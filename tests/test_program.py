"""The ``cnnzoo`` program around ``cli.main``: its exit status and its output survive the exit."""

import gc
import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from cnnzoo.cli import main, run


@pytest.mark.parametrize("argv, status", [(["models", "lenet5*"], 0),
                                          (["shapes", "no_such_model"], 2)])
def test_run_exits_with_the_commands_status_and_output(monkeypatch, capsys, argv, status):
    monkeypatch.setattr(sys, "argv", ["cnnzoo", *argv])
    try:
        with pytest.raises(SystemExit) as exit:
            run()
    finally:
        gc.unfreeze()  # run() leaves the garbage collector to the exiting process
    assert exit.value.code == status
    printed = capsys.readouterr()
    assert main(argv) == status
    assert capsys.readouterr() == printed and (printed.out if status == 0 else printed.err)


def test_the_process_prints_everything_and_writes_its_run(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cnnzoo", "train", "lenet5_d2l", "--data",
                           "synthetic", "--epochs", "1", "--subset", "256", "--device", "cpu",
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == f"run directory: {tmp_path / 'run'}"
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "model.safetensors",
                 "curves.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0


@pytest.mark.parametrize("argv", [["models"], ["summary", "resnet18"]])
def test_a_closed_pipe_ends_the_output_quietly(argv):
    # `cnnzoo models | head -1`: the reader goes away before (or while) cnnzoo writes; the
    # table is printed line by line (models) or as one block (summary), so the error comes
    # from a print in the command or from the flush at exit
    child = subprocess.Popen([sys.executable, "-m", "cnnzoo", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 141, err
    assert err == ""


def test_help_and_argument_errors_do_not_import_torch():
    # torch takes about 2 s to import: `cnnzoo --help`, `cnnzoo train --help` and a mistyped
    # flag answer without it (0.1 s), and every command still imports it where it works
    code = textwrap.dedent("""
        import sys
        from cnnzoo.cli import build_parser, main
        parser = build_parser()
        parser.parse_args(["train", "lenet5_d2l", "--recipe", "modern", "--data", "mnist"])
        try:
            main(["train", "--bogus"])
        except SystemExit as exit:  # argparse's way out, with the one-line message
            assert exit.code == 2
        print(sorted(name for name in ("torch", "numpy", "matplotlib") if name in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[]", done.stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("argv", [["models"], ["summary", "resnet18"]])
def test_output_refused_by_a_full_disk_is_one_line(argv):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "cnnzoo", *argv], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["cnnzoo: error: No space left on device"], done.stderr


def test_a_module_imported_in_the_background_is_ready_and_its_failure_left_to_its_user(
        tmp_path, monkeypatch, capsys):
    # the curves' matplotlib loads beside a run's set-up: the import happens on another thread,
    # and one that fails there says nothing (the import where it is used reports it)
    import threading

    from cnnzoo._lazy import import_in_background

    (tmp_path / "cnnzoo_probe_ok.py").write_text(
        "import threading\nLOADED_ON = threading.current_thread().name\n")
    (tmp_path / "cnnzoo_probe_bad.py").write_text("raise ImportError('no such library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("cnnzoo_probe_ok", "cnnzoo_probe_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    for name in ("cnnzoo_probe_ok", "cnnzoo_probe_bad"):
        thread = import_in_background(name)
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert sys.modules["cnnzoo_probe_ok"].LOADED_ON == "import cnnzoo_probe_ok"
    assert "cnnzoo_probe_bad" not in sys.modules and seen == []
    assert capsys.readouterr().err == ""
    with pytest.raises(ImportError, match="no such library"):
        importlib.import_module("cnnzoo_probe_bad")


# --- the argument parser -------------------------------------------------------------------------

def is_subcommands(action) -> bool:
    import argparse

    return isinstance(action, argparse._SubParsersAction)


def subparsers_of(parser):
    """(command path, parser) of every command and subcommand below ``parser``."""
    for action in parser._actions:
        if is_subcommands(action):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {path}", deeper) for path, deeper in subparsers_of(sub))


def test_every_option_of_every_command_has_a_help_text():
    from cnnzoo.cli import build_parser

    commands = dict(subparsers_of(build_parser()))
    assert {"train", "show data", "cost conv"} <= set(commands)
    missing = [f"{path} {action.option_strings[0] if action.option_strings else action.dest}"
               for path, parser in commands.items() for action in parser._actions
               if not action.help and not is_subcommands(action)]
    assert missing == []


def test_every_device_option_is_checked_alike():
    from cnnzoo.cli import _args, build_parser

    devices = {path: action for path, parser in subparsers_of(build_parser())
               for action in parser._actions if "--device" in action.option_strings}
    assert {"train", "eval", "predict", "summary", "bench", "leaderboard", "report"} <= set(devices)
    assert {path for path, action in devices.items() if action.type is not _args.device} == set()


PATH_OPTIONS = ("--out", "--resume", "--weights", "--results")


def test_every_path_option_expands_the_home_folder(tmp_path, monkeypatch):
    """``--out=~/run``: the shell leaves a ``~`` after ``=`` as it is; cnnzoo makes it the home
    folder, as for a word of its own, instead of a folder named ``~`` here."""
    from cnnzoo.cli import _args, build_parser

    options = {(path, action.option_strings[0]): action
               for path, parser in subparsers_of(build_parser()) for action in parser._actions
               if set(action.option_strings) & set(PATH_OPTIONS) and action.dest != "out_channels"
               and action.nargs != 0 and action.choices is None}  # a switch or a tag: no path
    assert {("train", "--out"), ("train", "--resume"), ("export", "--weights"),
            ("show predictions", "--out"), ("bench", "--results")} <= set(options)
    assert {where for where, action in options.items() if action.type is not _args.user_path
            } == set()
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["train", "--out=~/run", "--resume=~/old"])
    assert (args.out, args.resume) == (str(tmp_path / "run"), str(tmp_path / "old"))


@pytest.mark.parametrize("argv, message", [
    (["shapes", "lenet5_d2l", "--batch", "0"],
     "cnnzoo: error: shapes: argument --batch: must be 1 or more, not 0 (see cnnzoo shapes --help)"),
    (["show", "data", "synthetic", "--per-class", "0"],
     "cnnzoo: error: show data: argument --per-class: must be 1 or more, not 0 "
     "(see cnnzoo show data --help)"),
    (["nosuchcommand"], "cnnzoo: error: argument COMMAND: invalid choice: 'nosuchcommand'"),
    (["summary", "lenet5_d2l", "--device", "cpu:1"],
     "cnnzoo: error: summary: argument --device: unknown device 'cpu:1'; use auto, cpu, cuda, "
     "cuda:N or mps"),
    (["train", "--device", "gpu"], "cnnzoo: error: train: argument --device: unknown device 'gpu'"),
    (["show"], "cnnzoo: error: show: choose a PICTURE: data, filters, features, predictions, "
               "receptive-field, gradients, cam, architecture (see cnnzoo show --help)"),
    (["cost"], "cnnzoo: error: cost: choose a KIND: conv (see cnnzoo cost --help)"),
])
def test_argument_errors_are_one_line_starting_as_every_error_does(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(message), captured.err


def test_cnnzoo_alone_prints_its_help(capsys):
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("usage: cnnzoo ")


@pytest.mark.parametrize("argv, option, value", [
    (["shapes", "lenet5_d2l", "--input-size", "-1,28,28"], "input_size", "-1,28,28"),
    (["show", "receptive-field", "lenet5_d2l", "--layer", "x", "--unit", "-1,0"], "unit", "-1,0"),
    (["show", "receptive-field", "lenet5_d2l", "--layer", "x", "--unit", "-1,-2"], "unit",
     "-1,-2"),
])
def test_a_comma_list_starting_with_a_negative_number_is_a_value(argv, option, value):
    from cnnzoo.cli import build_parser

    assert getattr(build_parser().parse_args(argv), option) == value


def test_a_negative_input_size_reaches_its_own_check(capsys):
    assert main(["shapes", "lenet5_d2l", "--input-size", "-1,28,28"]) == 2
    assert capsys.readouterr().err == (
        "cnnzoo: error: --input-size '-1,28,28': every size must be 1 or more; give C,H,W, "
        "e.g. 3,224,224\n")


def test_a_file_given_as_a_run_directory_is_called_a_file(tmp_path, capsys):
    image = tmp_path / "image.png"
    image.write_bytes(b"\x89PNG")
    assert main(["predict", str(image), str(image)]) == 2
    assert capsys.readouterr().err == (f"cnnzoo: error: {image} is not a run directory "
                                       f"(a file, not a folder)\n")
    assert main(["eval", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.endswith("is not a run directory (no such folder)\n")


def test_an_input_too_small_for_training_names_the_smallest_that_works(tmp_path, capsys):
    assert main(["train", "lenet5_d2l", "--data", "synthetic", "--resize", "5", "--device", "cpu",
                 "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "cnnzoo: error: input 1x5x5 is too small: at layer conv2 (Conv2d) the size 2x2 becomes "
        "0x0; the smallest input that works is 1x12x12\n")
    assert not (tmp_path / "run").exists()
