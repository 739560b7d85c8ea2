"""A run's report: one self-contained HTML file that shows what was trained and what it learned.

Configuration, the model's summary table and block diagram, training curves, accuracy per class
and the confusion matrix, predictions on test images, Grad-CAMs of the mistakes (with Captum
installed), the first layer's kernels and the feature maps of one test image. Every picture is embedded as a base64 PNG data URI and the style sheet
is inline, so the file opens anywhere, offline, and can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from ._html import escape, html_table
from .errors import CnnzooError

REPORT = "report.html"
SUMMARY_COLUMNS = ("output_size", "num_params", "kernel", "stride", "padding",
                   "receptive_field", "macs")
SUMMARY_ROWS = 60  # the summary table opens the module tree as deep as keeps it this short

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #ffffff; }
h1 { font-size: 26px; margin: 4px 0 2px; }
h2 { font-size: 19px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 34px; }
p.lead { color: #59636e; margin: 0 0 14px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 130px; }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { font-size: 12px; color: #59636e; }
.columns { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
.columns > div { flex: 1 1 420px; min-width: 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e8eb; padding: 3px 10px 3px 4px; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; font-weight: 600; }
td:first-child { white-space: nowrap; overflow-wrap: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
          white-space: pre; }
.scroll { max-height: 560px; overflow: auto; border: 1px solid #e5e8eb; }
.bar { background: #e5e8eb; width: 160px; height: 11px; border-radius: 3px; }
.bar > div { background: #2f81f7; height: 11px; border-radius: 3px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e8eb; }
figcaption { font-size: 13px; color: #59636e; margin-top: 4px; }
.note { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 10px;
        font-size: 13px; }
ul.totals { font-size: 13px; padding-left: 18px; }
footer { margin-top: 36px; font-size: 12px; color: #59636e; }
"""


@dataclass
class Report:
    """A rendered report: the HTML text, how many pictures it embeds, and notes about parts that
    could not be drawn (each also shown in the page)."""

    html: str
    pictures: int
    notes: list[str] = field(default_factory=list)


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class _Page:
    def __init__(self):
        self.parts: list[str] = []
        self.pictures = 0
        self.notes: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, png: bytes, alt: str, caption: str = "") -> None:
        self.pictures += 1
        caption_html = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        self.add(f'<figure><img alt="{escape(alt)}" src="{png_data_uri(png)}">{caption_html}'
                 f"</figure>")

    def note(self, what: str, error: Exception) -> None:
        text = f"{what}: {error}"
        self.notes.append(text)
        self.add(f'<p class="note">{escape(text)}</p>')


def _flatten(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    pairs = []
    for key in sorted(config):
        value = config[key]
        if isinstance(value, dict):
            pairs += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, (list, tuple)) and key in ("classes",):
            pairs.append((prefix + key, ", ".join(map(str, value))))
        else:
            pairs.append((prefix + key, json.dumps(value) if not isinstance(value, str)
                          else value))
    return pairs


def _curve_png(history, title: str) -> bytes:
    from .plots import curves_figure, figure_png

    return figure_png(curves_figure(history, title=title))


def _confusion_png(result, title: str) -> bytes:
    from .plots import confusion_figure, figure_png

    return figure_png(confusion_figure(result.confusion, result.classes, title=title))


def _summary_section(page: _Page, run) -> None:
    from .inspect.summary import summary

    size = tuple(run.config["input_size"])
    result = summary(run.model, input_size=(1, *size), columns=SUMMARY_COLUMNS)
    depth = 1
    for level in range(2, 6):
        if sum(row.depth <= level for row in result.layers) > SUMMARY_ROWS:
            break
        depth = level
    table, totals = result.html(depth, inline=False)
    page.add(f'<div class="scroll">{table}</div>')
    page.add(totals)


def build_report(run_dir, *, device: str = "auto", count: int = 16, data_dir=None,
                 progress=None) -> Report:
    """The HTML report of a run directory (see the module docstring) as a ``Report``. The test
    set (the run's, or the one in ``data_dir``) is evaluated on ``device`` (``progress`` as in
    ``evaluate``, for a bar); ``count`` test images (1 to ``MAX_COUNT``) are shown with
    predictions. A part that needs the data set (evaluation, predictions, feature maps) is
    replaced by a note when the data cannot be read; a missing or unreadable run, a device that
    is not here or a ``count`` out of range raises ``CnnzooError`` before any work."""
    from . import __version__
    from .plots import figure_png
    from .show._common import conv_layers
    from .show.architecture import draw_architecture
    from .show.features import run_features
    from .show.filters import draw_filters
    from .show.predictions import check_count, run_predictions
    from .device import pick_device
    from .training import evaluate, load_run
    from .training.progress import epoch_table

    check_count(count)
    pick_device(device)
    run = load_run(run_dir)
    config = run.config
    model_name, data_name = config["model"], config["data"]
    title = f"{model_name} on {data_name}"
    page = _Page()
    history = run.history
    last = history[-1] if history else {}

    result = evaluation_error = None
    try:
        result = evaluate(run, data_dir=data_dir, device=device, plot=False,
                          progress=progress)
    except CnnzooError as error:
        evaluation_error = error

    cards = [("test accuracy", f"{result.accuracy:.2%}" if result else "--"),
             ("epochs", str(last.get("epoch", 0))),
             ("final train loss", f"{last['train_loss']:.4f}" if last else "--"),
             ("parameters", f"{sum(p.numel() for p in run.model.parameters()):,}"),
             ("input", "x".join(map(str, config["input_size"])))]
    page.add(f"<h1>{escape(title)}</h1>")
    created = config.get("created", "at an unknown time")
    page.add(f'<p class="lead">Run directory {escape(Path(run_dir).resolve())}, created '
             f"{escape(created)}; {len(run.classes)} classes.</p>")
    page.add('<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{escape(v)}</div>'
        f'<div class="label">{escape(k)}</div></div>' for k, v in cards) + "</div>")
    if evaluation_error is not None:
        page.note("the test set could not be evaluated", evaluation_error)

    page.add("<h2>Training</h2>")
    if history:
        page.add('<div class="columns"><div>')
        page.figure(_curve_png(history, title), "training curves",
                    "Training loss and accuracy, and validation (or test) accuracy, after "
                    "each epoch.")
        page.add("</div><div>")
        page.add(html_table(*epoch_table(history), numeric=range(7)))
        page.add("</div></div>")
    else:
        page.add('<p class="note">No finished epoch is recorded in metrics.csv.</p>')

    page.add("<h2>Configuration</h2>")
    settings = _flatten(config)
    half = (len(settings) + 1) // 2
    page.add('<div class="columns">' + "".join(
        f"<div>{html_table(['setting', 'value'], part)}</div>"
        for part in (settings[:half], settings[half:]) if part) + "</div>")

    if result is not None:
        page.add("<h2>Evaluation on the test set</h2>")
        page.add('<div class="columns"><div>')
        page.figure(_confusion_png(result, f"{title}: test accuracy {result.accuracy:.4f}"),
                    "confusion matrix",
                    f"Confusion matrix over {result.num_examples:,} test images (rows: true "
                    f"class, columns: predicted).")
        page.add("</div><div>")
        rows = []
        for index, (name, accuracy) in enumerate(zip(result.classes, result.per_class)):
            support = sum(result.confusion[index])
            bar = (f'<div class="bar"><div style="width:{accuracy * 100:.1f}%"></div></div>')
            rows.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{accuracy:.3f}</td>"
                        f"<td>{bar}</td><td class=\"num\">{support:,}</td></tr>")
        page.add("<table><thead><tr><th>class</th><th>accuracy</th><th></th><th>images</th>"
                 "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
        page.add("</div></div>")

    page.add("<h2>Predictions</h2>")
    shown = min(count, result.num_examples) if result else count  # a small test set: all of it
    try:
        page.figure(figure_png(run_predictions(run, count=count, data_dir=data_dir)),
                    "predictions",
                    f"{shown} random test images with the predicted class, its probability "
                    f"and the true class; mistakes are framed in red.")
    except CnnzooError as error:
        page.note("predictions could not be drawn", error)

    page.add("<h2>Where it looks when it is wrong</h2>")
    try:
        from .show.cam import mistake_indices, run_cams

        wrong = mistake_indices(run, data_dir=data_dir)
        if wrong:
            page.figure(figure_png(run_cams(run, indices=wrong, data_dir=data_dir)[0]),
                        "Grad-CAMs of mistakes",
                        f"Grad-CAM of the predicted class for the first {len(wrong)} test "
                        f"images the model gets wrong: the regions its wrong answer rests on.")
        else:
            page.add('<p class="note">No mistake among the first test images.</p>')
    except CnnzooError as error:
        page.note("the CAMs of mistakes could not be drawn", error)

    page.add("<h2>Model</h2>")
    size = tuple(config["input_size"])
    page.figure(figure_png(draw_architecture(run.model, size, title=model_name)),
                "architecture", "The model's stages and layers with their output shapes, drawn "
                                "from the model itself.")
    _summary_section(page, run)

    page.add("<h2>What the first layer learned</h2>")
    if conv_layers(run.model):
        page.figure(figure_png(draw_filters(run.model, title=title)), "filters",
                    "The kernels of the first convolution layer, in a colour map centred on "
                    "zero.")
    else:
        page.add('<p class="note">The model has no convolution layer.</p>')

    page.add("<h2>Feature maps</h2>")
    try:
        page.figure(figure_png(run_features(run, index=0, data_dir=data_dir, title=title)[0]),
                    "feature maps", "Test image 0 on its way through the network: the first "
                                    "maps of each stage, each stretched to its own range.")
    except CnnzooError as error:
        page.note("feature maps could not be drawn", error)

    page.add(f"<footer>Written by cnnzoo {escape(__version__)} from {escape(Path(run_dir).name)}."
             f"</footer>")
    text = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}: cnnzoo report</title>\n<style>{STYLE}</style>\n</head>\n"
            "<body>\n<main>\n" + "\n".join(page.parts) + "\n</main>\n</body>\n</html>\n")
    return Report(text, page.pictures, page.notes)


def write_report(run_dir, out=None, *, device: str = "auto", count: int = 16, data_dir=None,
                 progress=None, force: bool = False) -> tuple[Path, Report]:
    """Build the report of a run directory and write it to ``out`` (default
    ``RUN_DIR/report.html``) atomically; returns the path and the ``Report``. An ``out`` that
    cannot be written (a folder, a link, a device, a run's own file, an existing file without
    ``force``) is refused before the report is built."""
    from ._io import atomic_write_text
    from .plots import output_file

    out = output_file(out, force=force)
    report = build_report(run_dir, device=device, count=count, data_dir=data_dir,
                          progress=progress)
    path = out or Path(run_dir) / REPORT
    atomic_write_text(path, report.html)
    return path, report
