"""Fashion-MNIST batches: cnnzoo's BatchIterator against the textbook's per-sample DataLoader.

The textbook (d2l's ``load_data_fashion_mnist``) turns each image into a PIL image, applies
``Resize`` then ``ToTensor`` per sample, and batches through a ``DataLoader`` with 4 worker
processes. torchvision is not needed: the same per-sample steps are written with PIL and numpy.
cnnzoo indexes a uint8 tensor and resizes the whole batch with ``F.interpolate``. Both sides only
produce batches (no model runs), at the textbook's resize and batch size per model family.

    .venv/bin/python benchmarks/data_loading.py            # 200 batches per measurement
    .venv/bin/python benchmarks/data_loading.py --quick    # 20
    .venv/bin/python benchmarks/data_loading.py --threads 1  # batches built on one thread
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import warnings

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from cnnzoo.data import BatchIterator, load_dataset

# resize -> batch size, as d2l trains LeNet (28), GoogLeNet/ResNet/DenseNet (96), AlexNet/VGG/NiN
SIZES = {28: 256, 96: 128, 224: 128}


class PerSampleFashionMNIST(Dataset):
    """The textbook's pipeline, one sample at a time: PIL image, Resize (bilinear), ToTensor."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int):
        self.images, self.labels, self.size = images, labels, size

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index], mode="L")
        if self.size != image.size[0]:
            image = image.resize((self.size, self.size), Image.BILINEAR)
        # ToTensor: (H, W) uint8 -> (1, H, W) float32 in [0, 1]
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).unsqueeze(0)
        return x, int(self.labels[index])


def measure(batches, count: int, device: torch.device) -> tuple[float, float, float]:
    """Seconds to the first batch, batches per second over the next ``count``, and CPU seconds
    per batch over all of it (this process and its finished workers, so contention from other
    programs on the machine does not change it much)."""
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    iterator = iter(batches)
    x, y = next(iterator)
    x, y = x.to(device), y.to(device)
    _synchronize(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    done = 0
    for x, y in iterator:
        x, y = x.to(device), y.to(device)
        done += 1
        if done == count:
            break
    _synchronize(device)
    rate = done / (time.perf_counter() - start)
    del iterator  # a DataLoader's iterator joins its workers here, so their CPU time counts
    return first, rate, (_cpu_seconds() - cpu_before) / (done + 1)


def _cpu_seconds() -> float:
    own, workers = (resource.getrusage(who)
                    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 batches per measurement")
    parser.add_argument("--batches", type=int, help="batches per measurement (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers (d2l: 4)")
    parser.add_argument("--device", default="cpu", help="where the batches go (default cpu)")
    parser.add_argument("--data-dir", help="where Fashion-MNIST is, if not in a default place")
    parser.add_argument("--threads", type=int,
                        help="torch threads in this process (default: torch's; each DataLoader "
                             "worker uses one)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # The textbook's 4 workers exceed this machine's cores; that is the point of the comparison.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    count = args.batches or (20 if args.quick else 200)
    device = torch.device(args.device)

    start = time.perf_counter()
    train = load_dataset("fashion-mnist", "train", data_dir=args.data_dir, download=False)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    on_device = train.to(device)
    _synchronize(device)
    move_s = time.perf_counter() - start
    images, labels = train.images[:, 0].numpy(), train.labels.numpy()

    print(f"Fashion-MNIST train, {len(train):,} images, from {train.source}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), device {device}, {count} batches "
          "per measurement after the first")
    print(f"load_dataset: {load_s:.2f} s (gzip IDX -> uint8 tensor); to {device}: {move_s:.3f} s")
    print(f"load average before: {_load_average()}")
    print()
    print(f"{'':12}  {'batches per second':^28}  {'CPU ms per batch':^28}  "
          f"{'first batch (s)':^17}")
    print(f"{'size':>4}  {'batch':>5}  {'ours':>8}  {'DataLoader':>10}  {'ratio':>6}  "
          f"{'ours':>8}  {'DataLoader':>10}  {'ratio':>6}  {'ours':>7}  {'DataLoader':>10}")
    for size, batch_size in SIZES.items():
        ours = BatchIterator(on_device, batch_size, resize=size, seed=0)
        ours_first, ours_rate, ours_cpu = measure(ours, min(count, len(ours) - 1), device)
        loader = DataLoader(PerSampleFashionMNIST(images, labels, size), batch_size,
                            shuffle=True, num_workers=args.workers)
        theirs_first, theirs_rate, theirs_cpu = measure(loader, min(count, len(loader) - 1),
                                                        device)
        print(f"{size:>4}  {batch_size:>5}  {ours_rate:>8.1f}  {theirs_rate:>10.1f}  "
              f"{ours_rate / theirs_rate:>5.1f}x  {1e3 * ours_cpu:>8.2f}  "
              f"{1e3 * theirs_cpu:>10.2f}  {theirs_cpu / ours_cpu:>5.1f}x  {ours_first:>7.3f}  "
              f"{theirs_first:>10.3f}", flush=True)
    print(f"load average after: {_load_average()} (other processes skew these figures)")


if __name__ == "__main__":
    main()
