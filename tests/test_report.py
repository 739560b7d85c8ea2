"""``cnnzoo report``: one self-contained HTML file that parses, embeds every picture and renders
in a real browser (where Chromium is installed)."""

import base64
import io
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.show.limits import MAX_COUNT
from conftest import train_tiny_run
from cnnzoo.training import evaluate

PICTURES = {"training curves", "confusion matrix", "predictions", "architecture", "filters",
            "feature maps", "Grad-CAMs of mistakes"}
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread):
    return train_tiny_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def report(run_dir):
    path = run_dir / "report.html"
    assert main(["report", str(run_dir), "--device", "cpu"]) == 0
    return path


class Page(HTMLParser):
    """Every tag with its attributes, the text, and whether the tags nest properly."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.misnested: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.misnested.append(tag)
        else:
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> Page:
    page = Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    page.close()
    return page


def test_report_is_written_where_asked_and_prints_its_path(run_dir, tmp_path, capsys):
    out = tmp_path / "elsewhere.html"
    assert main(["report", str(run_dir), "--out", str(out), "--device", "cpu", "--count",
                 "4"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_reports_its_evaluation_progress(run_dir, tmp_path):
    # the test set's evaluation is the report's long part (half a minute for a 224-px model on
    # the CPU): `cnnzoo report` draws a bar with this callback on a terminal
    from cnnzoo.report import write_report

    totals, steps = [], []

    def progress(total):
        totals.append(total)
        return lambda: steps.append(1)

    write_report(run_dir, tmp_path / "r.html", device="cpu", count=2, progress=progress)
    assert len(totals) == 1 and totals[0] >= 1 and len(steps) == totals[0]


def test_report_parses_and_embeds_every_picture(report):
    page = parse(report)
    assert not page.misnested and not page.open
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert {attrs["alt"] for attrs in images} == PICTURES
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        png = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        with Image.open(io.BytesIO(png)) as picture:
            picture.verify()
    # nothing is fetched from anywhere: no scripts, style sheets, frames or remote addresses
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object")]
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "data"):
            assert attrs.get(name, "data:").split(":")[0] not in ("http", "https", "file"), tag
    assert "url(" not in report.read_text()


def test_report_shows_the_runs_numbers(report, run_dir):
    text = " ".join(parse(report).text)
    config = json.loads((run_dir / "config.json").read_text())
    accuracy = evaluate(run_dir, device="cpu", plot=False).accuracy
    assert f"{accuracy:.2%}" in text
    assert config["created"] in text and "recipe.lr" in text
    # LeNet's first convolution: 6 kernels of 1x5x5 and 6 biases
    assert "features.conv1 (Conv2d)" in text and "156" in text
    for name in config["classes"]:
        assert name in text



def test_report_of_a_small_image_folder_names_its_classes_and_images_as_they_are(tmp_path):
    from cnnzoo.report import write_report
    from cnnzoo.training import train

    # a folder data set may have any class names; one test image of each class is held out
    classes = ['a <b> & "c"', "ünïcødé x'y"]
    for label, name in enumerate(classes):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for index in range(5):
            Image.new("L", (12, 12), 60 * label + 30 * index).save(
                tmp_path / "pics" / name / f"{index}.png")
    train("lenet5_d2l", data="folder", data_dir=str(tmp_path / "pics"), epochs=1,
          out=tmp_path / "run", device="cpu")
    page = parse(write_report(tmp_path / "run", device="cpu", count=16)[0])
    assert not page.misnested and not page.open
    text = " ".join(page.text)
    for name in classes:
        assert f"{name} 1.000" in text or f"{name} 0.000" in text  # its row of accuracies
    assert "2 random test images with the predicted class" in text
    # the data moved: the report reads it where it is told, with nothing left out
    (tmp_path / "pics").rename(tmp_path / "moved")
    _, report = write_report(tmp_path / "run", tmp_path / "moved.html", device="cpu",
                             data_dir=tmp_path / "moved")
    assert report.notes == [] and report.pictures == len(PICTURES)


def test_report_of_a_run_whose_data_is_gone_still_shows_the_model(run_dir, tmp_path, capsys):
    copy = tmp_path / "moved"
    shutil.copytree(run_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(data="folder", data_dir=str(tmp_path / "gone"))
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["report", str(copy), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "cnnzoo: note: the test set could not be evaluated" in err
    alts = {attrs["alt"] for tag, attrs in parse(copy / "report.html").tags if tag == "img"}
    assert alts == {"training curves", "architecture", "filters"}


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run directory" in err[0]


def test_report_refuses_before_its_work_what_it_cannot_do(run_dir, tmp_path, capsys):
    # a device this machine lacks is refused as `cnnzoo eval` refuses it, not noted in the page
    absent = "mps" if torch.cuda.is_available() else "cuda"
    out = tmp_path / "report.html"
    for argv, message in (
            (["--out", out, "--device", absent], f"device {absent} asked for, but"),
            (["--out", out, "--count", MAX_COUNT + 1],
             f"--count {MAX_COUNT + 1}: give 1 to {MAX_COUNT}"),
            (["--out", tmp_path], f"--out {tmp_path} is a directory; give the name of a file")):
        assert main([str(a) for a in ["report", run_dir, *argv]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("cnnzoo: error: ") and message in err[0], err
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert f"at most {MAX_COUNT}" in capsys.readouterr().out


def test_report_refuses_an_out_in_a_missing_folder_before_evaluating(run_dir, tmp_path):
    from cnnzoo.report import write_report

    evaluated = []
    with pytest.raises(CnnzooError, match=f"there is no folder {tmp_path / 'missing'}"):
        write_report(run_dir, tmp_path / "missing" / "report.html", device="cpu",
                     progress=lambda total: evaluated.append(total))
    assert evaluated == [] and list(tmp_path.iterdir()) == []


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(_chromium() is None,
                    reason="Chromium is not installed (apt-get install chromium) so the report "
                           "cannot be rendered in a browser here")
def test_report_renders_in_a_real_browser(report, tmp_path):
    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={shot}",
                        "--window-size=1200,2000", report.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # not one colour
    # the heading's dark text and the training curves' coloured lines are on the first screen
    top = pixels[:800]
    assert top.sum(axis=2).min() < 150
    assert (np.abs(top[..., 0] - top[..., 2]) > 80).any()
