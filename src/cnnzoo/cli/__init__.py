"""The ``cnnzoo`` command: a thin layer that parses arguments, calls the library and prints.

Each subcommand lives in its own module here with ``register(subparsers)``, which adds its parser
and sets ``func(args) -> int``. A mistake in the arguments, and a ``CnnzooError`` (the user's
mistake) raised while the command works, print one line starting ``cnnzoo: error:`` and exit
with status 2; ``cnnzoo`` alone prints its help (status 0), a command group without its
subcommand (``cnnzoo show``) a line naming the choices (status 2); Ctrl-C exits with 130,
and SIGTERM (``kill``, a batch system's time limit) likewise with 143, each in one line;
output into a closed pipe (``cnnzoo models | head``) ends quietly with 141, as a process
killed by SIGPIPE would; any other refusal of the system (a full disk, standard output on one
included) is one line and status 1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import re
import signal
import sys
import threading
import warnings

from ..errors import CnnzooError, CnnzooWarning

# Subcommand modules, in the order --help lists them.
COMMANDS = ("models", "shapes", "summary", "cost", "data", "train", "eval", "predict", "compare",
            "bench", "leaderboard",
            "show", "report", "export")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a mistyped flag gets one line, not the usage block, that
    starts as every other error does (``cnnzoo: error: shapes: argument --batch: ...``).

    An argument that starts with a minus and a digit is a value, never an option, also when it
    is a comma-separated list (``--input-size -1,28,28``), so that the option's own check
    refuses it; argparse alone takes only a single number so.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d[\d.,-]*$")

    def error(self, message: str):
        program, _, command = self.prog.partition(" ")
        where = f"{command}: " if command else ""
        self.exit(2, f"{program}: error: {where}{one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (``a\\nb``), so that a
    message quoting what the user typed stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cnnzoo",
        description="The classic convolutional networks: build, inspect, train, evaluate.")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"cnnzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
        _COMMAND_FLAGS[name] = _option_strings(subparsers.choices[name])
    _FLAGS.clear()
    _FLAGS.update(*_COMMAND_FLAGS.values())
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and of its subcommands."""
    flags = set()
    for action in parser._actions:
        flags.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _option_strings(sub)
    return flags


# The library names its parameters (``lr=``, ``resume=``); the command line says its flags,
# those of the command running (``_FLAGS``; every command's until one runs). A parameter whose
# flag has another name, and the recipe fields, which train's --set changes:
_FLAGS: set[str] = set()
_COMMAND_FLAGS: dict[str, set[str]] = {}
RENAMED = {"train_subset": "--subset", "model_args": "--model-arg", "model": "NAME"}
# a word and "=" not inside a quoted text (what the user typed, quoted back) nor after --set;
# the value ends at a space or punctuation
_PARAMETER = re.compile(r"(?<![\w./'\"-])(?<!--set )([a-z][a-z0-9_]*)="
                        r"('[^']*'|\"[^\"]*\"|[^\s;:,)]*)")


def as_flags(text: str) -> str:
    """A library message in the command line's words: ``lr=0.09`` is ``--lr 0.09``,
    ``fast=True`` is ``--fast``, ``resume=`` is ``--resume``, a recipe field
    ``crop_padding=30`` is ``--set crop_padding=30``; other words stay as they are."""
    from ..training.recipes import Recipe

    fields = set(Recipe.__dataclass_fields__)

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        option = RENAMED.get(name) or f"--{name.replace('_', '-')}"
        if value[:1] in "'\"" and not any(c.isspace() for c in value):
            value = value[1:-1]  # a path quoted in Python's words needs no quotes in a shell's
        if name not in RENAMED and option not in _FLAGS:
            if name in fields and "--set" in _FLAGS:
                return f"--set {name}={value or '...'}"
            return match.group(0)
        return option if value in ("", "True") else f"{option} {value}"

    return _PARAMETER.sub(flag, text)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """cnnzoo's own warnings as one line, ``cnnzoo: warning: ...``, each once per process and
    in the command line's words; others as Python shows them."""
    if issubclass(category, CnnzooWarning):
        text = one_line(as_flags(str(message)))
        if text not in _warned:
            _warned.add(text)
            print(f"cnnzoo: warning: {text}", file=file or sys.stderr, flush=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning
_warned: set[str] = set()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that the command ends as on Ctrl-C: a file
    being written is left whole or not at all, a run directory's lock is let go, and a run
    says how to continue."""


def _terminate(signum, frame):
    raise Terminated


def interrupted(error: KeyboardInterrupt, hint: str = "") -> int:
    """Say in one line that the command was stopped (Ctrl-C, or SIGTERM), with ``hint``
    (``"; continue with: ..."``); returns the status of a process stopped by that signal."""
    terminated = isinstance(error, Terminated)
    print(f"cnnzoo: {'terminated' if terminated else 'interrupted'}{hint}", file=sys.stderr)
    return 128 + (signal.SIGTERM if terminated else signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    parser = build_parser()
    args = parser.parse_args(argv)
    # the words given, for a record of the command (leaderboard's RESULTS.md): these, not the
    # process's, where main is called from Python
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.command in _COMMAND_FLAGS:  # the running command's flags word its messages
        _FLAGS.clear()
        _FLAGS.update(_COMMAND_FLAGS[args.command])
    # only the main thread may set a handler; main called from Python gets its own back after
    handles_term = threading.current_thread() is threading.main_thread()
    if handles_term:
        on_term = signal.signal(signal.SIGTERM, _terminate)
    # the program draws into files only: matplotlib's headless backend, unless the user chose
    # one (main called from Python gets its own setting back)
    backend = os.environ.get("MPLBACKEND")
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        return int(args.func(args) or 0)
    except CnnzooError as error:
        print(f"cnnzoo: error: {one_line(as_flags(str(error)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        return interrupted(error)
    except OSError as error:
        return _os_error(error)
    finally:
        if backend is None:
            os.environ.pop("MPLBACKEND", None)
        if handles_term:  # None: a handler set outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, signal.SIG_DFL if on_term is None else on_term)


SIGPIPE_STATUS = 128 + 13


def _os_error(error: OSError) -> int:
    """The status for an ``OSError`` that reached the command line, said in one line unless it
    is the reader of standard output going away. Output that standard output refused is
    dropped, so that the interpreter's flush at exit does not raise again."""
    if isinstance(error, BrokenPipeError):
        _drop_output()
        return SIGPIPE_STATUS
    where = f": {error.filename}" if error.filename else ""
    print(f"cnnzoo: error: {one_line(error.strerror or str(error))}{where}", file=sys.stderr)
    try:
        sys.stdout.flush()
    except OSError:
        _drop_output()
    return 1


def _drop_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run(program=main) -> None:
    """The ``cnnzoo`` program: ``main`` on the process's arguments, then exit with its status.
    ``program`` is another such ``main`` (``python -m cnnzoo.scratch``'s): a refusal of standard
    output while it prints is treated as ``main``'s are.

    Everything still alive is moved out of the garbage collector's sight first (``gc.freeze``):
    the interpreter's last collections otherwise walk every object torch left behind, for
    memory the process is about to hand back anyway, a good part of a short `cnnzoo train`
    (measured: BENCHMARKS.md, the exit).
    Files, exit handlers and module teardown are left as they are.
    """
    try:
        status = program()
        sys.stdout.flush()
    except OSError as error:
        status = _os_error(error)
    gc.freeze()
    sys.exit(status)
