"""``cnnzoo data NAME``: where a data set was found, its splits, shape, classes and counts."""

from __future__ import annotations

import argparse

from ..data import DATASETS, SPLITS, load_dataset


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="show where a data set is and what it holds",
        description="Load a data set's splits and print where they were found, their sizes, "
                    "image shape, pixel statistics, class names and images per class. Nothing is "
                    "downloaded unless --download is given.")
    parser.add_argument("name", help=f"the data set: {', '.join(DATASETS)}")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="look here first (for 'folder': the image folder itself)")
    parser.add_argument("--split", choices=(*SPLITS, "both"), default="both",
                        help="which split to show (default: both)")
    parser.add_argument("--download", action="store_true",
                        help="download the data set from its authors' mirrors if it is missing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    splits = SPLITS if args.split == "both" else (args.split,)
    loaded = {split: load_dataset(args.name, split, data_dir=args.data_dir,
                                  download=args.download) for split in splits}
    first = next(iter(loaded.values()))
    channels, height, width = first.image_size
    print(f"{first.name}: {first.num_classes} classes, images {channels}x{height}x{width} uint8")
    for split, dataset in loaded.items():
        print(f"  {split:<5}  {len(dataset):>9,} images  from {dataset.source}")
    mean, std = first.mean_std()
    print(f"  pixel mean {_values(mean)}, std {_values(std)} ({splits[0]} split, per channel, "
          "in [0, 1])")
    print()
    counts = {split: dataset.class_counts() for split, dataset in loaded.items()}
    name_width = max(5, *(len(name) for name in first.classes))
    header = "".join(f"  {split:>7}" for split in loaded)
    print(f"  {'label':>5}  {'class':<{name_width}}{header}")
    for label, name in enumerate(first.classes):
        row = "".join(f"  {counts[split][label]:>7,}" for split in loaded)
        print(f"  {label:>5}  {name:<{name_width}}{row}")
    return 0


def _values(tensor) -> str:
    return " ".join(f"{v:.4f}" for v in tensor.tolist())
