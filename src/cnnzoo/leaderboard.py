"""The Fashion-MNIST leaderboard: train models with a recipe and set the results beside the book's.

``run_leaderboard`` trains each model (one run directory per model and seed), then
``write_board`` writes RESULTS.md (the book's figures from d2l's classic edition beside ours, and
the difference) and leaderboard.png (test accuracy against parameters and against training time).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import CnnzooError

# Dive into Deep Learning, classic PyTorch edition (train_ch6, 10 epochs, one V100):
# final loss, train accuracy, test accuracy, examples/sec; d2l-zh v2's test accuracy beside it.
BOOK = {
    "lenet5_d2l": (0.457, 0.829, 0.809, 84_565, 0.779),
    "alexnet_d2l": (0.330, 0.879, 0.884, 4_186, 0.883),
    "vgg11_d2l": (0.187, 0.930, 0.916, 2_564, 0.920),
    "nin_d2l": (0.336, 0.874, 0.867, 3_193, 0.790),
    "googlenet_d2l": (0.248, 0.905, 0.889, 3_513, 0.886),
    "lenet5_bn_scratch_d2l": (0.266, 0.900, 0.782, 33_977, 0.807),
    "lenet5_bn_d2l": (0.277, 0.897, 0.838, 57_912, 0.708),
    "resnet18_d2l": (0.011, 0.997, 0.865, 4_713, 0.893),
    "densenet_d2l": (0.142, 0.948, 0.882, 5_574, 0.885),
}
BOOK_MODELS = tuple(BOOK)


@dataclass
class Entry:
    model: str
    recipe: str
    parameters: int
    epochs: int
    resize: int | None
    train_subset: int | None
    seeds: list[int]
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    examples_per_sec: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    wall_seconds: list[float] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    reduced: str = ""               # how this run departs from the full recipe, if it does
    flags: list[str] = field(default_factory=list)  # what --fast chose, seed by seed
    at_chance: list[int] = field(default_factory=list)  # seeds whose training ended at chance
    data: str = "fashion-mnist"     # the book's figures are for Fashion-MNIST only

    @staticmethod
    def mean(values):
        return statistics.fmean(values) if values else float("nan")

    @staticmethod
    def spread(values):
        return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0


def select_models(pattern: str | None, recipe: str) -> list[str]:
    """The models a board covers: the registry's matches of ``pattern`` (several patterns
    separated by commas, in their order), or by default the book's nine (the ``best`` recipe:
    its own model)."""
    from .models import list_models
    from .training.recipes import BEST_MODELS

    if pattern is None:
        return list(BEST_MODELS if recipe == "best" else BOOK_MODELS)
    names = []
    for part in (p.strip() for p in pattern.split(",")):
        matches = list_models(part) if part else []
        if not matches:
            raise CnnzooError(f"no model matches {part!r}; see `cnnzoo models`")
        names += [name for name in matches if name not in names]
    return names


def run_leaderboard(recipe: str = "d2l", models: list[str] | None = None, *, out="leaderboard",
                    device: str = "auto", epochs: int | None = None, resize: int | None = None,
                    train_subset: int | None = None, test_subset: int | None = None,
                    seeds: int = 1, data: str = "fashion-mnist", data_dir: str | None = None,
                    on_entry=None, reporter_factory=None, compile: bool = False,
                    amp: bool = False, channels_last: bool = False,
                    cuda_graphs: bool = False, fast: bool = False) -> list[Entry]:
    """Train every model with ``recipe`` (each over ``seeds`` seeds) and collect the results.

    ``epochs``, ``resize``, ``train_subset`` and ``test_subset`` shrink the runs for a machine
    without a GPU; the entries say so. ``compile``, ``amp`` and ``channels_last`` pick the fast path (the recipe
    is unchanged), as does ``cuda_graphs``; ``fast`` has each run measure which of them pay
    (``training.fastpath``). ``on_entry(entry)`` is called as each model finishes.
    """
    from .data.catalog import canonical_name
    from .training import recipe_for, train
    from .training.loop import at_chance

    data = canonical_name(data)
    out = Path(out)
    models = models or list(BOOK_MODELS)
    _check_runs_free(out, models, recipe, seeds)
    entries = []
    for name in models:
        base = recipe_for(name, recipe)
        entry = Entry(name, recipe, 0, epochs or base.epochs, resize or base.resize,
                      train_subset, list(range(seeds)), data=data)
        notes = []
        if epochs and epochs != base.epochs:
            notes.append(f"{epochs} epoch{'s' * (epochs != 1)}, not {base.epochs}")
        if resize and resize != base.resize:
            notes.append(f"resize {resize}, not {base.resize or 'none'}")
        if train_subset:
            notes.append(f"{train_subset:,} training images")
        if test_subset:
            notes.append(f"tested on {test_subset:,} images")
        entry.reduced = "; ".join(notes)
        for seed in entry.seeds:
            run_dir = _run_dir(out, name, recipe, seed)
            result = train(name, data, recipe, epochs=epochs, resize=resize, device=device,
                           seed=seed, out=run_dir, data_dir=data_dir, train_subset=train_subset,
                           test_subset=test_subset, compile=compile, amp=amp,
                           channels_last=channels_last, cuda_graphs=cuda_graphs, fast=fast,
                           reporter=reporter_factory() if reporter_factory else None)
            final = result.final
            entry.parameters = sum(p.numel() for p in result.model.parameters())
            entry.train_loss.append(final["train_loss"])
            entry.train_acc.append(final["train_acc"])
            entry.test_acc.append(final["test_acc"])
            if math.isfinite(result.examples_per_sec):  # NaN: every step was warm-up
                entry.examples_per_sec.append(result.examples_per_sec)
            entry.train_seconds.append(result.train_seconds)
            entry.wall_seconds.append(result.wall_seconds)
            entry.run_dirs.append(str(result.run_dir))
            if at_chance(final, len(result.config["classes"])):
                entry.at_chance.append(seed)
            if "fast_path" in result.config:
                entry.flags.append(result.config["fast_path"]["chosen"])
        entries.append(entry)
        if on_entry:
            on_entry(entry)
    return entries


def _run_dir(out: Path, model: str, recipe: str, seed: int) -> Path:
    return out / "runs" / f"{model}-{recipe}-seed{seed}"


def _check_runs_free(out: Path, models: list[str], recipe: str, seeds: int) -> None:
    """Refuse, before anything trains, a board whose run directories already hold runs (an
    earlier board of these models and recipe, or one interrupted after its first epochs): a
    board is trained afresh, never merged with or resumed from the runs already there."""
    from .training.rundir import holds_run

    taken = [run_dir for name in models for seed in range(seeds)
             if holds_run(run_dir := _run_dir(out, name, recipe, seed))]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise CnnzooError(f"{out} already holds runs of this board ({taken[0]}{more}); choose "
                          f"another out=, or remove them to train the board afresh")


def _pm(values, digits=3) -> str:
    mean = Entry.mean(values)
    text = f"{mean:.{digits}f}"
    if len(values) > 1:
        text += f" ± {Entry.spread(values):.{digits}f}"
    return text


def board_markdown(entries: list[Entry], machine: str = "", command: str = "",
                   pending: list[str] = ()) -> str:
    """RESULTS.md: one row per model, the book's figures beside ours and the difference;
    ``pending`` names the models of the command not trained yet (a board in progress, or one
    that was interrupted)."""
    from .training.progress import rate_text

    lines = []
    if machine or command:
        lines += [f"Machine: {machine}" if machine else "",
                  f"Command: `{command}`" if command else "", ""]
    if pending:
        lines += [f"Unfinished: {len(entries)} of {len(entries) + len(pending)} models trained; "
                  f"not yet: {', '.join(pending)}", ""]
    lines += ["| model | params | recipe | book loss / train / test | ours loss / train / test "
              "| test vs book | examples/s | train s | wall s | notes |",
              "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for e in entries:
        book = BOOK.get(e.model) if e.data == "fashion-mnist" else None
        book_text = f"{book[0]:.3f} / {book[1]:.3f} / {book[2]:.3f}" if book else "—"
        ours = f"{_pm(e.train_loss)} / {_pm(e.train_acc)} / {_pm(e.test_acc)}"
        delta = f"{Entry.mean(e.test_acc) - book[2]:+.3f}" if book else "—"
        seeds = f"{len(e.seeds)} seeds (mean ± half-range)" if len(e.seeds) > 1 else ""
        chosen = f"--fast chose {' / '.join(dict.fromkeys(e.flags))}" if e.flags else ""
        stuck = (f"seed{'s' if len(e.at_chance) > 1 else ''} "
                 f"{', '.join(map(str, e.at_chance))} did not learn (ended at chance)"
                 if e.at_chance else "")
        notes = "; ".join(n for n in (stuck, e.reduced, seeds, chosen) if n)
        lines.append(f"| {e.model} | {e.parameters:,} | {e.recipe} | {book_text} | {ours} | "
                     f"{delta} | {rate_text(Entry.mean(e.examples_per_sec))} | "
                     f"{Entry.mean(e.train_seconds):.1f} | {Entry.mean(e.wall_seconds):.1f} | "
                     f"{notes} |")
    return "\n".join(lines) + "\n"


def plot_board(entries: list[Entry], path: Path, title: str = "") -> None:
    """``board_figure`` written to ``path``."""
    from .plots import save_figure

    save_figure(board_figure(entries, title), path)


def board_figure(entries: list[Entry], title: str = ""):
    """Test accuracy against parameters and against training seconds, one point per model."""
    from .plots import fonts, new_figure

    with fonts():
        return _draw_board(entries, title, new_figure(figsize=(11, 4.2)))


def _draw_board(entries: list[Entry], title: str, fig):
    axes = fig.subplots(1, 2, sharey=True)
    for e in entries:
        acc = Entry.mean(e.test_acc)
        for ax, x in zip(axes, (e.parameters, Entry.mean(e.train_seconds))):
            ax.scatter([x], [acc], s=30)
            ax.annotate(e.model, (x, acc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("parameters")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("training seconds (steps only)")
    axes[0].set_ylabel(f"{_data_title(entries)} test accuracy")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def write_board(entries: list[Entry], out, machine: str = "", command: str = "",
                pending: list[str] = ()) -> tuple[Path, Path]:
    """Write RESULTS.md, leaderboard.png and results.json into ``out``; returns the two paths.
    ``pending``: the models still to train, named in RESULTS.md (``board_markdown``)."""
    import json

    from ._io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "RESULTS.md"
    atomic_write_text(table, board_markdown(entries, machine, command, pending))
    atomic_write_text(out / "results.json",
                      json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    picture = out / "leaderboard.png"
    recipe = ", ".join(sorted({e.recipe for e in entries}))
    plot_board(entries, picture, title=f"{_data_title(entries)}, {recipe} recipe")
    return table, picture


def _data_title(entries: list[Entry]) -> str:
    names = dict.fromkeys(e.data for e in entries) or {"fashion-mnist": None}
    return ", ".join({"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST",
                      "cifar10": "CIFAR-10"}.get(name, name) for name in names)
