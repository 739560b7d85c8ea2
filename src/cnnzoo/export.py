"""Export a model to ONNX, TorchScript or a torch.export ExportedProgram, and check the file.

Every export is verified before it is kept: the file is loaded back (onnxruntime for ONNX,
``torch.jit.load`` for TorchScript, ``torch.export.load`` for an ExportedProgram) and run on random
batches of sizes other than the one it was traced with; its outputs must match the PyTorch model's
as ``torch.testing`` compares them: each element within ``tolerance`` plus ``rtol`` times the
model's own value, so that a deep net's large logits may differ by the float32 rounding their size
brings. The batch axis is dynamic in all three formats; the channels and spatial size are fixed at
``input_size``. The file is written under a temporary name and moved into place only when its check
passes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._io import atomic_file, check_target
from .errors import CnnzooError, InputTooSmallError, out_of_memory_as, refused_memory
from .geometry import parse_size

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
# torch.onnx translates into opset 18 and up; lower ones are reached with onnx's version
# converter, which cannot lower every operator (Reshape stops at 14: every flattening head)
NATIVE_OPSET = 18
OLDEST_OPSET = 7  # onnxruntime's oldest
TRACE_BATCH = 2
CHECK_BATCHES = (1, 3)  # other sizes than the traced one: a baked-in batch size shows up here


class ExportError(CnnzooError):
    """A model that cannot be exported, or whose exported file disagrees with it."""


@dataclass(frozen=True)
class ExportReport:
    """What ``export_model`` wrote and how well the file agrees with the PyTorch model."""

    path: Path
    format: str
    input_size: tuple[int, int, int]
    output_shape: tuple[int, ...]  # of the (first) output, without the batch axis
    batch_sizes: tuple[int, ...]
    max_abs_diff: float
    tolerance: float               # the absolute part of the limit
    opset: int | None = None       # the ONNX file's, as written
    rtol: float = 0.0              # the part relative to the model's own output
    max_rel_diff: float = 0.0      # the largest |difference| / |model's value|

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def export_model(model: nn.Module, path, format: str = "onnx", input_size=None, *,
                 tolerance: float = 1e-4, rtol: float = 1e-5, opset: int | None = None,
                 optimize: bool = True, force: bool = False) -> ExportReport:
    """Export ``model`` in eval mode to ``path`` and check the file against the model.

    ``input_size`` is the (C, H, W) the model takes (default: ``model.input_size`` where the model
    records it); the file takes (N, C, H, W) for any N and returns what the model returns,
    (N, num_classes) for the zoo's classifiers. ``format`` is ``"onnx"`` (dynamo exporter and
    the onnxscript ``optimize`` pass; ``opset`` from 7 to the installed onnx's newest, default
    the exporter's, below 18 through onnx's version converter, which cannot lower every model;
    the written file's opset is checked), ``"torchscript"``
    (``torch.jit.trace``) or ``"exported-program"`` (``torch.export``, a ``.pt2`` file). The
    file is checked on batches of 1 and 3 (traced with 2) and kept only when every output
    element differs from the model's by at most ``tolerance + rtol * |model's|``; otherwise,
    or when the model cannot be exported, ``ExportError`` says why. An existing file at
    ``path`` is replaced only with ``force``; a link, a device or a run's own file never. The
    model's mode is restored afterwards.
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if opset is not None:
        if format != "onnx":
            raise ExportError(f"an opset applies to ONNX files only, not to {format}")
        _check_opset(opset)
    size = _input_size(model, input_size)
    from .training.rundir import belongs_to_run

    try:
        path = check_target(path, force=force, parameter="path", protected=belongs_to_run)
    except CnnzooError as error:
        raise ExportError(str(error)) from error
    if format == "exported-program" and path.suffix != ".pt2":
        raise ExportError(f"an ExportedProgram file must end in .pt2 (torch.export.load refuses "
                          f"others), not {path.name}")
    was_training = model.training
    model.eval()
    try:
        # made before the export (a folder that takes no file is one line, in every format),
        # moved into place only when the check passes; the same suffix: torch.export.save and
        # load insist on ".pt2"
        with atomic_file(path, suffix=f".tmp{path.suffix}") as (handle, tmp):
            handle.close()  # the exporters write by name
            report = _export_checked(model, tmp, format, size, (tolerance, rtol), opset,
                                     optimize)
    except ExportError:
        raise
    except CnnzooError as error:  # the file could not be made, or moved into place
        raise ExportError(str(error)) from error
    finally:
        model.train(was_training)
    return dataclasses.replace(report, path=path)


def _export_checked(model: nn.Module, tmp: Path, format: str, size, limits,
                    opset: int | None, optimize: bool) -> ExportReport:
    """Export the evaluating ``model`` into ``tmp`` and check the file (``export_model``)."""
    from .inspect.shapes import input_too_large

    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    generator = torch.Generator().manual_seed(0)

    def batch(n: int) -> torch.Tensor:
        with out_of_memory_as(input_too_large((n, *size), device)):
            return torch.randn(n, *size, generator=generator, dtype=dtype).to(device)

    example = batch(TRACE_BATCH)
    try:
        with torch.no_grad():
            model(example)
    except Exception as error:
        if refused_memory(error):
            raise ExportError(f"the model's forward pass on a {_fmt(example.shape)} input "
                              f"does not fit in memory; try a smaller input size") from error
        from .inspect.shapes import too_small_for

        reason = too_small_for(model, size)
        raise ExportError(str(reason) if reason else
                          f"the model does not run on a {_fmt(size)} input: "
                          f"{_first_line(error)}") from error

    written_opset = None
    with _quiet():
        if format == "onnx":
            written_opset = _export_onnx(model, example, tmp, opset, optimize)
        elif format == "torchscript":
            _export_torchscript(model, example, tmp)
        else:
            torch.export.save(_torch_export(model, example), str(tmp))
        run = _load_back(format, tmp, device)

        tolerance, rtol = limits
        worst = worst_relative = worst_ratio = 0.0
        for n in CHECK_BATCHES:
            x = batch(n)
            with torch.no_grad():
                expected = model(x)
            try:
                got = run(x)
            except Exception as error:
                raise ExportError(f"the exported {format} file fails on a batch of {n}: "
                                  f"{_first_line(error)}") from error
            absolute, relative, ratio = _differences(expected, got, tolerance, rtol)
            worst, worst_relative = max(worst, absolute), max(worst_relative, relative)
            worst_ratio = max(worst_ratio, ratio)
            output_shape = tuple(_tensors(expected)[0].shape[1:])
    if not worst_ratio <= 1:
        raise ExportError(
            f"the exported {format} file disagrees with the model on random {_fmt(size)} "
            f"batches: max abs difference {worst:.3g}, max relative {worst_relative:.3g}, "
            f"beyond {tolerance:g} + {rtol:g} x |output|")
    return ExportReport(tmp, format, size, output_shape, CHECK_BATCHES, worst, tolerance,
                        written_opset, rtol, worst_relative)


class FlipAveraged(nn.Module):
    """A model evaluated with flip test-time augmentation, as a run trained with ``eval_flip``
    is evaluated (``training.evaluation.test_logits``): the mean of its output for each image
    (N, C, H, W) and for the image mirrored left-right. A map of class scores (N, K, h, w), from a fully
    convolutional head, is mirrored back before the mean."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        if hasattr(model, "input_size"):
            self.input_size = model.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mirrored = self.model(x.flip(-1))
        if mirrored.dim() == 4:
            mirrored = mirrored.flip(-1)
        return (self.model(x) + mirrored) / 2


def load_for_export(source, input_size=None, *, num_classes: int | None = None, weights=None,
                    fully_convolutional: bool = False
                    ) -> tuple[nn.Module, tuple[int, int, int], Path]:
    """The model to export, the (C, H, W) it takes and a default output path without suffix.

    ``source`` is a run directory written by ``cnnzoo train`` (its trained model, at the input
    size it was trained on, wrapped in ``FlipAveraged`` where the run evaluates with
    ``eval_flip``, so that the file computes what predict and eval do; default output
    ``DIR/model``) or a registered model name (built for
    ``input_size``, default the registry's, with ``num_classes`` and optional ``weights``, a
    state_dict file; default output ``./NAME``). A model with a fixed-size head cannot take
    another input size than the one it was built for, unless ``fully_convolutional`` turns the
    head into convolutions (``to_fully_convolutional``): then any size of at least the original
    gives a map of class scores (default output ``...-fcn``). Impossible requests raise
    ``CnnzooError``.
    """
    from .models import get_model, model_info
    from .models.convert import to_fully_convolutional

    folder = Path(source)
    if folder.is_dir():
        if num_classes is not None or weights is not None:
            raise CnnzooError("num_classes and weights apply to a model name, not to a run "
                              "directory (its config and weights are used)")
        from .training import load_run
        from .training.evaluation import evaluates_flipped

        run = load_run(folder)
        name, model, stem = run.config["model"], run.model, folder / "model"
        built = tuple(run.config["input_size"])
        flip = evaluates_flipped(run)
    elif folder.exists():
        raise CnnzooError(f"{folder} is a file, not a run directory or a model name")
    elif os.sep in str(source):
        raise CnnzooError(f"no run directory {folder}")
    else:
        info = model_info(str(source))  # an unknown name fails here, with suggestions
        name, stem, flip = info.name, Path(info.name), False
        # a head to convert is built for the registry's size; the export may take a larger one
        built = info.default_input_size() if input_size is None else parse_size(input_size)
        if fully_convolutional:
            built = (built[0], *info.default_input_size()[1:])
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        kwargs.update(info.sized_for(built))
        try:
            model = get_model(name, weights=weights, **kwargs)
        except InputTooSmallError as error:
            from .inspect.shapes import with_minimum

            raise with_minimum(error, name, built[0]) from error

    size = built if input_size is None else parse_size(input_size)
    where = f" in {folder}" if folder.is_dir() else ""
    if size[0] != built[0]:
        raise CnnzooError(f"{name}{where} takes {built[0]}-channel inputs, not {size[0]}; give "
                          f"an input size of {built[0]}xHxW")
    if fully_convolutional:
        model = to_fully_convolutional(model, input_size=built)
        stem = stem.with_name(stem.name + "-fcn")
    elif size != built and model_info(name).fixed_head:
        raise CnnzooError(f"{name}{where} was built for {_fmt(built)} inputs and cannot take "
                          f"{_fmt(size)}; made fully convolutional, it slides over larger inputs")
    return (FlipAveraged(model) if flip else model), size, stem


# --- the three exporters -----------------------------------------------------------------------

def _batch_dims():
    # min=1: a single image is the commonest call; torch.export would otherwise assume N >= 2
    return ({0: torch.export.Dim("batch", min=1)},)


def _torch_export(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    try:
        return torch.export.export(model, (example,), dynamic_shapes=_batch_dims())
    except Exception as error:
        raise ExportError(f"torch.export cannot capture this model: {_first_line(error)}"
                          ) from error


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as error:
        raise ExportError(f"torch.jit.trace cannot trace this model: {_first_line(error)}"
                          ) from error
    torch.jit.save(traced, str(path))


def _check_onnx_installed() -> None:
    # the dynamo exporter needs onnx and onnxscript; the check, onnxruntime
    missing = [name for name in ("onnx", "onnxscript", "onnxruntime")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}; install with: "
                          f"pip install 'cnnzoo[export]'")


def _check_opset(opset: int) -> None:
    """A one-line ``ExportError`` for an opset outside 7 to the installed onnx's newest."""
    _check_onnx_installed()
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not OLDEST_OPSET <= opset <= newest:
        raise ExportError(f"ONNX opset {opset} cannot be written: choose one from "
                          f"{OLDEST_OPSET} to {newest} (the installed onnx {onnx.__version__}'s "
                          f"newest); {NATIVE_OPSET} and up suit every model")


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int | None,
                 optimize: bool) -> int:
    """Write the ONNX file at ``opset`` (None: the exporter's default); returns the opset the
    written file declares, which is the one asked for."""
    _check_onnx_installed()
    import onnx

    program = _onnx_ready(_torch_export(model, example))
    try:
        onnx_program = torch.onnx.export(
            program, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
            opset_version=None if opset is None else max(opset, NATIVE_OPSET),
            optimize=optimize, verbose=False)
        if opset is None or opset >= NATIVE_OPSET:
            # the zoo's largest model (VGG-19) is under 0.6 GB, far from protobuf's 2 GB limit
            onnx_program.save(str(path), external_data=False)
    except Exception as error:
        raise ExportError(f"the ONNX exporter failed: {_first_line(error)}") from error
    if opset is not None and opset < NATIVE_OPSET:
        # torch.onnx would try the same converter and, failing, keep opset 18 with a log line
        try:
            lowered = onnx.version_converter.convert_version(onnx_program.model_proto, opset)
            onnx.checker.check_model(lowered)  # it can keep an attribute the old op lacks
        except Exception as error:
            reason = _first_line(error).split("failed: ")[-1]
            raise ExportError(f"onnx's version converter cannot lower this model to opset "
                              f"{opset} ({reason}); opsets {NATIVE_OPSET} and up suit every "
                              f"model") from error
        onnx.save(lowered, str(path))
    written = _onnx_opset(path)
    if opset is not None and written != opset:
        raise ExportError(f"the ONNX exporter wrote opset {written}, not the {opset} asked for")
    return written


def _onnx_opset(path: Path) -> int | None:
    """The default-domain opset an ONNX file imports."""
    import onnx

    imports = onnx.load(str(path), load_external_data=False).opset_import
    return next((entry.version for entry in imports if entry.domain in ("", "ai.onnx")), None)


def _onnx_ready(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The program with sum pooling rewritten as average pooling times the window area.

    ONNX's AveragePool has no divisor, and the ONNX exporter silently drops PyTorch's
    ``divisor_override`` (LeNet-5's trainable subsampling sums its 2x2 window this way).
    """
    pools = [_pool_options(*node.args, **node.kwargs) for node in program.graph.nodes
             if node.target is torch.ops.aten.avg_pool2d.default]
    divided = [ceil_mode for ceil_mode, divisor in pools if divisor is not None]
    if not divided:
        return program
    if any(divided):
        raise ExportError("average pooling with both ceil_mode and divisor_override has no ONNX "
                          "equivalent")
    return program.run_decompositions({torch.ops.aten.avg_pool2d.default: _sum_pool2d})


def _pool_options(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                  divisor_override=None) -> tuple[bool, int | None]:
    """(ceil_mode, divisor_override) of an aten.avg_pool2d call, from its args and kwargs."""
    return ceil_mode, divisor_override


def _sum_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    if divisor_override is None:
        return NotImplemented  # keep the op as it is
    kernel = list(kernel_size) * (2 if len(kernel_size) == 1 else 1)
    # without ceil_mode every window holds kh*kw values (zero padding counted), so the mean
    # times the area is the window's sum
    mean = torch.ops.aten.avg_pool2d.default(x, kernel_size, stride, padding, False, True, None)
    return mean * (kernel[0] * kernel[1] / divisor_override)


# --- loading back -------------------------------------------------------------------------------

def _load_back(format: str, path: Path, device: torch.device):
    """A function running the exported file on a batch: tensor in, output(s) out."""
    try:
        if format == "onnx":
            return _onnx_runner(path)
        if format == "torchscript":
            return _torch_runner(torch.jit.load(str(path), map_location=device))
        return _torch_runner(torch.export.load(str(path)).module())
    except Exception as error:
        raise ExportError(f"the exported {format} file cannot be loaded back: "
                          f"{_first_line(error)}") from error


def _onnx_runner(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its constant-folding notes are not ours
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor):
        outputs = session.run(None, {name: x.detach().cpu().numpy()})
        return [torch.from_numpy(out) for out in outputs]

    return run


def _torch_runner(module):
    def run(x: torch.Tensor):
        with torch.no_grad():
            return module(x)

    return run


def _differences(expected, got, atol: float, rtol: float) -> tuple[float, float, float]:
    """(largest absolute difference, largest difference relative to the model's value,
    largest difference in units of ``atol + rtol * |model's value|``: above 1 fails)."""
    expected, got = _tensors(expected), _tensors(got)
    if len(expected) != len(got):
        raise ExportError(f"the exported file returns {len(got)} outputs, the model "
                          f"{len(expected)}")
    worst = relative = ratio = 0.0
    for want, have in zip(expected, got):
        if tuple(want.shape) != tuple(have.shape):
            raise ExportError(f"the exported file returns shape {tuple(have.shape)}, the model "
                              f"{tuple(want.shape)}")
        want, have = want.detach().cpu().double(), have.cpu().double()
        # NaN in one output and not the other is a disagreement, not a difference of 0 (max()
        # passes over NaN); NaN in both is agreement
        difference = torch.where(want.isnan() & have.isnan(), 0.0,
                                 (want - have).abs().nan_to_num(nan=math.inf))
        scale = want.abs().nan_to_num(nan=0.0)
        worst = max(worst, difference.max().item())
        # relative where the value is large enough for it to mean something
        relative = max(relative, torch.where(scale > atol, difference / scale.clamp_min(atol),
                                             0.0).max().item())
        ratio = max(ratio, (difference / (atol + rtol * scale)).max().item())
    return worst, relative, ratio


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _tensors(item)]


# --- small helpers ------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """Silence the exporters' chatter (deprecation notes, skipped torchvision ops)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _input_size(model: nn.Module, input_size) -> tuple[int, int, int]:
    if input_size is None:
        input_size = getattr(model, "input_size", None)
        if input_size is None:
            raise ExportError("give the input size (C, H, W): this model does not record one")
    return parse_size(input_size)




def _fmt(size) -> str:
    return "x".join(str(v) for v in size)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:300]
