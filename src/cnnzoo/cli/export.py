"""``cnnzoo export DIR|NAME``: a trained run's model (or a registry model) as ONNX, TorchScript
or a torch.export program, checked against PyTorch before the file is kept."""

from __future__ import annotations

from ._args import add_input_size, add_out, parse_input_size, positive_int, user_path

FORMAT_NAMES = {"onnx": "ONNX", "torchscript": "TorchScript",
                "exported-program": "torch.export ExportedProgram"}
CHECKERS = {"onnx": "onnxruntime", "torchscript": "torch.jit.load",
            "exported-program": "torch.export.load"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model to ONNX, TorchScript or torch.export (.pt2)",
        description="Export the model of a run directory (trained weights, eval mode) or a "
                    "registered model, with a dynamic batch axis. The file is loaded back and "
                    "run on random batches of other sizes than the traced one; the largest "
                    "difference from PyTorch is printed, and beyond 1e-4 + 1e-5 x |output| the "
                    "export fails and no file is left. Preprocessing (resize, normalisation) is "
                    "not part of the file.")
    parser.add_argument("source", metavar="DIR|NAME",
                        help="a run directory written by cnnzoo train, or a model name (see "
                             "`cnnzoo models`; random weights unless --weights)")
    parser.add_argument("--format", choices=tuple(FORMAT_NAMES), default="onnx",
                        help="file format (default onnx)")
    add_out(parser, "output file (default DIR/model.onnx, .pt or .pt2 for a run; NAME.onnx, "
                    ".pt or .pt2 here for a model name; model-fcn.onnx, NAME-fcn.onnx, ... with "
                    "--fully-convolutional)")
    add_input_size(parser)
    parser.add_argument("--num-classes", type=positive_int,
                        help="classes of a model given by name (default: its registry entry's)")
    parser.add_argument("--weights", type=user_path, metavar="FILE",
                        help="a state_dict (.pth or .safetensors, e.g. torchvision's) to load "
                             "into a model given by name")
    parser.add_argument("--fully-convolutional", action="store_true",
                        help="turn a fixed fully connected head (LeNet, AlexNet, VGG) into "
                             "convolutions first: on inputs larger than the trained size the "
                             "file returns a map of class scores")
    parser.add_argument("--opset", type=positive_int,
                        help="ONNX opset version, from 7 to the installed onnx's newest; 18 and "
                             "up suit every model, lower ones go through onnx's version "
                             "converter, which cannot lower every model (default: the "
                             "exporter's)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..export import FORMATS, FlipAveraged, export_model, load_for_export

    model, size, stem = load_for_export(args.source, parse_input_size(args.input_size),
                                        num_classes=args.num_classes, weights=args.weights,
                                        fully_convolutional=args.fully_convolutional)
    out = Path(args.out) if args.out else stem.with_name(stem.name + FORMATS[args.format])
    # the default name is cnnzoo's own output, made again; a name given replaces only --force
    report = export_model(model, out, args.format, size, opset=args.opset,
                          force=args.force or args.out is None)

    kind = FORMAT_NAMES[args.format] + (f" opset {report.opset}" if report.opset else "")
    print(f"wrote {report.path} ({kind}, "
          f"{report.size_bytes / 1e6:.1f} MB): input N x {_dims(size)} -> output N x "
          f"{_dims(report.output_shape)}, any batch size N")
    batches = " and ".join(map(str, report.batch_sizes))
    print(f"checked with {CHECKERS[args.format]} against PyTorch on random batches of "
          f"{batches}: max abs difference {report.max_abs_diff:.2e}, relative "
          f"{report.max_rel_diff:.1e} (limit {report.tolerance:.0e} + {report.rtol:.0e} x "
          f"|output|)")
    if isinstance(model, FlipAveraged):
        print("the run evaluates each image with its mirror image (eval_flip): the file returns "
              "the mean of both outputs, as predict and eval do")
    if not Path(args.source).is_dir() and args.weights is None:
        print(f"note: {args.source} has random weights; export a run directory or pass --weights")
    return 0


def _dims(shape) -> str:
    return "x".join(map(str, shape))
