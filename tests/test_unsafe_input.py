"""Unsafe input: files that would run code when unpickled, images built to exhaust memory or to
reach other decoders, and damaged run files. Each is refused with one line, and nothing in the
file ever runs.

The malicious pickles are real: their ``__reduce__`` creates a marker file, and a sanity check
shows that plain unpickling does create it. Every cnnzoo path that reads weights must refuse the
same file with the marker still absent. A static guard then keeps unpickling (and ``eval``,
``exec``, a disabled decompression-bomb limit) out of the package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import os
import pickle
import pkgutil
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageFile

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.data import CorruptDataError, load_dataset
from cnnzoo.errors import CnnzooError
from cnnzoo.training import load_run, train
from cnnzoo.training.checkpoint import load_checkpoint
from cnnzoo.training.evaluation import load_image

PACKAGE = Path(cnnzoo.__file__).parent
PILLOW_DEFAULT_LIMIT = 89_478_485  # Image.MAX_IMAGE_PIXELS as Pillow ships it: 1024 * 1024 * 1024 // 4 // 3


class CreatesFile:
    """Unpickling this opens (creates) ``path``: a stand-in for any code a pickle can run."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_checkpoint(path: Path, marker: Path, form: str) -> Path:
    """A checkpoint-shaped file whose model entry runs code when unpickled, in torch.save's zip
    form or as a bare pickle (the format torch.load also accepts)."""
    state = {"model": {"weight": CreatesFile(marker)}, "epoch": 1}
    if form == "zip":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state, protocol=2))
    return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: "), err
    return err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real run directory: one epoch of LeNet on a small synthetic set."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train("lenet5_d2l", data="synthetic", train_subset=64, test_subset=20,
                       epochs=1, batch_size=32, device="cpu",
                       out=tmp_path_factory.mktemp("runs") / "run")
    finally:
        torch.set_num_threads(threads)
    return result.run_dir


@pytest.fixture
def run_copy(tmp_path, trained_run) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained_run, target)
    return target


# --- unpickling ----------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["zip", "pickle"])
def test_the_payload_really_runs_when_unpickled(tmp_path, form):
    marker = tmp_path / "ran"
    path = malicious_checkpoint(tmp_path / "checkpoint.pt", marker, form)
    if form == "zip":
        torch.load(path, weights_only=False)  # what cnnzoo must never do
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def _load_checkpoint(run: Path):
    return load_checkpoint(run / "checkpoint.pt")


def _load_run(run: Path):
    (run / "model.safetensors").unlink()  # else load_run reads the final weights instead
    return load_run(run)


def _eval(run: Path):
    (run / "model.safetensors").unlink()
    return main(["eval", str(run), "--device", "cpu"])


def _resume(run: Path):
    return main(["train", "--resume", str(run), "--epochs", "2"])


LOADERS = {"load_checkpoint": _load_checkpoint, "load_run": _load_run, "cnnzoo eval": _eval,
           "cnnzoo train --resume": _resume}


@pytest.mark.parametrize("form", ["zip", "pickle"])
@pytest.mark.parametrize("loader", LOADERS)
def test_a_malicious_checkpoint_is_refused_and_never_runs(run_copy, tmp_path, capsys, loader,
                                                          form):
    marker = tmp_path / "ran"
    malicious_checkpoint(run_copy / "checkpoint.pt", marker, form)
    call = LOADERS[loader]
    if loader.startswith("cnnzoo"):
        assert call(run_copy) == 2
        message = one_line(capsys)
    else:
        with pytest.raises(CnnzooError) as error:
            call(run_copy)
        message = str(error.value)
        assert "\n" not in message
    assert "refusing to load" in message and "checkpoint.pt" in message
    assert not marker.exists()
    # the refusal is not torch's advice on how to load the file anyway
    assert "weights_only" not in message and "\x1b" not in message and "\\x1b" not in message


def test_a_pickle_posing_as_safetensors_is_refused(run_copy, tmp_path):
    marker = tmp_path / "ran"
    malicious_checkpoint(run_copy / "model.safetensors", marker, "pickle")
    with pytest.raises(CnnzooError, match="not a valid safetensors file") as error:
        load_run(run_copy)
    assert "\n" not in str(error.value) and not marker.exists()


weights_keyword = pytest.mark.skipif(
    "weights" not in inspect.signature(cnnzoo.get_model).parameters,
    reason="get_model has no weights= keyword")


@weights_keyword
@pytest.mark.parametrize("form", ["zip", "pickle"])
def test_get_model_refuses_malicious_weights(tmp_path, form):
    marker = tmp_path / "ran"
    path = malicious_checkpoint(tmp_path / "lenet.pth", marker, form)
    with pytest.raises(CnnzooError) as error:
        cnnzoo.get_model("lenet5_d2l", weights=path)
    assert "\n" not in str(error.value) and "lenet.pth" in str(error.value)
    assert not marker.exists()


@weights_keyword
def test_get_model_refusal_does_not_advise_loading_it_anyway(tmp_path):
    path = malicious_checkpoint(tmp_path / "lenet.pth", tmp_path / "ran", "zip")
    with pytest.raises(CnnzooError) as error:
        cnnzoo.get_model("lenet5_d2l", weights=path)
    assert "\x1b" not in str(error.value) and "can still be loaded" not in str(error.value)


# --- damaged run files ---------------------------------------------------------------------------

def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


DAMAGE = {
    "checkpoint cut short": ("checkpoint.pt", lambda p: _truncate(p, 300), "damaged"),
    "checkpoint of random bytes": (
        "checkpoint.pt", lambda p: p.write_bytes(np.random.default_rng(0).bytes(500)), "damaged"),
    "checkpoint holding a list": ("checkpoint.pt", lambda p: torch.save([1, 2], p),
                                  "not a cnnzoo checkpoint"),
    "checkpoint without optimizer": (
        "checkpoint.pt", lambda p: torch.save({"model": {}, "epoch": 1}, p),
        "not a cnnzoo checkpoint"),
    "weights cut short": ("model.safetensors", lambda p: _truncate(p, 100),
                          "not a valid safetensors file"),
    "weights with a huge header length": (
        "model.safetensors", lambda p: p.write_bytes((2**62).to_bytes(8, "little") + b"{}"),
        "not a valid safetensors file"),
    "weights of another model": (
        "model.safetensors",
        lambda p: __import__("safetensors.torch").torch.save_file(
            {"fc.weight": torch.zeros(2, 2)}, str(p)),
        "does not fit this model"),
    "config that is a list": ("config.json", lambda p: p.write_text("[1, 2]"),
                              "not a cnnzoo run configuration"),
    "config without classes": (
        "config.json",
        lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items()
                                           if k != "classes"})),
        "lacks a list of class names"),
    "config that is not JSON": ("config.json", lambda p: p.write_bytes(b"\xff{"),
                                "is not valid JSON"),
    "metrics with a word for a number": (
        "metrics.csv", lambda p: p.write_text("epoch,train_loss\n1,lots\n"), "is damaged"),
}


@pytest.mark.parametrize("defect", DAMAGE)
def test_damaged_run_files_are_one_line_errors(run_copy, capsys, defect):
    name, spoil, words = DAMAGE[defect]
    if name == "checkpoint.pt":
        (run_copy / "model.safetensors").unlink()
    spoil(run_copy / name)
    with pytest.raises(CnnzooError) as error:
        load_run(run_copy)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert main(["eval", str(run_copy), "--device", "cpu"]) == 2
    assert words in one_line(capsys)


# --- images --------------------------------------------------------------------------------------

def png(path: Path, size=(12, 12), mode="L") -> Path:
    array = np.random.default_rng(0).integers(0, 256, (size[1], size[0], len(mode)), np.uint8)
    Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(path)
    return path


def test_pillow_bomb_limit_is_in_force():
    """Importing every module of the package leaves Pillow's limits as shipped."""
    for module in pkgutil.walk_packages(cnnzoo.__path__, "cnnzoo."):
        if module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional dependency (onnx, ...) that is not installed
            continue
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT_LIMIT
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_an_image_over_the_bomb_limit_is_refused(tmp_path, monkeypatch, trained_run, capsys):
    image = png(tmp_path / "big.png", size=(12, 12))  # 144 pixels
    folder = tmp_path / "pictures"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        png(folder / name / "1.png", size=(12, 12))
    # the same files load while the limit is as shipped ...
    assert load_image(image, 1, (28, 28), dark_background=False).shape == (1, 28, 28)
    assert len(load_dataset("folder", "train", data_dir=folder)) == 2
    # ... and are refused once 144 pixels is over twice the limit (Pillow's error threshold)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 70)
    with pytest.raises(CnnzooError, match="decompression-bomb limit"):
        load_image(image, 1, (28, 28), dark_background=False)
    with pytest.raises(CorruptDataError, match="decompression-bomb limit"):
        load_dataset("folder", "train", data_dir=folder)
    assert main(["predict", str(trained_run), str(image), "--device", "cpu"]) == 2
    assert "decompression-bomb limit" in one_line(capsys)


def _text(path):
    path.write_text("a shopping list, not a picture")


def _truncated_png(path):
    png(path, size=(20, 20), mode="RGB")
    _truncate(path, 200)


def _truncated_jpeg(path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), np.uint8)).save(
        path, format="JPEG")
    _truncate(path, path.stat().st_size // 2)


BAD_IMAGES = {
    "text": _text,
    "empty": lambda p: p.write_bytes(b""),
    "png header only": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n"),
    "truncated png": _truncated_png,
    "truncated jpeg": _truncated_jpeg,
    "gif named png": lambda p: Image.new("RGB", (6, 6)).save(p, format="GIF"),
    "a folder": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("defect", BAD_IMAGES)
def test_files_that_are_not_good_images_are_one_line_errors(tmp_path, trained_run, capsys,
                                                            defect):
    bad = tmp_path / "picture.png"
    BAD_IMAGES[defect](bad)
    with pytest.raises(CnnzooError) as error:
        load_image(bad, 1, (28, 28), dark_background=True)
    assert "picture.png" in str(error.value) and "\n" not in str(error.value)
    assert main(["predict", str(trained_run), str(bad), "--device", "cpu"]) == 2
    assert "picture.png" in one_line(capsys)

    if bad.is_dir():
        return  # in an image folder, a folder is a sub-folder of its class
    folder = tmp_path / "pictures"
    for name in ("good", "bad"):
        (folder / name).mkdir(parents=True)
        png(folder / name / "1.png")
    shutil.copy(bad, folder / "bad" / "2.png")
    with pytest.raises(CorruptDataError) as error:
        load_dataset("folder", "train", data_dir=folder)
    assert "2.png" in str(error.value) and "\n" not in str(error.value)


@pytest.fixture
def fake_ghostscript(tmp_path, monkeypatch) -> Path:
    """A ``gs`` on PATH that only leaves a marker, and Pillow made to look for it afresh."""
    marker = tmp_path / "ghostscript-ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 0\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for Ghostscript")
def test_an_eps_file_never_reaches_ghostscript(tmp_path, fake_ghostscript, trained_run, capsys):
    eps = tmp_path / "drawing.png"  # the name says PNG; the content is PostScript
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="EPS")
    eps.write_bytes(buffer.getvalue())
    sanity = tmp_path / "sanity.eps"
    sanity.write_bytes(buffer.getvalue())
    try:
        with Image.open(sanity) as image:  # Pillow left alone does run it ...
            image.load()
    except OSError:
        pass  # the stand-in draws nothing
    assert fake_ghostscript.exists()
    fake_ghostscript.unlink()
    EpsImagePlugin.gs_binary = None

    with pytest.raises(CnnzooError, match="not a readable image"):  # ... cnnzoo does not
        load_image(eps, 1, (28, 28), dark_background=False)
    assert main(["predict", str(trained_run), str(eps), "--device", "cpu"]) == 2
    one_line(capsys)
    folder = tmp_path / "pictures"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        shutil.copy(eps, folder / name / "1.png")
    with pytest.raises(CorruptDataError, match="EPS image"):
        load_dataset("folder", "train", data_dir=folder)
    assert not fake_ghostscript.exists()


# --- the static guard ----------------------------------------------------------------------------

UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve",
                      "joblib"}


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def unsafe_constructs(source: str) -> list[tuple[int, str]]:
    """(line, what) for each construct that could run code from a file, or weaken Pillow."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in UNPICKLING_MODULES:
                    found.append((node.lineno, f"imports {name}"))
        elif isinstance(node, ast.Call):
            called = _dotted(node.func)
            if called in ("eval", "exec", "compile", "__import__"):
                found.append((node.lineno, f"calls {called}()"))
            elif called == "torch.load" or called.endswith(".torch.load"):
                if _keyword(node, "weights_only") is not True:
                    found.append((node.lineno, "torch.load without weights_only=True"))
            elif called in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") not in (
                    None, False):
                found.append((node.lineno, f"{called} with allow_pickle"))
            if _keyword(node, "shell") not in (None, False):
                found.append((node.lineno, f"{called} with shell=True"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = _dotted(target)
                if name.endswith(("MAX_IMAGE_PIXELS", "LOAD_TRUNCATED_IMAGES")):
                    found.append((node.lineno, f"sets {name}"))
    return found


@pytest.mark.parametrize("snippet", [
    "import pickle", "from pickle import loads", "import dill as d",
    "torch.load(path)", "torch.load(path, weights_only=False)", "np.load(f, allow_pickle=True)",
    "eval(text)", "exec(code)", "Image.MAX_IMAGE_PIXELS = None",
    "ImageFile.LOAD_TRUNCATED_IMAGES = True", "subprocess.run(cmd, shell=True)",
])
def test_the_guard_sees_each_unsafe_construct(snippet):
    assert unsafe_constructs(snippet), snippet


def test_the_guard_passes_safe_code():
    assert unsafe_constructs("torch.load(p, map_location='cpu', weights_only=True)\n"
                             "np.load(f)\nmodel.eval()\nsafetensors.torch.load_file(p)") == []


def test_no_code_path_unpickles_or_evaluates():
    files = sorted(PACKAGE.rglob("*.py"))
    hub = PACKAGE.parents[1] / "hubconf.py"
    files += [hub] if hub.exists() else []
    assert len(files) > 30
    problems = [f"{path.relative_to(PACKAGE.parent)}:{line}: {what}" for path in files
                for line, what in unsafe_constructs(path.read_text())]
    assert problems == []
