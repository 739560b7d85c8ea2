"""The set-up that `make demo` and `make test` do: the Makefile and pyproject.toml."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def make(*args, **env):
    return subprocess.run([MAKE, "--no-print-directory", "-C", str(REPO), *args],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


def old_python(folder: Path) -> Path:
    """An executable that answers ``--version`` as Python 3.9 does and fails as it would on
    code for 3.10."""
    path = folder / "python3.9"
    path.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.9.18" && exit 0\nexit 1\n')
    path.chmod(0o755)
    return path


@needs_make
@pytest.mark.parametrize("venv_state", ["absent", "half-made"])
def test_a_python_too_old_is_named_before_anything_is_installed(tmp_path, venv_state):
    venv = tmp_path / "venv"
    if venv_state == "half-made":  # what a `venv` that failed leaves: a python without pip
        (venv / "bin").mkdir(parents=True)
        shutil.copy(old_python(tmp_path), venv / "bin" / "python")
    python = old_python(tmp_path)
    done = make(f"VENV={venv}", f"PYTHON={python}", "install")
    assert done.returncode != 0
    assert (f"cnnzoo needs Python 3.10 or newer; {python} is Python 3.9.18: name another, "
            f"e.g. make PYTHON=python3.12") in done.stderr
    assert "pip" not in done.stdout and not (venv / "pyvenv.cfg").exists()


@needs_make
def test_a_torch_spec_given_to_make_reaches_a_venv_set_up_already(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # newer than pyproject.toml: set up
    assert "Nothing to be done" in make("-n", f"VENV={venv}", "install").stdout
    for given in ({"args": ["TORCH_SPEC=torch==2.14.1"]},
                  {"args": [], "env": {"TORCH_SPEC": "torch==2.14.1"}}):
        planned = make("-n", f"VENV={venv}", *given["args"], "install", **given.get("env", {}))
        assert f"{venv}/bin/python -m pip install -q 'torch==2.14.1'" in planned.stdout


def test_the_makefile_asks_for_the_python_that_pyproject_requires():
    makefile = (REPO / "Makefile").read_text()
    required = re.search(r'^requires-python = ">=(\d+)\.(\d+)"$',
                         (REPO / "pyproject.toml").read_text(), re.M).groups()
    assert re.search(r"sys\.version_info < \((\d+), (\d+)\)", makefile).groups() == required
    assert f"needs Python {'.'.join(required)} or newer" in makefile


def test_pyproject_gives_its_license_as_setuptools_will_keep_reading_it():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    # a table here is deprecated in setuptools 77 and refused from 2027-02-18 on
    assert isinstance(pyproject["project"]["license"], str)
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
