"""Getting a run ready for its epochs: its data, its model, its device and fast path, its
optimiser and schedule, and the state of a resumed run. ``prepare`` does it in that order;
``loop`` then runs the epochs.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from torch import nn

from .. import __version__
from .._lazy import import_in_background
from ..device import amp_warning, memory_format, pick_device
from ..errors import CnnzooError, CnnzooWarning, out_of_memory_as
from . import allocator, distributed, fastpath
from .optim import Schedule, make_optimizer
from .recipes import Recipe
from .rundir import CHECKPOINT, build_model, check_model_args, data_options, read_metrics
from .step import check_graphs


@dataclass
class Prepared:
    """Everything the epochs of a run need, made ready by ``prepare``."""

    config: dict                 # the run's record, completed: classes, sizes, device, versions
    recipe: Recipe
    device: torch.device
    net: nn.Module               # on the device, initialised or restored from the checkpoint
    optimizer: object
    scheduler: Schedule
    train_batches: object        # BatchIterator over the training set (less its hold-out)
    test_batches: object
    test_count: int
    val_batches: object | None   # over the validation hold-out; None without one
    val_count: int
    history: list[dict]          # the rows of the epochs already trained (a resumed run's)
    start_epoch: int


def prepare(config: dict, state: dict | None, ctx: distributed.Context, reporter, *,
            model=None, data=None, run_dir=None) -> Prepared:
    """Make the run that ``config`` (a run's record) describes ready on its device: a new one,
    or the one ``state`` (its last checkpoint) resumes. ``model`` is the user's own model (a
    module, trained in place, or a builder) where the run is not of a registered one; ``data``
    the (train, test) ``DataSet``s given from Python, where it does not name a data set;
    ``run_dir`` the folder of a resumed run (its earlier epochs' rows are read from it).

    Every check that can fail runs before the data moves to the device; what the model cannot
    take (another channel count, class count or an input too small) fails before training.
    """
    recipe = Recipe(**config["recipe"]).validated()
    distributed.check_batch_size(ctx, recipe.batch_size)
    device = pick_device(config["device"])
    if config.get("model_kind", "registry") == "registry":
        check_model_args(config["model"], config.get("model_args"))
    elif config.get("model_args") and isinstance(model, nn.Module):
        raise CnnzooError("model_args= are arguments of a model's builder; a module is built "
                          "already")
    choose_fast_path = bool(config.get("fast")) and "fast_path" not in config
    if choose_fast_path:
        fastpath.check(config, ctx.world_size)
    if config.get("cuda_graphs"):
        check_graphs(device, config["compile"], ctx.world_size)
    if config.get("amp") and ctx.is_main and (warning := amp_warning(device)):
        warnings.warn(warning, CnnzooWarning, stacklevel=3)
    if device.type == "cpu":
        allocator.keep_freed_memory()  # reuse activation memory from step to step
    if ctx.is_main:  # matplotlib, for the curves, loads while the data is decompressed
        import_in_background("cnnzoo.plots")

    train_set, val_set, test_set = _data(config, data, warn=ctx.is_main)
    # the model sees the recipe's resize, or the data at its own size
    input_hw = (recipe.resize, recipe.resize) if recipe.resize else tuple(train_set.image_size[1:])
    config.update(classes=list(train_set.classes), image_size=list(train_set.image_size),
                  input_size=[train_set.image_size[0], *input_hw],
                  data_source={"train": train_set.source, "test": test_set.source,
                               **({"val": val_set.source} if val_set else {})})
    distributed.check_last_batch(ctx, len(train_set), recipe.batch_size)
    distributed.check_eval_set(ctx, len(test_set))
    if val_set is not None:
        distributed.check_eval_set(ctx, len(val_set), "validation")
    # a crop's offset runs over 0..2 x padding: at a padding of the side or more, the first
    # and last offsets take nothing of the image, and a blank image trains with its label
    if recipe.crop_padding >= min(input_hw):
        raise CnnzooError(f"crop_padding={recipe.crop_padding} is too large for the "
                          f"{input_hw[0]}x{input_hw[1]} input: a crop could miss the image "
                          f"entirely; use at most {min(input_hw) - 1} (4 is usual for 32x32)")

    torch.manual_seed(config["seed"])
    net = build_model(config, model)
    if recipe.init == "xavier":
        xavier_init(net)
    check_fits(net, config["model"], config["input_size"], len(config["classes"]))
    if choose_fast_path:  # its random numbers are its own: the run is that of the flags it picks
        choice = fastpath.choose(config, recipe, device,
                                 batch_size=min(recipe.batch_size, len(train_set)),
                                 on_measure=reporter.note, make_net=fresh_copies(net, config,
                                                                                 model))
        config.update(vars(choice.flags), fast_path=choice.record())
    device = distributed.setup(ctx, device)
    if ctx.enabled and device.type == "cuda":  # BatchNorm over the global batch, not each slice
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)  # (torch has it for GPUs only)

    net.to(device, memory_format=memory_format(config.get("channels_last", False)))
    optimizer = make_optimizer(recipe, net, device, graph=config.get("cuda_graphs", False))
    train_set, test_set = train_set.to(device), test_set.to(device)
    val_set = val_set.to(device) if val_set is not None else None
    if recipe.normalize and "normalize_stats" not in config:
        # exact (integer sums), so the same on every device; quickest where the data is now
        config["normalize_stats"] = [v.tolist() for v in train_set.mean_std()]
    stats = config.get("normalize_stats")
    train_batches = batches(train_set, recipe, input_hw, True, config["seed"], stats)
    test_batches = batches(test_set, recipe, input_hw, False, config["seed"], stats)
    val_batches = (batches(val_set, recipe, input_hw, False, config["seed"], stats)
                   if val_set is not None else None)
    scheduler = Schedule(optimizer, recipe, recipe.epochs * len(train_batches))
    history, start_epoch = [], 1
    if state is not None:
        _restore(state, net, optimizer, scheduler, device, run_dir / CHECKPOINT)
        start_epoch = state["epoch"] + 1
        history = read_metrics(run_dir)[: state["epoch"]]
    config.update(device_used=str(device), torch=torch.__version__, cnnzoo=__version__,
                  python=platform.python_version(), threads=torch.get_num_threads(),
                  world_size=ctx.world_size)
    config.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return Prepared(config, recipe, device, net, optimizer, scheduler, train_batches,
                    test_batches, len(test_set), val_batches,
                    len(val_set) if val_set is not None else 0, history, start_epoch)


VAL_SEED = 0  # every run of a data set holds out the same images, whatever its own seed


def _data(config: dict, data, warn: bool):
    """The run's training, validation and test sets (on the CPU; no validation set, None,
    where the run holds none out): loaded by name, or those given. The hold-out is taken from
    the whole training split before any ``train_subset`` is drawn from the rest; a
    ``train_subset`` larger than the rest is a warning (where ``warn``)."""
    if data is None:
        from ..data import load_dataset

        options = data_options(config)
        train_set = load_dataset(config["data"], split="train", data_dir=config["data_dir"],
                                 **options)
        test_set = load_dataset(config["data"], split="test", data_dir=config["data_dir"],
                                **options)
    else:
        train_set, test_set = data
    known = config.get("classes")  # a resumed run's: the data must be the run's
    if known is not None and list(train_set.classes) != list(known):
        found = list(train_set.classes)
        first = next((i for i, (a, b) in enumerate(zip(found, known)) if a != b),
                     min(len(found), len(known)))
        raise CnnzooError(f"the data's {len(found)} classes ({_names(found, first)}) are not "
                          f"those the run was trained on ({_names(known, first)}); give the "
                          f"run's data")
    val_set = None
    held = validation_count(config.get("val", 0), len(train_set))
    if held:
        train_set, val_set = train_set.split(held, seed=VAL_SEED)
    if config["train_subset"]:
        if config["train_subset"] > len(train_set) and warn:
            after = f" after the validation hold-out of {held:,}" if held else ""
            warnings.warn(f"train_subset={config['train_subset']:,} is more than the "
                          f"{len(train_set):,} training images{after}; all "
                          f"{len(train_set):,} are trained on", CnnzooWarning, stacklevel=4)
        train_set = train_set.subset(config["train_subset"], seed=config["seed"])
    if config["test_subset"]:
        test_set = test_set.subset(config["test_subset"], seed=config["seed"])
    return train_set, val_set, test_set


def validation_count(val, train_images: int) -> int:
    """How many of ``train_images`` a run's ``val`` holds out: that number, or that fraction
    of them (at least one); one that leaves no training image is a one-line ``CnnzooError``."""
    held = val if isinstance(val, int) else max(1, round(val * train_images))
    if held and held >= train_images:
        raise CnnzooError(f"val={val!r} holds out {held:,} images of a training split of "
                          f"{train_images:,}, leaving none to train on; hold out fewer "
                          f"(val=0: none)")
    return held


def _names(classes: list, first: int) -> str:
    """A few class names from the ``first`` one that differs (where they part, not where they
    agree)."""
    start = 0 if first < 5 else first - 1
    shown = classes[start:start + 5]
    return (("..., " if start else "") + ", ".join(map(str, shown))
            + (", ..." if start + 5 < len(classes) else ""))


def _restore(state: dict, net, optimizer, scheduler, device: torch.device, path) -> None:
    """Load a resumed run's checkpoint (``path``) into its model, optimiser, schedule and
    random generators; whatever does not fit them is one line naming the file, before any
    step is taken."""
    from .checkpoint import load_state

    load_state(net, state["model"], path)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except CnnzooError as error:
        raise CnnzooError(f"{path} does not fit this run: {error}") from error
    generators = [("rng_cpu", torch.set_rng_state)]
    if device.type == "cuda" and "rng_cuda" in state:
        generators.append(("rng_cuda", lambda value: torch.cuda.set_rng_state(value, device)))
    for name, set_state in generators:
        try:
            set_state(state[name])
        except (RuntimeError, TypeError, ValueError) as error:  # torch's words for a bad state
            raise CnnzooError(f"{path} is damaged: its random generator state ({name}) is "
                              f"not one torch can take") from error


def xavier_init(model: nn.Module) -> None:
    """d2l's train_ch6 initialisation: Xavier-uniform on every Conv2d and Linear weight."""
    for module in model.modules():
        if type(module) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)


def fresh_copies(net: nn.Module, config: dict, model):
    """A function that makes new models like ``net`` for the fast-path probe: built again
    from the run's record, or copies of the user's module as it is now."""
    import copy

    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(net)
    return lambda: build_model(config, model)


def batches(dataset, recipe: Recipe, input_hw, train: bool, seed: int, stats):
    """The recipe's batches of ``dataset``: shuffled and augmented for training, in order for
    evaluation; resized to ``input_hw`` and normalised by ``stats`` where the recipe says."""
    from ..data import Augment, BatchIterator

    augment = None
    if train and (recipe.flip or recipe.crop_padding or recipe.erasing):
        augment = Augment(crop_padding=recipe.crop_padding, flip=recipe.flip,
                          erasing=recipe.erasing)
    resize = None if tuple(dataset.image_size[1:]) == tuple(input_hw) else tuple(input_hw)
    return BatchIterator(dataset, recipe.batch_size if train else recipe.eval_batch_size,
                         shuffle=train, seed=seed, resize=resize, normalize=stats,
                         augment=augment)


def check_fits(model: nn.Module, name: str, input_size, num_classes: int) -> None:
    """One cheap forward at batch 2 in eval mode, so that a model that cannot take the data
    fails before training in one line: another number of input channels, an input its maps
    shrink to nothing in, or a class count other than the data's."""
    was_training = model.training
    model.eval()
    channels, height, width = input_size
    try:
        parameter = next(model.parameters(), None)
        with torch.no_grad(), out_of_memory_as(f"{name} on {channels}x{height}x{width} inputs "
                                               f"does not fit in memory"):
            x = torch.zeros(2, *input_size,
                            device=parameter.device if parameter is not None else None)
            output = model(x)
    except CnnzooError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        from ..inspect.shapes import too_small_for
        from .determinism import nondeterministic_operation

        if nondeterministic_operation(error):  # deterministic=True's to name, not a misfit
            raise

        first = _first_conv(model)
        if first is not None and first[1].in_channels != channels:
            raise CnnzooError(f"{name} takes {first[1].in_channels}-channel images (its first "
                              f"convolution, {first[0]}), the data has {channels} channels"
                              ) from error
        reason = too_small_for(model, input_size)
        if reason is not None:
            raise CnnzooError(f"{name}: {reason} (resize= sets the input size)") from error
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CnnzooError(f"{name} cannot take {channels}x{height}x{width} inputs (try another "
                          f"resize=): {message}") from error
    finally:
        model.train(was_training)
    if not isinstance(output, torch.Tensor) or output.dim() != 2 or len(output) != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise CnnzooError(f"{name} returns {shape} for a batch of 2 images; a classifier "
                          f"returns logits (N, classes)")
    if output.shape[1] != num_classes:
        raise CnnzooError(f"{name} gives {output.shape[1]} outputs per image, the data has "
                          f"{num_classes} classes; build it with {num_classes} outputs")


def _first_conv(model: nn.Module):
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return name, module
    return None
