"""cnnzoo predict: the most likely classes for image files, with a trained run's model."""

from __future__ import annotations

from ._args import add_device, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="classify PNG/JPEG images with a trained run",
        description="Top-k class names with probabilities for each image, preprocessed as in "
                    "training (grayscale or RGB, resized, and for Fashion-MNIST/MNIST inverted "
                    "when the image has a light background).")
    p.add_argument("run_dir", metavar="DIR", help="a run directory written by cnnzoo train")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG or JPEG files")
    p.add_argument("--topk", type=positive_int, default=3, help="how many classes (default 3)")
    add_device(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training import predict

    for prediction in predict(args.run_dir, args.images, topk=args.topk, device=args.device):
        ranked = ", ".join(f"{name} {p:.1%}" for name, p in prediction.top)
        print(f"{prediction.path}: {ranked}")
    return 0
