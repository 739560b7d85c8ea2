"""``compare_runs`` and ``cnnzoo compare``: runs of different models and recipes side by side,
an unfinished one among them, from folders or patterns."""

from pathlib import Path

import pytest
from PIL import Image

from cnnzoo import compare_runs
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training import train

TINY = dict(data="synthetic", train_subset=128, test_subset=32, batch_size=32, device="cpu",
            progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    train("lenet5_d2l", epochs=2, out=root / "lenet", **TINY)
    train("lenet5_bn_d2l", epochs=2, lr=0.5, out=root / "bn", **TINY)
    train("lenet5_d2l", epochs=3, out=root / "stopped", stop_after_epoch=1, **TINY)
    (root / "notes").mkdir()  # a folder of other things beside the runs
    return root


def test_a_row_per_run_with_the_settings_they_differ_in(runs):
    comparison = compare_runs([runs / "lenet", runs / "bn", runs / "stopped"])
    assert [run.model for run in comparison.runs] == ["lenet5_d2l", "lenet5_bn_d2l",
                                                      "lenet5_d2l"]
    # lr and epochs differ; the batch size, the seed and the data do not
    assert comparison.differing == ["epochs", "lr"]
    header, rows = comparison.rows()
    assert header == ("run", "model", "recipe", "epochs", "lr", "done", "best acc",
                      "final test acc", "seconds")
    by_name = {row[0]: row for row in rows}
    assert by_name["bn"][3:6] == ("2", "0.5", "2/2")
    assert by_name["stopped"][5] == "1/3 *"  # stopped after its first epoch: no final weights
    bn = comparison.runs[1]
    assert by_name["bn"][7] == f"{bn.history[-1]['test_acc']:.4f}"
    assert bn.best["test_acc"] == max(row["test_acc"] for row in bn.history)
    text = comparison.table()
    assert "* not finished" in text and repr(comparison) == text
    assert "<table" in comparison._repr_html_() and "lenet5_bn_d2l" in comparison._repr_html_()


def test_patterns_pass_over_folders_that_hold_no_run(runs):
    names = [run.path.name for run in compare_runs(str(runs / "*")).runs]
    assert names == ["bn", "lenet", "stopped"]
    with pytest.raises(CnnzooError, match="matches no run directory"):
        compare_runs(str(runs / "zz*"))
    with pytest.raises(CnnzooError, match="holds no config.json: it is not a run directory"):
        compare_runs([runs / "lenet", runs / "notes"])


def test_a_damaged_metrics_file_is_one_line_naming_it(runs, tmp_path):
    import shutil

    shutil.copytree(runs / "lenet", tmp_path / "lenet")
    (tmp_path / "lenet" / "metrics.csv").write_text("epoch,loss\n1,x\n")
    with pytest.raises(CnnzooError, match="metrics.csv is damaged"):
        compare_runs(tmp_path / "lenet")


def test_the_command_prints_the_table_and_draws_the_curves(runs, tmp_path, capsys,
                                                           monkeypatch):
    out = tmp_path / "curves.png"
    assert main(["compare", str(runs / "*"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lenet5_bn_d2l" in printed and f"curves: {out}" in printed
    assert Image.open(out).size[0] > 500
    assert main(["compare", str(runs / "lenet"), "--out", str(out)]) == 2  # exists: --force
    assert "--force" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    assert main(["compare", str(runs / "lenet")]) == 0
    assert (tmp_path / "compare.png").is_file()
