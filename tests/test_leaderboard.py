"""The leaderboard end to end on two tiny runs: table, plot and figures beside the book's."""

import json
from pathlib import Path

import pytest
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.leaderboard import BOOK, Entry, board_markdown, select_models


def test_leaderboard_two_tiny_models_end_to_end(tmp_path, capsys):
    out = tmp_path / "board"
    code = main(["leaderboard", "--models", "lenet5_*d2l", "--recipe", "d2l", "--epochs", "1",
                 "--subset", "300", "--device", "cpu", "--out", str(out)])
    # lenet5_bn_d2l, lenet5_bn_scratch_d2l and lenet5_d2l match; all are the book's models
    assert code == 0
    table = (out / "RESULTS.md").read_text()
    assert "Unfinished" not in table
    # the command main was given, not the process's (pytest's here)
    assert (f"Command: `cnnzoo leaderboard --models 'lenet5_*d2l' --recipe d2l --epochs 1 "
            f"--subset 300 --device cpu --out {out}`") in table
    for name in ("lenet5_d2l", "lenet5_bn_d2l"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{BOOK[name][2]:.3f}" in row          # the book's test accuracy
        assert "1 epoch, not 10" in row and "300 training images" in row
    with Image.open(out / "leaderboard.png") as picture:
        assert picture.size[0] > 600
    results = json.loads((out / "results.json").read_text())
    assert {r["model"] for r in results} == {"lenet5_d2l", "lenet5_bn_d2l",
                                             "lenet5_bn_scratch_d2l"}
    assert all(0 <= r["test_acc"][0] <= 1 and r["parameters"] > 40_000 for r in results)
    # the book's sigmoid LeNet spends its first epoch at chance, and the board says so
    stuck = {r["model"]: r["at_chance"] for r in results}
    assert stuck["lenet5_d2l"] == [0]
    for r in results:
        row = next(line for line in table.splitlines() if line.startswith(f"| {r['model']} |"))
        assert ("seed 0 did not learn (ended at chance)" in row) == bool(r["at_chance"]), row
        assert bool(r["at_chance"]) == (r["train_loss"][0] > 0.97 * 2.3026
                                        and r["train_acc"][0] < 0.15)
    assert "wrote" in capsys.readouterr().out


def test_a_fast_board_says_what_each_model_ran_with(tmp_path, monkeypatch):
    from cnnzoo.training import fastpath

    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fastpath, "MIN_SECONDS", 0.02)
    out = tmp_path / "board"
    assert main(["leaderboard", "--models", "lenet5_d2l,lenet5_bn_d2l", "--epochs", "1",
                 "--subset", "300", "--fast", "--device", "cpu", "--out", str(out)]) == 0
    table = (out / "RESULTS.md").read_text()
    for entry in json.loads((out / "results.json").read_text()):
        run = json.loads((Path(entry["run_dirs"][0]) / "config.json").read_text())
        assert entry["flags"] == [run["fast_path"]["chosen"]]
        row = next(line for line in table.splitlines() if line.startswith(f"| {entry['model']} |"))
        assert f"--fast chose {entry['flags'][0]}" in row


def test_board_shows_the_difference_and_the_seed_spread():
    entry = Entry("lenet5_d2l", "d2l", 61_706, 10, 28, None, [0, 1, 2],
                  train_loss=[0.40, 0.42, 0.44], train_acc=[0.85, 0.86, 0.87],
                  test_acc=[0.80, 0.82, 0.84], examples_per_sec=[1.0] * 3,
                  train_seconds=[1.0] * 3, wall_seconds=[2.0] * 3)
    row = board_markdown([entry]).splitlines()[2]
    assert "0.820 ± 0.020" in row          # mean ± half-range over the seeds
    assert "+0.011" in row                  # 0.820 - the book's 0.809
    assert "3 seeds" in row


def test_a_board_on_a_test_subset_says_so(tmp_path):
    from cnnzoo.leaderboard import run_leaderboard

    entry, = run_leaderboard("d2l", ["lenet5_bn_d2l"], out=tmp_path, device="cpu", epochs=1,
                             train_subset=64, test_subset=50, data="synthetic")
    assert entry.reduced == "1 epoch, not 10; 64 training images; tested on 50 images"


def test_a_board_on_other_data_is_not_set_beside_the_books_fashion_mnist_figures(tmp_path):
    from cnnzoo.leaderboard import run_leaderboard, write_board

    entry, = run_leaderboard("d2l", ["lenet5_bn_d2l"], out=tmp_path, device="cpu", epochs=1,
                             train_subset=64, test_subset=50, data="Synthetic")
    assert entry.data == "synthetic"
    row = board_markdown([entry]).splitlines()[2]
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[4] == "—" and cells[6] == "—"   # no book figures, no difference from them
    assert f"{BOOK['lenet5_bn_d2l'][2]:.3f}" not in row
    write_board([entry], tmp_path / "board")
    assert json.loads((tmp_path / "board" / "results.json").read_text())[0]["data"] == "synthetic"


def test_unknown_pattern_is_a_one_line_error(capsys):
    assert main(["leaderboard", "--models", "nosuch*"]) == 2
    assert "no model matches" in capsys.readouterr().err


def test_the_best_recipe_has_its_own_model_by_default():
    assert select_models(None, "best") == ["resnet9_fmnist"]
    assert len(select_models(None, "d2l")) == 9
    assert select_models("lenet5_bn*", "best") == ["lenet5_bn_d2l", "lenet5_bn_scratch_d2l"]


def test_several_patterns_keep_their_order_without_repeats():
    assert select_models("resnet18_d2l, lenet5_bn*,lenet5_bn_d2l", "d2l") == [
        "resnet18_d2l", "lenet5_bn_d2l", "lenet5_bn_scratch_d2l"]
    with pytest.raises(CnnzooError, match="no model matches 'nosuch'"):
        select_models("lenet5_d2l,nosuch", "d2l")
    # an empty --models names no model: not the default nine
    with pytest.raises(CnnzooError, match="no model matches ''"):
        select_models("", "d2l")


def test_an_interrupted_board_names_what_it_lacks_and_is_never_run_over(tmp_path, capsys,
                                                                       monkeypatch):
    from cnnzoo.training.progress import TextReporter as ProgressReporter

    started = []
    start = ProgressReporter.start

    def interrupted_at_the_second_model(self, info):  # Ctrl-C as the second model starts
        started.append(info["model"])
        if len(started) == 2:
            raise KeyboardInterrupt
        return start(self, info)

    monkeypatch.setattr(ProgressReporter, "start", interrupted_at_the_second_model)
    out = tmp_path / "board"
    args = ["leaderboard", "--models", "lenet5_d2l,lenet5_bn_d2l", "--epochs", "1",
            "--subset", "64", "--device", "cpu", "--out", str(out)]
    assert main(args) == 130
    table = (out / "RESULTS.md").read_text()
    assert "Unfinished: 1 of 2 models trained; not yet: lenet5_bn_d2l" in table
    assert [e["model"] for e in json.loads((out / "results.json").read_text())] == ["lenet5_d2l"]
    monkeypatch.undo()
    capsys.readouterr()
    # the same board again is refused before anything trains, in leaderboard's own terms
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "--resume" not in captured.err
    assert f"{out} already holds runs of this board" in captured.err
    assert "training" not in captured.out
    assert (out / "RESULTS.md").read_text() == table
