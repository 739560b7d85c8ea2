"""``cnnzoo show PICTURE ...``: pictures of what is inside a data set, a model or a trained run.

Each picture is a subcommand that writes one picture and prints its path.
"""

from __future__ import annotations

from ..errors import CnnzooError
from ..show.limits import CAM_METHODS, MAX_COUNT, MAX_DEPTH, MAX_PER_CLASS
from ._args import add_input_size, add_out, add_subcommands, parse_input_size, positive_int

OUT_HELP = ("the picture to write, in the format its name ends in: .png, .svg, .pdf or .jpg "
            "(default: {})")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="draw pictures: data, filters, feature maps, predictions, receptive "
                     "fields, gradients, architecture",
        description="Draw a picture of what is inside a data set, a model or a trained run and "
                    "write it as PNG (or SVG, PDF, JPEG, as --out's ending says); the path "
                    "written is printed.")
    pictures = add_subcommands(parser, "picture", "PICTURE")

    p = pictures.add_parser("data", help="sample images of each class",
                            description="A grid of random images of each class of a data set, "
                                        "one row per class with its name.")
    p.add_argument("name", help="the data set: fashion-mnist, mnist, cifar10, folder, synthetic")
    p.add_argument("--data-dir", metavar="DIR", help="look here first (for 'folder': the folder)")
    p.add_argument("--split", choices=("train", "test"), default="train",
                   help="the split the images come from (default train)")
    p.add_argument("--per-class", type=positive_int, default=8, metavar="K",
                   help=f"images per class (default 8, at most {MAX_PER_CLASS})")
    p.add_argument("--seed", type=int, default=0, help="which random images (default 0)")
    p.add_argument("--download", action="store_true",
                   help="download the data set from its authors' mirrors if it is missing")
    add_out(p, OUT_HELP.format("data-NAME.png here"))
    p.set_defaults(func=_data)

    p = pictures.add_parser("filters", help="a convolution layer's kernels",
                            description="The kernels of a trained run's first convolution layer "
                                        "(or the one --layer names) as a grid, in a colour map "
                                        "centred on zero.")
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    p.add_argument("--layer", help="the convolution's module name (default: the first)")
    add_out(p, OUT_HELP.format("DIR/filters-LAYER.png"))
    p.set_defaults(func=_filters)

    p = pictures.add_parser("features", help="the feature maps of one input, layer by layer",
                            description="Run one image through a trained run's model and draw "
                                        "the feature maps of each stage (or of --layer), shapes "
                                        "in the titles. The image is read as `cnnzoo predict` "
                                        "reads it; --index N takes test image N instead.")
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    p.add_argument("image", metavar="IMAGE", nargs="?", help="a PNG or JPEG file")
    p.add_argument("--index", type=int, metavar="N", help="use test image N instead of a file")
    p.add_argument("--layer", help="draw only this module's maps, in a grid")
    p.add_argument("--channels", type=positive_int, metavar="N",
                   help="maps per layer (default 8 per stage, 64 with --layer)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are, for --index (the run's by default)")
    add_out(p, OUT_HELP.format("DIR/features-IMAGE.png"))
    p.set_defaults(func=_features)

    p = pictures.add_parser("predictions", help="test images with predicted and true labels",
                            description="Random test images with the model's prediction, its "
                                        "probability and the true class; mistakes in red.")
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    p.add_argument("--count", type=positive_int, default=16, metavar="N",
                   help=f"how many images (default 16, at most {MAX_COUNT})")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="the split the images come from (default test)")
    p.add_argument("--seed", type=int, default=0, help="which random images (default 0)")
    p.add_argument("--mistakes", action="store_true", help="show only misclassified images")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are (the run's by default)")
    add_out(p, OUT_HELP.format("DIR/predictions.png"))
    p.set_defaults(func=_predictions)

    p = pictures.add_parser("receptive-field", help="the input region one output unit sees",
                            description="The exact input region one unit of a layer depends on, "
                                        "drawn on a sample image, beside the model's gradient "
                                        "(its effective receptive field). NAME is a registered "
                                        "model (built untrained, seed 0) or a run directory.")
    p.add_argument("name", metavar="NAME", help="a registered model or a run directory")
    p.add_argument("--layer", required=True, help="a module whose output is a feature map")
    p.add_argument("--unit", metavar="ROW,COL", help="the unit in the layer's map (default: "
                                                      "the centre)")
    p.add_argument("--data",
                   help="the data set of the sample image for a model name (default synthetic; "
                        "a run directory shows its own)")
    p.add_argument("--data-dir", metavar="DIR", help="where that data set's files are (for a "
                                                      "run directory: the run's by default)")
    p.add_argument("--index", type=int, default=0, metavar="N",
                   help="which test image (default 0)")
    add_out(p, OUT_HELP.format("receptive-field-NAME-LAYER.png here, or "
                                        "DIR/receptive-field-LAYER.png"))
    p.set_defaults(func=_receptive_field)

    p = pictures.add_parser("gradients", help="each layer's gradient: plain against residual",
                            description="The gradient norm of every layer after one backward "
                                        "pass. Without NAME: a deep plain stack against the "
                                        "same depth with residual connections, with sigmoid "
                                        "and with ReLU, so the vanishing gradient is seen. "
                                        "With NAME: that registered model's layers.")
    p.add_argument("name", metavar="NAME", nargs="?", help="a registered model (optional)")
    p.add_argument("--depth", type=positive_int, metavar="D",
                   help=f"3x3 layers in the compared stacks (default 30, at most {MAX_DEPTH}; "
                        f"not with NAME)")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch (default 0)")
    add_out(p, OUT_HELP.format("gradients[-NAME].png here"))
    p.set_defaults(func=_gradients)

    p = pictures.add_parser("cam", help="where a trained model looks: CAMs and attributions",
                            description="Which pixels a trained model's decision rests on, for "
                                        "image files or test images: Grad-CAM, Grad-CAM++, "
                                        "LayerCAM (on the last stage's maps unless --layer), "
                                        "saliency, integrated gradients or occlusion, laid over "
                                        "each image with its true and predicted class. Captum "
                                        "computes them (pip install 'cnnzoo[explain]').")
    p.add_argument("source", metavar="RUN|NAME",
                   help="a run directory, or a registered model with --weights")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="PNG or JPEG files")
    p.add_argument("--index", type=int, nargs="+", default=[], metavar="N",
                   help=f"test images by number (at most {MAX_COUNT} images in all)")
    p.add_argument("--weights", choices=("fashion-mnist",),
                   help="NAME's trained weights that cnnzoo ships (`cnnzoo models --weights`)")
    p.add_argument("--method", choices=CAM_METHODS, default="gradcam",
                   help="default gradcam")
    p.add_argument("--layer", help="the module a CAM reads (default: the last stage of the "
                                   "trunk with maps larger than 1x1)")
    p.add_argument("--target", metavar="CLASS",
                   help="explain this class (a name or number) instead of each prediction")
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the data set's files are, for --index (the run's by default)")
    add_out(p, OUT_HELP.format("DIR/cam-METHOD-IMAGES.png, or cam-NAME-METHOD-IMAGES.png "
                               "here with --weights"))
    p.set_defaults(func=_cam)

    p = pictures.add_parser("architecture", help="a block diagram of a model",
                            description="A block diagram drawn from the model itself: its "
                                        "stages and layers, channels and output shapes.")
    p.add_argument("name", metavar="NAME", help="a registered model (see `cnnzoo models`)")
    add_input_size(p)
    p.add_argument("--depth", type=positive_int, metavar="D",
                   help="open every block down to this depth of the module tree (default: "
                        "open containers while the diagram stays readable)")
    add_out(p, OUT_HELP.format("architecture-NAME.png here"))
    p.set_defaults(func=_architecture)


def _written(path) -> int:
    print(path)
    return 0


def _data(args) -> int:
    from ..show import show_data

    return _written(show_data(args.name, split=args.split, data_dir=args.data_dir,
                              per_class=args.per_class, seed=args.seed, download=args.download,
                              out=args.out, force=args.force))


def _filters(args) -> int:
    from ..show import show_filters

    return _written(show_filters(args.run_dir, args.layer, out=args.out, force=args.force))


def _features(args) -> int:
    from ..show import show_features

    return _written(show_features(args.run_dir, args.image, index=args.index, layer=args.layer,
                                  channels=args.channels, data_dir=args.data_dir,
                                  out=args.out, force=args.force))


def _cam(args) -> int:
    from ..show.cam import show_cam

    target = args.target
    if target is not None and target.isdigit():
        target = int(target)
    return _written(show_cam(args.source, args.images, indices=args.index,
                             weights=args.weights, method=args.method, layer=args.layer,
                             target=target, data_dir=args.data_dir, out=args.out,
                             force=args.force))


def _predictions(args) -> int:
    from ..show import show_predictions

    return _written(show_predictions(args.run_dir, count=args.count, split=args.split,
                                     seed=args.seed, mistakes_only=args.mistakes,
                                     data_dir=args.data_dir, out=args.out, force=args.force))


def parse_unit(text: str | None) -> tuple[int, int] | None:
    """'5,7' -> (5, 7); None stays None; anything else a one-line ``CnnzooError``."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        row, column = (int(part) for part in parts)
    except ValueError:
        raise CnnzooError(f"--unit {text!r}: give two whole numbers ROW,COL, e.g. 5,5") from None
    return row, column


def _receptive_field(args) -> int:
    from ..show import show_receptive_field

    return _written(show_receptive_field(args.name, args.layer, unit=parse_unit(args.unit),
                                         data=args.data, data_dir=args.data_dir,
                                         index=args.index, out=args.out, force=args.force))


def _gradients(args) -> int:
    from ..show import show_gradients

    return _written(show_gradients(args.name, depth=args.depth, seed=args.seed, out=args.out,
                                   force=args.force))


def _architecture(args) -> int:
    from ..show import show_architecture

    return _written(show_architecture(args.name, input_size=parse_input_size(args.input_size),
                                      depth=args.depth, out=args.out, force=args.force))
