"""The documents against the program: every `cnnzoo ...` command line in README.md and docs/
parses against the command line's own parser, and the README's Python runs."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from cnnzoo.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FASHION = Path("/usr/share/datasets/fashion-mnist")

# the words documents use for what a reader fills in, and a value each can take
PLACEHOLDERS = {
    "NAME": "lenet5_d2l", "NAME...": "lenet5_d2l", "DIR": "runs/x", "RUN": "runs/x",
    "RUN_DIR": "runs/x", "FILE": "out.png", "IMAGE": "a.png", "IMAGE...": "a.png",
    "PATTERN": "lenet*", "OUT": "out", "L": "features.0", "N": "3", "S": "1", "D": "10",
    "A": "0.9", "K": "2", "C,H,W": "1,28,28", "[N,]C,H,W": "1,28,28", "N,C,H,W": "1,1,28,28",
    "FIELD=VALUE": "erasing=0", "NAME=VALUE": "width=32", "DATA_DIR": "data",
}
# lines that show an error on purpose: (document, the line's start)
MEANT_TO_FAIL = {
    ("reliability.md", "cnnzoo train --seed -1"),
}
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
_INLINE = re.compile(r"`(cnnzoo [^`]+)`")


def command_lines(text: str) -> list[str]:
    """The `cnnzoo ...` lines of a document's sh code blocks: a comment after two spaces and
    `#` cut off, a line ending in `\\` joined to the next."""
    lines = []
    for language, block in _FENCE.findall(text):
        if language not in ("", "sh", "bash", "console"):
            continue
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = re.split(r"\s+#\s", line.strip())[0].strip()
            if line.startswith("cnnzoo "):
                lines.append(line)
    return lines


# the value a placeholder takes after these options (after any other: 3)
OPTION_VALUES = {"--input-size": "1,28,28", "--layer": "features.0",
                 "--data-dir": "data", "--set": "erasing=0", "--model-arg": "width=32",
                 "--resume": "runs/x", "--config": "run.yaml", "--target-acc": "0.9",
                 "--models": "lenet*", "--format": "onnx", "--columns": "all",
                 "--split": "test", "--device": "cpu", "--recipe": "d2l"}
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_,\[\]]*(\.\.\.)?|[a-z]|\.\.\.")


def concrete(line: str) -> list[str]:
    """The line's words with its placeholders filled in: an optional part ``[...]`` is taken
    (of ``[a | b]``, ``a``), of alternatives ``a|b`` the first, a pipe and what follows it
    left out."""
    previous = None
    while previous != line:  # innermost brackets first
        previous = line
        line = re.sub(r"\[([^\[\]]*)\]", lambda m: m.group(1).split(" | ")[0], line)
    words, skip = [], False
    for word in shlex.split(line)[1:]:
        if word == "|":
            break
        if skip:
            skip = False
            continue
        option = words[-1] if words and words[-1].startswith("--") else None
        if "|" in word and not word.startswith(("'", "--set")):
            first, rest = word.split("|", 1)
            word, skip = first, rest.startswith("--")  # "IMAGE|--index N": IMAGE alone
        if word in ("flags", "…"):
            continue
        if _PLACEHOLDER.fullmatch(word):
            if word in PLACEHOLDERS and len(word) > 1:
                word = PLACEHOLDERS[word]
            elif option is not None:
                word = OPTION_VALUES.get(option, "3")
            elif word in PLACEHOLDERS:
                word = PLACEHOLDERS[word]
            elif word.startswith("..."):
                continue
        words.append(word)
    return words


def options_of(words: list[str]):
    """The parser of the (sub)command the words name, and the words after its name."""
    parser = build_parser()
    rest = list(words)
    while rest:
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
                      None)
        if action is None or rest[0] not in action.choices:
            break
        parser = action.choices[rest.pop(0)]
    return parser, rest


def every_line():
    for document in DOCUMENTS:
        text = document.read_text()
        for line in command_lines(text):
            meant = any(document.name == name and line.startswith(start)
                        for name, start in MEANT_TO_FAIL)
            yield pytest.param(line, meant, id=f"{document.name}: {line[:60]}")


def every_mention():
    for document in DOCUMENTS:
        text = _FENCE.sub("", document.read_text())
        for mention in _INLINE.findall(text):
            yield pytest.param(mention, id=f"{document.name}: {mention[:60]}")


def test_the_documents_hold_command_lines():
    found = [line for document in DOCUMENTS for line in command_lines(document.read_text())]
    assert len(found) > 80 and any(line.startswith("cnnzoo train") for line in found)


@pytest.mark.parametrize("line, meant_to_fail", list(every_line()))
def test_every_documented_command_line_parses(line, meant_to_fail, capsys):
    parser = build_parser()
    try:
        parser.parse_args(concrete(line))
    except SystemExit:
        error = capsys.readouterr().err.strip().splitlines()[-1:] or [""]
        assert meant_to_fail, f"{line!r} does not parse: {error[0]}"
    else:
        assert not meant_to_fail, f"{line!r} is shown failing, but parses"


@pytest.mark.parametrize("mention", list(every_mention()))
def test_every_flag_named_in_the_text_is_one_of_its_commands(mention):
    """Code in the text (`cnnzoo eval --fp32`) may leave arguments out; its command and its
    options must exist."""
    parser, rest = options_of(concrete(mention))
    known = {option for action in parser._actions for option in action.option_strings}
    flags = [word.split("=")[0] for word in rest if word.startswith("--")]
    assert set(flags) <= known, f"{mention!r}: {sorted(set(flags) - known)} not options of " \
                                f"{parser.prog}"


def test_a_command_line_with_an_unknown_flag_is_caught(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(concrete("cnnzoo train NAME --no-such-flag"))


def python_blocks(text: str) -> list[str]:
    return [block for language, block in _FENCE.findall(text) if language == "python"]


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is not installed")
def test_the_readmes_python_runs(tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        namespace = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "runs").is_dir()
    assert namespace["result"].final["test_acc"] > 0.5
