"""Class activation maps and attributions: which pixels a trained network's decision rests on.

``attribute`` gives one non-negative map per image at the input's resolution, by one of
``METHODS``:

- ``gradcam``: Grad-CAM (Selvaraju et al. 2017), the target layer's maps weighted by their
  spatially averaged gradients, summed, rectified (Captum's ``LayerGradCam``);
- ``gradcam++``: Grad-CAM++ (Chattopadhyay et al. 2018), the positive gradients weighted per
  position by the closed-form coefficients of the paper's eq. 19;
- ``layercam``: LayerCAM (Jiang et al. 2021), each position's activation times its own positive
  gradient, summed over channels;
- ``saliency``: the largest absolute input gradient over the channels (Simonyan et al. 2014;
  Captum's ``Saliency``);
- ``integrated-gradients``: Sundararajan et al. 2017 from a black image, 32 steps, summed
  over channels as magnitudes (Captum's ``IntegratedGradients``);
- ``occlusion``: the drop of the class score when a square window of the image is blacked
  out, slid over it (Zeiler and Fergus 2014; Captum's ``Occlusion``).

Captum (``pip install 'cnnzoo[explain]'``) computes the methods it has; it has neither
Grad-CAM++ nor LayerCAM, which are a few lines each on the gradients ``capture`` records (the
same gradients as Grad-CAM's: its weights from them equal Captum's, tested). The layer maps
are upsampled bilinearly to the input. The default layer is the last stage of the trunk whose
maps are larger than 1x1 (``cam_layer``). ``deletion_curve`` measures faithfulness: the
true class's probability after the top-ranked pixels are blacked out, against as many random
pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CnnzooError
from ..plots import drawing, new_figure
from ._common import as_picture, capture, default_out, pick_layer
from .limits import CAM_METHODS as METHODS
from .limits import MAX_COUNT, check_limit
LAYER_METHODS = ("gradcam", "gradcam++", "layercam")  # those that read a layer's maps
IG_STEPS = 32
FRACTIONS = (0.1, 0.2, 0.5)  # of the pixels deleted in the faithfulness measure


def _captum():
    try:
        import captum.attr
    except ImportError as error:
        raise CnnzooError("this method is computed by Captum, which is not installed; "
                          "pip install 'cnnzoo[explain]'") from error
    return captum.attr


def trunk_stages(model: nn.Module) -> list[str]:
    """The names of the trunk's stages: the children of ``model.features`` where the model
    has that trunk (cnnzoo's and torchvision's convention), else the model's own children."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Module) and list(features.children()):
        return [f"features.{name}" for name, _ in features.named_children()]
    return [name for name, _ in model.named_children()]


def cam_layer(model: nn.Module, input_size) -> str:
    """The layer a CAM reads by default: of the trunk's stages (``trunk_stages``), the last in
    call order whose output is a feature map larger than 1x1 (a 1x1 map has no place to point
    at); any module with such an output where no stage has one."""
    from ..inspect.shapes import trace_shapes

    maps = [row.name for row in trace_shapes(model, input_size)
            if row.name and row.output_shape is not None and len(row.output_shape) == 4
            and row.output_shape[2] * row.output_shape[3] > 1]
    stages = set(trunk_stages(model))
    chosen = [name for name in maps if name in stages] or maps
    if not chosen:
        raise CnnzooError("this model has no feature map larger than 1x1 to draw a CAM on")
    return chosen[-1]


def attribute(model: nn.Module, x: torch.Tensor, targets, method: str = "gradcam", *,
              layer: str | None = None, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Maps (N, H, W), non-negative, of why ``model`` scores class ``targets`` (N ints, or one
    for all) for inputs ``x`` (N, C, H, W, preprocessed as the model expects). ``layer`` is the
    module a layer method reads (default ``cam_layer``); ``baseline`` (1, C, H, W) the input of
    a black image, for integrated gradients and occlusion (default zeros)."""
    if method not in METHODS:
        raise CnnzooError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if x.dim() != 4:
        raise CnnzooError(f"x must be inputs (N, C, H, W), not shape {tuple(x.shape)}")
    targets = torch.as_tensor(targets, device=x.device).long().reshape(-1).expand(len(x))
    base = torch.zeros_like(x[:1]) if baseline is None else baseline.to(x)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            if method in LAYER_METHODS:
                name = layer or cam_layer(model, tuple(x.shape[1:]))
                maps = _layer_map(model, x.detach(), targets, method, name)
                maps = F.interpolate(maps[:, None], size=x.shape[2:], mode="bilinear",
                                     align_corners=False)[:, 0]
            else:
                maps = _input_map(model, x.detach(), targets, method, base)
    finally:
        model.train(was_training)
    return maps.detach().clamp_min(0)


def _layer_map(model, x, targets, method: str, name: str) -> torch.Tensor:
    """The map at the resolution of layer ``name``'s output (N, h, w)."""
    names = [module_name for module_name, _ in model.named_modules() if module_name]
    module = pick_layer(model, name, names, "layer")
    if method == "gradcam":
        grad_cam = _captum().LayerGradCam(model, module)
        return grad_cam.attribute(x, target=targets, relu_attributions=True)[:, 0]
    activations, gradients = layer_gradients(model, x, targets, name)
    positive = gradients.clamp_min(0)
    if method == "layercam":
        return (positive * activations).sum(1).clamp_min(0)
    # Grad-CAM++ (eq. 19 with the exponential of the score, whose derivatives are powers of
    # the score's first derivative): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)
    squared, cubed = gradients.pow(2), gradients.pow(3)
    totals = activations.sum((2, 3), keepdim=True)
    denominator = 2 * squared + totals * cubed
    alpha = torch.where(gradients != 0, squared / torch.where(denominator != 0, denominator,
                                                               torch.ones_like(denominator)),
                        torch.zeros_like(gradients))
    weights = (alpha * positive).sum((2, 3), keepdim=True)
    return (weights * activations).sum(1).clamp_min(0)


def layer_gradients(model, x, targets, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer ``name``'s output for ``x`` and the gradient of each image's target score with
    respect to it, both (N, C, h, w)."""
    outputs = capture(model, x, [name, ""])
    activations, logits = outputs[name], outputs[""]
    score = logits.gather(1, targets[:, None]).sum()
    (gradients,) = torch.autograd.grad(score, activations)
    return activations.detach(), gradients.detach()


def _input_map(model, x, targets, method: str, baseline) -> torch.Tensor:
    attr = _captum()
    x = x.clone().requires_grad_(True)  # what Captum would do, with a warning
    if method == "saliency":
        return attr.Saliency(model).attribute(x, target=targets, abs=True).amax(1)
    if method == "integrated-gradients":
        ig = attr.IntegratedGradients(model)
        return ig.attribute(x, baselines=baseline.expand_as(x), target=targets,
                            n_steps=IG_STEPS, internal_batch_size=max(len(x), 1)
                            ).abs().sum(1)
    side = min(x.shape[2:])
    window = max(2, side // 7)  # 4x4 windows on a 28x28 image, sliding by half a window
    stride = max(1, window // 2)
    occlusion = attr.Occlusion(model)
    maps = occlusion.attribute(x, target=targets, sliding_window_shapes=(x.shape[1], window,
                                                                          window),
                               strides=(x.shape[1], stride, stride),
                               baselines=baseline.expand_as(x)[:1],
                               perturbations_per_eval=16)
    return maps.sum(1)


# --- faithfulness --------------------------------------------------------------------------

@torch.no_grad()
def deletion_curve(model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                   maps: torch.Tensor, fractions=FRACTIONS, *, baseline=None, seed: int = 0
                   ) -> dict[str, list[float]]:
    """The true class's mean probability over inputs ``x`` (N, C, H, W) after the ``fractions``
    of their pixels that ``maps`` (N, H, W) rank highest are set to ``baseline`` (a black
    image's input, default zeros), and after as many pixels drawn at random: ``{"ranked":
    [...], "random": [...], "intact": p}``. A faithful map lowers it more than chance does."""
    model.eval()
    base = (torch.zeros_like(x[:1]) if baseline is None else baseline.to(x)).expand_as(x)
    labels = labels.to(x.device).long()
    pixels = x.shape[2] * x.shape[3]
    order = maps.reshape(len(x), -1).argsort(1, descending=True)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.stack([torch.randperm(pixels, generator=generator)
                            for _ in range(len(x))]).to(x.device)

    def probability(inputs):
        return model(inputs).softmax(1).gather(1, labels[:, None]).mean().item()

    def deleted(ranking, count):
        mask = torch.zeros(len(x), pixels, dtype=torch.bool, device=x.device)
        mask.scatter_(1, ranking[:, :count], True)
        mask = mask.reshape(len(x), 1, *x.shape[2:])
        return torch.where(mask, base, x)

    result = {"intact": probability(x), "ranked": [], "random": []}
    for fraction in fractions:
        count = round(fraction * pixels)
        result["ranked"].append(probability(deleted(order, count)))
        result["random"].append(probability(deleted(shuffled, count)))
    return result


# --- the picture ---------------------------------------------------------------------------

COLUMNS = 8


@drawing
def draw_cams(images: torch.Tensor, maps: torch.Tensor, classes, predicted, probabilities,
              true_labels=None, *, title: str = ""):
    """A figure of ``maps`` (N, H, W) laid over ``images`` (N, C, H, W, as the model saw them),
    each titled with its predicted class and probability and, where known, its true class
    (red when they differ); a colour bar for the map's scale, each map divided by its
    maximum."""
    count = len(images)
    columns = min(COLUMNS, count)
    rows = -(-count // columns)
    fig = new_figure(figsize=(1.9 * columns + 0.8, 2.2 * rows + 0.4))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).reshape(-1)
    shown = None
    for index, axis in enumerate(axes):
        axis.set_axis_off()
        if index >= count:
            continue
        picture = as_picture(images[index])
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        heat = maps[index].float().cpu()
        heat = (heat / heat.max()).numpy() if float(heat.max()) > 0 else heat.numpy()
        shown = axis.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        guess = classes[int(predicted[index])]
        text = f"pred {guess} ({float(probabilities[index]):.2f})"
        wrong = False
        if true_labels is not None and true_labels[index] is not None:
            wrong = int(true_labels[index]) != int(predicted[index])
            text = f"true {classes[int(true_labels[index])]}\n{text}"
        axis.set_title(text, fontsize=8, color="tab:red" if wrong else "black")
    if shown is not None:
        bar = fig.colorbar(shown, ax=list(axes), shrink=0.8, pad=0.02)
        bar.set_label("share of the image's largest value", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def run_cams(run, images=(), *, indices=(), method: str = "gradcam", layer: str | None = None,
             target: int | None = None, data_dir=None):
    """``draw_cams`` for image files and test images ``indices`` through a run's model
    (``cnnzoo.training.Run``, a run directory's or shipped weights'), each explained for its
    predicted class or for class ``target`` (a number or a class name). Returns (figure, a short name for file names)."""
    from ..training.evaluation import run_logits
    from .features import run_input

    if not images and not indices:
        raise CnnzooError("give image files or indices= (test images) to explain")
    check_limit("images", len(images) + len(indices), MAX_COUNT, "more do not fit one figure")
    if isinstance(target, str):
        if target not in run.classes:
            raise CnnzooError(f"target={target!r} is not a class of this model; its classes: "
                              f"{', '.join(run.classes)}")
        target = run.classes.index(target)
    inputs = [run_input(run, image=image, data_dir=data_dir) for image in images]
    inputs += [run_input(run, index=index, data_dir=data_dir) for index in indices]
    x = torch.cat([item[0] for item in inputs])
    labels = [item[1] for item in inputs]
    probabilities = run_logits(run, x, fp32=True).softmax(1)
    predicted = probabilities.argmax(1)
    if target is not None and not 0 <= target < len(run.classes):
        raise CnnzooError(f"target={target} is not a class of this model (0 to "
                          f"{len(run.classes) - 1})")
    targets = predicted if target is None else torch.full_like(predicted, target)
    if layer is not None and method not in LAYER_METHODS:
        raise CnnzooError(f"layer= is read by {', '.join(LAYER_METHODS)}; {method} works on "
                          f"the input")
    maps = attribute(run.model, x, targets, method, layer=layer,
                     baseline=black_input(run))
    chosen = probabilities.gather(1, targets[:, None])[:, 0]
    name = layer or (cam_layer(run.model, tuple(x.shape[1:])) if method in LAYER_METHODS
                     else "input")
    fig = draw_cams(x, maps, run.classes, targets, chosen, labels,
                    title=f"{method} of {run.config['model']} ({name})"
                          + (f", class {run.classes[target]}" if target is not None else ""))
    stem = "-".join(item[2] for item in inputs[:4]) + ("-more" if len(inputs) > 4 else "")
    return fig, stem


def mistake_indices(run, count: int = 8, *, data_dir=None, scanned: int = 2000) -> list[int]:
    """The first ``count`` test images of the first ``scanned`` that the run's model gets
    wrong, as ``cnnzoo eval`` computes it."""
    from ..training.evaluation import preprocess, run_dataset, run_logits

    test = run_dataset(run, data_dir=data_dir)
    wrong = []
    for first in range(0, min(scanned, len(test)), 500):
        images = test.images[first:first + 500]
        predicted = run_logits(run, preprocess(run, images)).argmax(1).cpu()
        misses = (predicted != test.labels[first:first + 500].cpu()).nonzero()[:, 0]
        wrong += (misses + first).tolist()
        if len(wrong) >= count:
            break
    return wrong[:count]


def black_input(run) -> torch.Tensor:
    """A black image as the run's model sees it: (1, C, H, W), normalised as in training."""
    from ..training.evaluation import preprocess

    channels, height, width = run.config["image_size"]
    return preprocess(run, torch.zeros(1, channels, height, width, dtype=torch.uint8))


def show_cam(source, images=(), *, indices=(), weights: str | None = None,
             method: str = "gradcam", layer: str | None = None, target: int | None = None,
             data_dir=None, out=None, force: bool = False) -> Path:
    """Draw ``run_cams`` for a run directory, or for a registry model's shipped weights
    (``source`` a name, ``weights="fashion-mnist"``), and write the picture to ``out``
    (default ``RUN_DIR/cam-METHOD-IMAGES.png``, or ``cam-NAME-METHOD-IMAGES.png`` here for
    shipped weights); returns the path written."""
    from ..plots import figure_file, save_figure
    from ..training.rundir import load_source

    out = figure_file(out, force=force)
    run = load_source(source, weights)
    fig, stem = run_cams(run, list(images), indices=list(indices), method=method,
                         layer=layer, target=target, data_dir=data_dir)
    if weights is None:
        path = out or default_out(run.path, f"cam-{method}-{stem}")
    else:
        path = out or default_out(Path("."), f"cam-{source}-{method}-{stem}")
    save_figure(fig, path)
    return path
