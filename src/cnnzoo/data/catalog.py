"""The named data sets: where each is looked for, its files, mirrors, checksums; ``load_dataset``.

Offline first. A data set is looked for in ``data_dir`` (if given, it must be an existing
folder), then in the system directory a
Debian package installs it to, then in the cache (``$CNNZOO_DATA/<name>``, default
``~/.cache/cnnzoo/<name>``); only when none has it, and ``download`` allows, is it fetched from its
authors' mirrors into ``data_dir/<name>`` or the cache, MD5-checked against the published sums.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CnnzooError
from .download import DownloadFailed, cache_root, download as fetch, extract_members
from .errors import DataSetNotFoundError

# The readers (cifar, folder, idx, synthetic) and DataSet import torch; they are imported where
# a data set is read, so that the names here cost nothing to look up.
if TYPE_CHECKING:
    from .dataset import DataSet

DATASETS = ("fashion-mnist", "mnist", "cifar10", "folder", "synthetic")
# what a run's record names data given from Python as tensors or arrays (no data set of files)
IN_MEMORY = "in-memory"
# what is said of such a run where its data would be read: cnnzoo keeps no copy of the images
IN_MEMORY_ONLY = ("the run trained on images given from Python, which cnnzoo does not keep; "
                  "it is evaluated, resumed or shown from Python only, given the images again")
SPLITS = ("train", "test")
# the training images a run holds out for validation unless told otherwise: a twelfth of
# MNIST's and Fashion-MNIST's 60,000, a tenth of CIFAR-10's 50,000
VALIDATION = {"fashion-mnist": 5000, "mnist": 5000, "cifar10": 5000}


@dataclass(frozen=True)
class IdxSource:
    """An MNIST-family data set: IDX files per split, where they may be, where to fetch them."""

    name: str
    classes: tuple[str, ...]
    files: dict  # split -> (images file, labels file), names without ".gz"
    md5: dict  # file name with ".gz" -> MD5 of the authors' gzip file
    mirrors: tuple[str, ...]  # base URLs, tried in order
    system_dirs: tuple[Path, ...]  # where an operating-system package puts the files
    alias_dirs: tuple[str, ...]  # other layouts inside a data directory (torchvision's)
    install_hint: str  # how to get it other than downloading


@dataclass(frozen=True)
class CifarSource:
    """CIFAR-10's binary version: one archive holding a directory of batch files."""

    name: str
    archive: str
    md5: str
    mirrors: tuple[str, ...]
    folder: str  # the directory inside the archive and on disk
    system_dirs: tuple[Path, ...]


_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# Classes, URLs and MD5 sums as published in zalandoresearch/fashion-mnist's README.
FASHION_MNIST = IdxSource(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
             "Bag", "Ankle boot"),
    files=_MNIST_FILES,
    md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    # Debian's dataset-fashion-mnist. Its .gz files were recompressed, so their MD5s differ from
    # the published ones: found files are checked by structure, downloads by MD5.
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    alias_dirs=("FashionMNIST/raw", "fashion"),
    install_hint="apt-get install dataset-fashion-mnist",
)

# LeCun's page is the original; PyTorch's S3 copy holds the same files (the same MD5s).
MNIST = IdxSource(
    name="mnist",
    classes=tuple(str(digit) for digit in range(10)),
    files=_MNIST_FILES,
    md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
             "http://yann.lecun.com/exdb/mnist/"),
    system_dirs=(Path("/usr/share/datasets/mnist"),),
    alias_dirs=("MNIST/raw",),
    install_hint="",
)

# The archive and its MD5 as published on https://www.cs.toronto.edu/~kriz/cifar.html.
CIFAR10 = CifarSource(
    name="cifar10",
    archive="cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530",
    mirrors=("https://www.cs.toronto.edu/~kriz/",),
    folder="cifar-10-batches-bin",
    system_dirs=(),
)

SOURCES = {"fashion-mnist": FASHION_MNIST, "mnist": MNIST, "cifar10": CIFAR10}
_OPTIONS = {"folder": ("holdout", "seed", "image_size"),
            "synthetic": ("num_samples", "image_size", "num_classes", "seed")}


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None,
                 download: bool = True, **options) -> DataSet:
    """One split (``"train"`` or ``"test"``) of a data set in ``DATASETS``, as a CPU ``DataSet``.

    ``fashion-mnist``, ``mnist`` and ``cifar10`` are looked for in ``data_dir``, the system's
    data directory and the cache, and downloaded (MD5-checked) if ``download`` and absent.
    ``folder`` reads ``data_dir`` (options ``holdout=0.2``, ``seed=0``, ``image_size=None``);
    ``synthetic`` makes a learnable set (options ``num_samples``, ``image_size=(C, H, W)``,
    ``num_classes``, ``seed``). A ``data_dir`` that is not an existing folder, and a missing or
    damaged data set, raise a ``CnnzooError``.
    """
    from . import cifar
    from .dataset import DataSet
    from .folder import load_folder
    from .idx import load_idx_pair
    from .synthetic import make_synthetic

    key = canonical_name(name)
    if split not in SPLITS:
        raise CnnzooError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    unknown = sorted(set(options) - set(_OPTIONS.get(key, ())))
    if unknown:
        takes = ", ".join(_OPTIONS.get(key, ())) or "no options"
        raise CnnzooError(f"{key} does not take {', '.join(unknown)} (it takes: {takes})")
    if data_dir is not None:
        data_dir = existing_folder(data_dir, "data directory")
    if key == "folder":
        if data_dir is None:
            raise CnnzooError("the folder data set needs data_dir=: a directory with "
                              "one subfolder of images per class")
        images, labels, classes, source = load_folder(data_dir, split, **options)
    elif key == "synthetic":
        images, labels, classes, source = make_synthetic(split, **options)
    elif key == "cifar10":
        directory = _locate_cifar(SOURCES["cifar10"], data_dir, download)
        images, labels, classes = cifar.load_cifar_split(directory, split)
        source = str(directory)
    else:
        spec = SOURCES[key]
        directory, (image_file, label_file) = _locate_idx(spec, split, data_dir, download)
        images, labels = load_idx_pair(image_file, label_file, len(spec.classes))
        classes, source = spec.classes, str(directory)
    return DataSet(images, labels, classes, key, source)


def canonical_name(name: str) -> str:
    """The entry of ``DATASETS`` that ``name`` means, ignoring case and punctuation
    ("FashionMNIST", "fashion_mnist", "CIFAR-10"); a ``CnnzooError`` suggesting one otherwise."""
    squashed = {re.sub(r"[^a-z0-9]", "", n): n for n in DATASETS}
    key = squashed.get(re.sub(r"[^a-z0-9]", "", str(name).lower()))
    if key is None:
        close = difflib.get_close_matches(str(name).lower(), DATASETS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CnnzooError(f"unknown data set {name!r}{hint} (known: {', '.join(DATASETS)})")
    return key


def existing_folder(path: str | Path, what: str) -> Path:
    """``path`` (``~`` expanded) when it is a folder; otherwise a ``DataSetNotFoundError`` that
    says whether it is empty, missing or a file. A folder given by name is never passed over for
    the usual places, which would read another copy of the data than the one asked for."""
    if not str(path):  # Path("") is the working folder: an unset variable would read it
        raise DataSetNotFoundError(f"{what} is an empty path; give the folder that holds the "
                                   f"data set's files (data_dir=DIR)")
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    problem = "is a file, not a folder" if path.exists() else "does not exist"
    raise DataSetNotFoundError(f"{what} {path} {problem}; give the folder that holds the data "
                               f"set's files (data_dir=DIR)")


def search_dirs(name: str, data_dir: str | Path | None, system_dirs=(), alias_dirs=()) -> list:
    """The directories looked in for data set ``name``, in order (existing or not): inside
    ``data_dir`` only, when it is given (a copy elsewhere is not the one asked for, and a split
    missing there is an error, not a reason to read another copy's); else the system's copy and
    the cache."""
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        dirs = [base / name, base, *(base / alias for alias in alias_dirs)]
    else:
        dirs = [*system_dirs, cache_root() / name]
    return list(dict.fromkeys(dirs))


def download_dir(name: str, data_dir: str | Path | None) -> Path:
    """Where a download of data set ``name`` goes: ``data_dir/<name>``, else the cache."""
    return (Path(data_dir).expanduser() if data_dir is not None else cache_root()) / name


def _find_file(directory: Path, stem: str) -> Path | None:
    # The authors ship .gz; unpacked copies are common, and Windows tools write "name.idx3-ubyte".
    for candidate in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _locate_idx(spec: IdxSource, split: str, data_dir, download: bool):
    stems = spec.files[split]
    dirs = search_dirs(spec.name, data_dir, spec.system_dirs, spec.alias_dirs)
    partial = []
    for directory in dirs:
        found = [_find_file(directory, stem) for stem in stems]
        if all(found):
            return directory, found
        if any(found):
            missing = [stem for stem, path in zip(stems, found) if path is None]
            partial.append(f"{directory} lacks {', '.join(missing)}")
    target = download_dir(spec.name, data_dir)
    names = [f"{stem}.gz" for stem in stems]
    problem = "downloading was not asked for (download=True)"
    if download:
        try:
            for file_name in names:
                fetch([base + file_name for base in spec.mirrors], target / file_name,
                      spec.md5[file_name])
            return target, [target / file_name for file_name in names]
        except DownloadFailed as error:
            problem = f"download failed ({error})"
    where = ", ".join(str(d) for d in dirs)
    found_part = f" ({'; '.join(partial)})" if partial else ""
    # the system's copy is not read when data_dir is given: installing it would not help
    install = (f"install it with `{spec.install_hint}`, or "
               if spec.install_hint and data_dir is None else "")
    raise DataSetNotFoundError(
        f"{spec.name} ({split}) not found in {where}{found_part}; {problem}; {install}put "
        f"{', '.join(names)} from {spec.mirrors[0]} into {target}")


def _locate_cifar(spec: CifarSource, data_dir, download: bool) -> Path:
    from . import cifar

    needed = (*cifar.TRAIN_FILES, *cifar.TEST_FILES)
    dirs = []
    for directory in search_dirs(spec.name, data_dir, spec.system_dirs):
        dirs += [directory / spec.folder, directory]
    dirs = list(dict.fromkeys(dirs))
    partial = []
    for directory in dirs:
        present = [(directory / n).is_file() for n in needed]
        if all(present):
            return directory
        if any(present):
            missing = [n for n, here in zip(needed, present) if not here]
            partial.append(f"{directory} lacks {', '.join(missing)}")
        if (directory.parent / "cifar-10-batches-py").is_dir():
            partial.append(f"{directory.parent / 'cifar-10-batches-py'} is the pickle version, "
                           "which cnnzoo does not read")
    target = download_dir(spec.name, data_dir)
    problem = "downloading was not asked for (download=True)"
    if download and (target / spec.folder).exists():
        problem = f"{target / spec.folder} is incomplete: remove it to download again"
    elif download:
        try:
            archive = fetch([base + spec.archive for base in spec.mirrors],
                            target / spec.archive, spec.md5)
            directory = extract_members(archive, spec.folder, (*needed, cifar.META_FILE),
                                        target / spec.folder)
            archive.unlink()
            return directory
        except DownloadFailed as error:
            problem = f"download failed ({error})"
    where = ", ".join(str(d) for d in dirs)
    found_part = f" ({'; '.join(dict.fromkeys(partial))})" if partial else ""
    raise DataSetNotFoundError(
        f"{spec.name} not found in {where}{found_part}; {problem}; put the binary version "
        f"{spec.mirrors[0]}{spec.archive} (MD5 {spec.md5}) unpacked into {target}")
