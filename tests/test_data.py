"""The data layer: loaders on files written here from the formats' specifications, every kind of
damaged file, the real Fashion-MNIST when installed, BatchIterator's batches, and ``cnnzoo data``.

File layouts follow their published descriptions: IDX (yann.lecun.com/exdb/mnist: magic 00 00 08
0N, big-endian uint32 dims, C-order bytes) and CIFAR-10's binary version (cs.toronto.edu/~kriz/
cifar.html: a label byte, then 1024 red, 1024 green and 1024 blue bytes, each plane row-major).
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import os
import re
import struct
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import cnnzoo.cli
from cnnzoo.data import (DATASETS, Augment, BatchIterator, CorruptDataError, DataSet,
                         DataSetNotFoundError, load_dataset)
from cnnzoo.data import catalog
from cnnzoo.errors import CnnzooError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_README = Path("/usr/share/doc/dataset-fashion-mnist/README.md.gz")
# The zalandoresearch/fashion-mnist README's label table.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache, and no test ever looks at the user's."""
    monkeypatch.setenv("CNNZOO_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


# --- IDX -----------------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_idx_set(directory: Path, train: int = 40, test: int = 20, size=(28, 28), seed=0,
                 suffixes=(".gz", "")):
    """An MNIST-layout directory: by default train files gzip-compressed and test files raw."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count, suffix in (("train", train, suffixes[0]), ("t10k", test, suffixes[1])):
        images = rng.integers(0, 256, (count, *size), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write(directory / f"{split}-images-idx3-ubyte{suffix}", idx_bytes(images))
        write(directory / f"{split}-labels-idx1-ubyte{suffix}", idx_bytes(labels))
        arrays[split] = images, labels
    return arrays


@pytest.fixture
def idx_dir(tmp_path):
    directory = tmp_path / "fmnist"
    return directory, make_idx_set(directory)


def test_idx_gzip_of_several_members_and_large_blocks_reads_as_gzip_does(tmp_path):
    # gzip files may be several members one after another (as `cat a.gz b.gz` makes); cnnzoo
    # inflates in its own large blocks and must read them all, as gzip.open does
    from cnnzoo.data.idx import _CHUNK, read_idx

    rng = np.random.default_rng(1)
    rows = 2 * _CHUNK // 784 + 3  # more than two blocks of output
    images = rng.integers(0, 4, (rows, 28, 28), dtype=np.uint8)  # compressible, yet not flat
    data = idx_bytes(images)
    cut = len(data) // 3
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    assert gzip.decompress(path.read_bytes()) == data
    assert torch.equal(read_idx(path, 3), torch.from_numpy(images))
    path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:] + b"\1" * 7))
    with pytest.raises(CorruptDataError, match="7 bytes follow"):
        read_idx(path, 3)


def test_idx_gzip_and_raw_load(idx_dir):
    directory, arrays = idx_dir
    for split, key in (("train", "train"), ("test", "t10k")):
        data = load_dataset("fashion-mnist", split, data_dir=directory, download=False)
        images, labels = arrays[key]
        assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
        assert data.images.shape == (len(images), 1, 28, 28)
        assert data.image_size == (1, 28, 28) and data.num_classes == 10
        assert torch.equal(data.images[:, 0], torch.from_numpy(images))
        assert torch.equal(data.labels, torch.from_numpy(labels).long())
        assert data.classes == FASHION_CLASSES and data.name == "fashion-mnist"
        assert data.source == str(directory)


def test_idx_found_in_named_subdirectory_and_unpacked_windows_names(tmp_path):
    make_idx_set(tmp_path / "mnist")
    data = load_dataset("MNIST", "test", data_dir=tmp_path, download=False)
    assert len(data) == 20 and data.classes == tuple("0123456789")
    for path in (tmp_path / "mnist").iterdir():
        if path.name.startswith("t10k"):  # as Windows unpackers name them: t10k-images.idx3-ubyte
            path.rename(tmp_path / path.name.replace("-idx", ".idx"))
    assert len(load_dataset("mnist", "test", data_dir=tmp_path, download=False)) == 20


def corrupt(name: str, directory: Path) -> tuple[str, str]:
    """Damage one file of a fresh IDX set; return (file name, words the error must contain)."""
    images = np.zeros((40, 28, 28), np.uint8)
    labels = (np.arange(40) % 10).astype(np.uint8)
    image_file = directory / "train-images-idx3-ubyte.gz"
    label_file = directory / "train-labels-idx1-ubyte.gz"
    good_images = idx_bytes(images)
    if name == "magic":
        write(image_file, b"\x12\x34" + good_images[2:])
        return image_file.name, "not an IDX file"
    if name == "type":
        write(image_file, good_images[:2] + b"\x0d" + good_images[3:])
        return image_file.name, "float32"
    if name == "rank":
        write(image_file, idx_bytes(images.reshape(40, 784)))
        return image_file.name, "2 dimension(s) where 3"
    if name == "zero-dim":
        write(image_file, idx_bytes(np.zeros((0, 28, 28), np.uint8)))
        return image_file.name, "no data"
    if name == "short-header":
        write(image_file, good_images[:9])
        return image_file.name, "truncated inside its header"
    if name == "truncated":
        write(image_file, good_images[:-100])
        return image_file.name, "truncated"
    if name == "extra":
        write(image_file, good_images + b"\0" * 5)
        return image_file.name, "5 bytes follow"
    if name == "count":
        write(label_file, idx_bytes(labels[:39]))
        return label_file.name, "39 labels"
    if name == "label-range":
        bad = labels.copy()
        bad[17] = 10
        write(label_file, idx_bytes(bad))
        return label_file.name, "label 10 at position 17"
    packed = gzip.compress(good_images)
    if name == "gzip-truncated":
        image_file.write_bytes(packed[: len(packed) // 2])
        return image_file.name, "gzip stream is truncated"
    if name == "gzip-crc":
        image_file.write_bytes(packed[:-8] + bytes([packed[-8] ^ 0xFF]) + packed[-7:])
        return image_file.name, "CRC"
    if name == "not-gzip":
        image_file.write_bytes(good_images)  # raw bytes under a .gz name
        return image_file.name, "not gzip data"
    raise AssertionError(name)


@pytest.mark.parametrize("defect", ["magic", "type", "rank", "zero-dim", "short-header",
                                    "truncated", "extra", "count", "label-range",
                                    "gzip-truncated", "gzip-crc", "not-gzip"])
def test_damaged_idx_file_is_one_line_error_naming_it(tmp_path, defect):
    make_idx_set(tmp_path)
    file_name, words = corrupt(defect, tmp_path)
    with pytest.raises(CorruptDataError) as error:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path, download=False)
    message = one_line(error)
    assert file_name in message and words in message


def test_missing_data_set_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch,
                                                                  private_cache):
    spec = dataclasses.replace(catalog.FASHION_MNIST, system_dirs=(tmp_path / "system",))
    monkeypatch.setitem(catalog.SOURCES, "fashion-mnist", spec)
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset("fashion-mnist", "test", download=False)
    message = one_line(error)
    for words in (str(tmp_path / "system"), str(private_cache / "fashion-mnist"),
                  "apt-get install dataset-fashion-mnist",
                  "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"):
        assert words in message
    assert isinstance(error.value, CnnzooError) and isinstance(error.value, FileNotFoundError)


def test_a_data_dir_is_the_only_place_read(tmp_path, monkeypatch, private_cache):
    # the system's copy holds both splits; the folder asked for holds the training split and
    # half of the test split: the test split is missing, not taken from the system's copy
    spec = dataclasses.replace(catalog.FASHION_MNIST, system_dirs=(tmp_path / "system",))
    monkeypatch.setitem(catalog.SOURCES, "fashion-mnist", spec)
    make_idx_set(tmp_path / "system")
    make_idx_set(tmp_path / "mine")
    (tmp_path / "mine" / "t10k-labels-idx1-ubyte").unlink()
    assert load_dataset("fashion-mnist", "train", data_dir=tmp_path / "mine",
                        download=False).source == str(tmp_path / "mine")
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path / "mine", download=False)
    message = one_line(error)
    assert str(tmp_path / "mine") in message and "lacks t10k-labels-idx1-ubyte" in message
    assert str(tmp_path / "system") not in message and str(private_cache) not in message
    assert "apt-get" not in message  # the system's copy would not be read either
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSetNotFoundError):
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "empty", download=False)
    assert load_dataset("fashion-mnist", "test", download=False).source == \
        str(tmp_path / "system")


def mirror_of(directory: Path, spec, monkeypatch, md5=None):
    """Point a data set's download at a local file:// mirror holding ``directory``'s files."""
    sums = {name: md5 or hashlib.md5((directory / name).read_bytes()).hexdigest()
            for name in spec.md5}
    patched = dataclasses.replace(spec, mirrors=(directory.as_uri() + "/",), md5=sums,
                                  system_dirs=())
    monkeypatch.setitem(catalog.SOURCES, spec.name, patched)


def test_download_checks_md5_and_writes_into_the_cache(tmp_path, monkeypatch, private_cache):
    arrays = make_idx_set(tmp_path / "mirror", suffixes=(".gz", ".gz"))
    mirror_of(tmp_path / "mirror", catalog.MNIST, monkeypatch)
    data = load_dataset("mnist", "train", download=True)
    assert data.source == str(private_cache / "mnist")
    assert torch.equal(data.images[:, 0], torch.from_numpy(arrays["train"][0]))
    assert sorted(p.name for p in (private_cache / "mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    # A second load finds the files and needs no mirror.
    monkeypatch.setitem(catalog.SOURCES, "mnist", dataclasses.replace(catalog.MNIST, mirrors=()))
    assert len(load_dataset("mnist", "train", download=True)) == 40


def test_download_with_wrong_md5_keeps_nothing(tmp_path, monkeypatch, private_cache):
    make_idx_set(tmp_path / "mirror", suffixes=(".gz", ".gz"))
    mirror_of(tmp_path / "mirror", catalog.MNIST, monkeypatch, md5="0" * 32)
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset("mnist", "train", download=True)
    assert "MD5" in one_line(error) and "0" * 32 in str(error.value)
    assert list((private_cache / "mnist").iterdir()) == []


@pytest.mark.parametrize("blocked", ["data_dir/mnist", "cache"])
def test_download_into_a_folder_that_is_a_file_is_one_line_error(tmp_path, monkeypatch,
                                                                 private_cache, blocked):
    make_idx_set(tmp_path / "mirror", suffixes=(".gz", ".gz"))
    mirror_of(tmp_path / "mirror", catalog.MNIST, monkeypatch)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if blocked == "cache":
        private_cache.write_text("a file where the cache folder goes")
        data_dir, target = None, private_cache / "mnist"
    else:
        target = data_dir / "mnist"
        target.write_text("a file where the download folder goes")
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset("mnist", "train", data_dir=data_dir, download=True)
    assert f"download failed (cannot make the folder {target} (" in one_line(error)


def test_download_into_a_folder_that_takes_no_file_is_one_line_error(tmp_path, monkeypatch,
                                                                     private_cache):
    """The cache folder is there but refuses new files (a read-only medium): the message that
    says where to put the files by hand, not the OSError of a temporary file."""
    make_idx_set(tmp_path / "mirror", suffixes=(".gz", ".gz"))
    mirror_of(tmp_path / "mirror", catalog.MNIST, monkeypatch)
    (private_cache / "mnist").mkdir(parents=True)
    real_mkstemp = tempfile.mkstemp

    def read_only(*args, **kwargs):
        if kwargs.get("suffix") == ".part":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset("mnist", "train", download=True)
    message = one_line(error)
    assert (f"download failed (cannot write {private_cache / 'mnist'}/"
            f"train-images-idx3-ubyte.gz: Read-only file system); put "
            f"train-images-idx3-ubyte.gz") in message
    assert list((private_cache / "mnist").iterdir()) == []


def test_published_fashion_mnist_checksums_match_debian_copy_of_the_readme():
    if not DEBIAN_README.exists():
        pytest.skip(f"{DEBIAN_README} absent (Debian package dataset-fashion-mnist not installed)")
    text = gzip.decompress(DEBIAN_README.read_bytes()).decode()
    published = dict(re.findall(r"`([a-z0-9-]+\.gz)`.*`([0-9a-f]{32})`", text))
    assert published == catalog.FASHION_MNIST.md5


# --- the real Fashion-MNIST ----------------------------------------------------------------------

@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(),
                    reason=f"Fashion-MNIST is not installed at {DEBIAN_FASHION_MNIST} "
                           "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    train = load_dataset("fashion-mnist", "train", download=False)
    test = load_dataset("fashion-mnist", "test", download=False)
    assert train.images.shape == (60_000, 1, 28, 28) and test.images.shape == (10_000, 1, 28, 28)
    assert train.class_counts() == [6_000] * 10 and test.class_counts() == [1_000] * 10
    assert train.classes == FASHION_CLASSES and train.source == str(DEBIAN_FASHION_MNIST)
    histogram = np.bincount(train.images.numpy().ravel(), minlength=256)
    levels = np.arange(256) / 255
    mean = (histogram * levels).sum() / histogram.sum()
    std = np.sqrt((histogram * (levels - mean) ** 2).sum() / histogram.sum())
    assert train.mean_std()[0].item() == pytest.approx(mean, abs=1e-6)
    assert train.mean_std()[1].item() == pytest.approx(std, abs=1e-6)


# --- CIFAR-10 ------------------------------------------------------------------------------------

def make_cifar(directory: Path, per_batch: int = 3, seed: int = 0):
    """A cifar-10-batches-bin directory; returns {file name: (images, labels)}."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch, dtype=np.uint8)
        records = [bytes([label]) + image.tobytes() for image, label in zip(images, labels)]
        (directory / name).write_bytes(b"".join(records))
        written[name] = images, labels
    (directory / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES) + "\n\n")
    return written


def test_cifar_binary_loads_in_order(tmp_path):
    written = make_cifar(tmp_path / "cifar-10-batches-bin")
    train = load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    test = load_dataset("CIFAR-10", "test", data_dir=tmp_path, download=False)
    expected = [written[f"data_batch_{i}.bin"] for i in range(1, 6)]
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert torch.equal(train.images, torch.from_numpy(np.concatenate([i for i, _ in expected])))
    labels = np.concatenate([labels for _, labels in expected])
    assert torch.equal(train.labels, torch.from_numpy(labels).long())
    assert torch.equal(test.images, torch.from_numpy(written["test_batch.bin"][0]))
    assert train.classes == CIFAR_CLASSES
    assert train.source == str(tmp_path / "cifar-10-batches-bin")


@pytest.mark.parametrize("defect", ["record-size", "label-range", "meta", "missing"])
def test_damaged_cifar_is_one_line_error(tmp_path, defect):
    directory = tmp_path / "cifar-10-batches-bin"
    make_cifar(directory)
    batch = directory / "data_batch_2.bin"
    if defect == "record-size":
        batch.write_bytes(batch.read_bytes() + b"\0" * 7)
        expected, words = CorruptDataError, ["data_batch_2.bin", "3,073-byte records"]
    elif defect == "label-range":
        data = bytearray(batch.read_bytes())
        data[3073] = 10  # the second record's label byte
        batch.write_bytes(bytes(data))
        expected, words = CorruptDataError, ["data_batch_2.bin", "label 10 at position 1"]
    elif defect == "meta":
        (directory / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES[:9]))
        expected, words = CorruptDataError, ["batches.meta.txt", "names 9 classes"]
    else:
        batch.unlink()
        expected, words = DataSetNotFoundError, ["lacks data_batch_2.bin", "cifar-10-binary"]
    with pytest.raises(expected) as error:
        load_dataset("cifar10", "train", data_dir=tmp_path, download=False)
    assert all(w in one_line(error) for w in words)


def test_cifar_download_unpacks_only_the_batches(tmp_path, monkeypatch, private_cache):
    written = make_cifar(tmp_path / "build" / "cifar-10-batches-bin")
    (tmp_path / "mirror").mkdir()
    archive = tmp_path / "mirror" / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    spec = dataclasses.replace(catalog.CIFAR10, mirrors=((tmp_path / "mirror").as_uri() + "/",),
                               md5=md5)
    monkeypatch.setitem(catalog.SOURCES, "cifar10", spec)
    test = load_dataset("cifar10", "test", download=True)
    assert torch.equal(test.images, torch.from_numpy(written["test_batch.bin"][0]))
    assert sorted(p.name for p in (private_cache / "cifar10").iterdir()) == [
        "cifar-10-batches-bin"]


# --- image folders -------------------------------------------------------------------------------

def make_folder(root: Path, classes=("cat", "dog", "eel"), per_class=5, size=(8, 6), mode="RGB",
                suffix=".png"):
    """Images whose every pixel is 50 * class + index: a loaded image tells where it came from."""
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            value = 50 * label + index
            color = value if mode == "L" else (value, value, value)
            Image.new(mode, (size[1], size[0]), color).save(root / name / f"{index}{suffix}")
    return root


def test_folder_holds_out_a_seeded_stratified_fifth(tmp_path):
    root = make_folder(tmp_path / "pics")
    train = load_dataset("folder", "train", data_dir=root)
    test = load_dataset("folder", "test", data_dir=root)
    assert train.classes == ("cat", "dog", "eel") and train.image_size == (3, 8, 6)
    assert train.class_counts() == [4, 4, 4] and test.class_counts() == [1, 1, 1]
    for data in (train, test):
        values = data.images[:, 0, 0, 0].long()
        assert torch.equal(values // 50, data.labels)  # each image sits under its own class
        assert torch.all(data.images == data.images[:, :1, :1, :1])
    seen = torch.cat([train.images[:, 0, 0, 0], test.images[:, 0, 0, 0]]).sort().values
    assert seen.tolist() == sorted(50 * c + i for c in range(3) for i in range(5))
    again = load_dataset("folder", "test", data_dir=root)
    other = load_dataset("folder", "test", data_dir=root, seed=1)
    assert torch.equal(again.images, test.images)
    assert not torch.equal(other.images, test.images)


def test_folder_with_train_and_test_subfolders_and_grayscale_jpeg(tmp_path):
    make_folder(tmp_path / "train", classes=("a", "b"), mode="L", suffix=".jpg")
    make_folder(tmp_path / "test", classes=("a", "b"), per_class=2, mode="L", suffix=".jpeg")
    train = load_dataset("folder", "train", data_dir=tmp_path)
    test = load_dataset("folder", "test", data_dir=tmp_path)
    assert train.image_size == (1, 8, 6) and len(train) == 10 and len(test) == 4
    assert test.classes == ("a", "b") and test.labels.tolist() == [0, 0, 1, 1]
    # JPEG is lossy; a flat image comes back within a level or two.
    expected = torch.tensor([0, 1, 50, 51]).view(-1, 1, 1, 1)
    assert (test.images.long() - expected).abs().max() <= 2


def test_folder_mixes_grayscale_into_rgb_and_scales_16_bit(tmp_path):
    root = make_folder(tmp_path, classes=("rgb",), per_class=2)
    (root / "gray").mkdir()
    Image.new("L", (6, 8), 77).save(root / "gray" / "g.png")
    deep = np.full((8, 6), 257 * 200, dtype=np.uint16)
    Image.fromarray(deep).save(root / "gray" / "deep.png")
    splits = [load_dataset("folder", split, data_dir=root, holdout=0.5)
              for split in ("train", "test")]
    assert all(data.image_size == (3, 8, 6) for data in splits)
    gray = torch.cat([data.images[data.labels == 0] for data in splits])  # "gray" sorts first
    assert sorted(gray[:, :, 0, 0].tolist()) == [[77, 77, 77], [200, 200, 200]]


def test_folder_reads_a_camera_jpeg_with_a_second_picture_as_its_first(tmp_path):
    # Pillow names such a file MPO (Multi-Picture Object); it is a JPEG to every viewer
    root = make_folder(tmp_path, per_class=2, suffix=".jpg")
    Image.new("RGB", (6, 8), (200, 0, 0)).save(
        root / "eel" / "camera.jpg", format="MPO", save_all=True,
        append_images=[Image.new("RGB", (6, 8), (0, 0, 200))])
    with Image.open(root / "eel" / "camera.jpg") as image:
        assert image.format == "MPO"
    images = torch.cat([load_dataset("folder", split, data_dir=root).images
                        for split in ("train", "test")])
    red = images[:, :, 0, 0].long() - torch.tensor([200, 0, 0])
    assert len(images) == 7 and int(red.abs().sum(1).min()) <= 6  # the first picture, red


def test_folder_follows_links_to_folders_once_and_names_a_broken_link(tmp_path):
    root = make_folder(tmp_path / "pics", classes=("cat", "dog"), per_class=2)
    more = make_folder(tmp_path / "more", classes=("cat",), per_class=3) / "cat"
    (root / "cat" / "more").symlink_to(more, target_is_directory=True)
    (root / "cat" / "loop").symlink_to(root / "cat", target_is_directory=True)
    (root / "dog" / "linked.png").symlink_to(root / "dog" / "0.png")
    counts = [load_dataset("folder", split, data_dir=root, holdout=0.5).class_counts()
              for split in ("train", "test")]
    assert [sum(column) for column in zip(*counts)] == [2 + 3, 2 + 1]
    (root / "dog" / "gone.png").symlink_to(tmp_path / "moved.png")
    with pytest.raises(CorruptDataError) as error:
        load_dataset("folder", "train", data_dir=root)
    assert "dog/gone.png: not a readable image" in one_line(error)


def test_folder_of_palette_images_with_transparency_loads_without_warnings(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for index in range(2):
            pixels = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
            # transparency per palette entry, as bytes: Pillow notes it on every conversion
            image.save(tmp_path / name / f"{index}.png", transparency=bytes([0, 255, 128, 255]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset("folder", "train", data_dir=tmp_path, holdout=0.5)
    assert data.image_size == (3, 8, 6)


def test_folder_mixed_sizes_is_an_error_unless_resized(tmp_path):
    root = make_folder(tmp_path, per_class=3)
    Image.new("RGB", (10, 10)).save(root / "dog" / "odd.png")
    with pytest.raises(CorruptDataError) as error:
        load_dataset("folder", "train", data_dir=root)
    message = one_line(error)
    assert "differ in size" in message and "odd.png is 10x10" in message and "9 of 8x6" in message
    # what to do from the command line, where image_size cannot be given
    assert "train with resize=S to read each at SxS" in message
    assert "resize the files to one size, e.g. all to 8x6" in message
    data = load_dataset("folder", "train", data_dir=root, image_size=(5, 5))
    assert data.image_size == (3, 5, 5)


@pytest.mark.parametrize("defect", ["empty", "one-class", "train-only", "no-images", "text-file",
                                    "garbage", "truncated", "gif", "bomb", "missing"])
def test_bad_folder_is_one_line_error(tmp_path, monkeypatch, defect):
    root = tmp_path / "pics"
    if defect == "empty":
        root.mkdir()
        expected, words = DataSetNotFoundError, "no class subfolders"
    elif defect in ("one-class", "train-only"):  # would train to zero loss on nothing to learn
        make_folder(root / "train" if defect == "train-only" else root, classes=("cat",))
        only = "train" if defect == "train-only" else "cat"
        expected, words = DataSetNotFoundError, f"one class subfolder, {only}; a classifier needs"
    elif defect == "missing":
        expected, words = DataSetNotFoundError, "does not exist"
    else:
        make_folder(root)
        target = root / "dog" / "2.png"
        if defect == "no-images":
            (root / "fox").mkdir()
            expected, words = CorruptDataError, "fox: class folder holds no images"
        elif defect == "text-file":
            (root / "dog" / "notes.txt").write_text("hello")
            expected, words = CorruptDataError, "notes.txt: not a PNG or JPEG"
        elif defect == "garbage":
            target.write_bytes(b"definitely not a picture")
            expected, words = CorruptDataError, "2.png: not a readable image"
        elif defect == "truncated":
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 6, 3), np.uint8)).save(
                target)
            target.write_bytes(target.read_bytes()[:-30])
            expected, words = CorruptDataError, "2.png: not a readable image"
        elif defect == "gif":
            Image.new("RGB", (6, 8)).save(target, format="GIF")
            expected, words = CorruptDataError, "2.png: a GIF image"
        else:  # Pillow's decompression-bomb guard, lowered so a small file trips it
            monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)
            expected, words = CorruptDataError, "decompression-bomb limit"
    with pytest.raises(expected) as error:
        # Both splits are checked whichever is asked for: the bad file may be in either.
        load_dataset("folder", "test", data_dir=root)
        load_dataset("folder", "train", data_dir=root)
    assert words in one_line(error)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "folder", "synthetic"])
@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_a_data_dir_that_is_not_a_folder_is_refused_not_passed_over(tmp_path, monkeypatch, name,
                                                                     kind):
    # Fashion-MNIST is in the system directory on this machine: a mistyped --data-dir must not
    # quietly read that copy instead, nor an empty one (an unset variable) the working folder
    path = tmp_path / "data"
    if kind == "file":
        path.write_text("not a folder")
    if kind == "empty":
        make_folder(tmp_path)  # a folder of images to read, were "" taken for "."
        monkeypatch.chdir(tmp_path)
        path = ""
    with pytest.raises(DataSetNotFoundError) as error:
        load_dataset(name, "test", data_dir=path, download=False)
    problem = {"missing": f"{path} does not exist", "file": f"{path} is a file, not a folder",
               "empty": "is an empty path"}[kind]
    assert one_line(error).startswith(f"data directory {problem}; ")


def test_folder_needs_data_dir():
    with pytest.raises(CnnzooError, match="needs data_dir"):
        load_dataset("folder", "train")


# --- synthetic -----------------------------------------------------------------------------------

def test_synthetic_is_seeded_balanced_and_learnable():
    train = load_dataset("synthetic", "train", num_samples=600, num_classes=6,
                         image_size=(3, 16, 12), seed=3)
    test = load_dataset("synthetic", "test", num_samples=300, num_classes=6,
                        image_size=(3, 16, 12), seed=3)
    assert train.images.shape == (600, 3, 16, 12) and train.images.dtype == torch.uint8
    assert train.class_counts() == [100] * 6 and test.class_counts() == [50] * 6
    again = load_dataset("synthetic", "train", num_samples=600, num_classes=6,
                         image_size=(3, 16, 12), seed=3)
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    other = load_dataset("synthetic", "train", num_samples=600, num_classes=6,
                         image_size=(3, 16, 12), seed=4)
    assert not torch.equal(other.images, train.images)
    # Nearest class mean, fitted on train, classifies the test split.
    flat = train.images.flatten(1).float()
    centroids = torch.stack([flat[train.labels == k].mean(0) for k in range(6)])
    predicted = torch.cdist(test.images.flatten(1).float(), centroids).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.95


def test_synthetic_trains_a_tiny_model_in_a_few_steps():
    train = load_dataset("synthetic", "train", num_samples=500)
    test = load_dataset("synthetic", "test")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    batches = BatchIterator(train, 50, seed=0)
    for epoch in range(5):
        batches.set_epoch(epoch)
        for x, y in batches:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    x, y = next(iter(BatchIterator(test, len(test), shuffle=False)))
    assert (model(x).argmax(1) == y).float().mean() > 0.9


def test_unknown_name_split_and_option_are_one_line_errors():
    with pytest.raises(CnnzooError, match="did you mean 'cifar10'"):
        load_dataset("cifar", "train")
    with pytest.raises(CnnzooError, match="unknown split 'valid'"):
        load_dataset("synthetic", "valid")
    with pytest.raises(CnnzooError, match="does not take holdout"):
        load_dataset("synthetic", "train", holdout=0.1)
    with pytest.raises(CnnzooError, match="num_classes must be"):
        load_dataset("synthetic", "train", num_classes=1)
    assert DATASETS == ("fashion-mnist", "mnist", "cifar10", "folder", "synthetic")


# --- DataSet -------------------------------------------------------------------------------------

def indexed_set(count: int = 50, classes: int = 5, size=(1, 4, 4)) -> DataSet:
    """Image i is filled with the value i, so a batch tells which images it holds."""
    images = torch.arange(count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(count, *size)
    labels = torch.arange(count) % classes
    return DataSet(images.contiguous(), labels, tuple("abcde"[:classes]), "indexed", "test")


def test_subset_is_stratified_seeded_and_by_index():
    data = indexed_set(100, 5)
    small = data.subset(13, seed=1)
    assert len(small) == 13 and sorted(small.class_counts()) == [2, 2, 3, 3, 3]
    assert torch.equal(small.images, data.subset(13, seed=1).images)
    assert not torch.equal(small.images, data.subset(13, seed=2).images)
    picked = small.images[:, 0, 0, 0].long()
    assert torch.equal(data.labels[picked], small.labels)  # labels travel with their images
    by_index = data.subset([7, 3, 99])
    assert by_index.images[:, 0, 0, 0].tolist() == [7, 3, 99]
    assert by_index.labels.tolist() == [2, 3, 4]
    assert torch.equal(data.subset(500).images, data.images)  # more than there is: all
    with pytest.raises(ValueError):
        data.subset(0)


def test_dataset_rejects_wrong_tensors_and_moves():
    with pytest.raises(ValueError, match="uint8"):
        DataSet(torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.long), ("a",), "x", "y")
    with pytest.raises(ValueError, match="int64"):
        DataSet(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.long),
                ("a",), "x", "y")
    data = indexed_set()
    assert data.to("cpu") is data and data.device == torch.device("cpu")


def test_mean_std_matches_numpy():
    data = load_dataset("synthetic", "test", image_size=(3, 9, 7))
    pixels = data.images.numpy().astype(np.float64) / 255
    mean, std = data.mean_std()
    np.testing.assert_allclose(mean.numpy(), pixels.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(std.numpy(), pixels.std(axis=(0, 2, 3)), atol=1e-6)


# --- BatchIterator -------------------------------------------------------------------------------

def indices_of(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0] * 255).round().long().tolist()


def epoch(batches: BatchIterator):
    return [(x.clone(), y.clone()) for x, y in batches]


def same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2)
                                    for (x1, y1), (x2, y2) in zip(a, b))


def test_batches_cover_the_set_once_and_repeat_per_seed_and_epoch():
    data = indexed_set(50)
    batches = BatchIterator(data, 16, seed=7)
    assert len(batches) == 4
    first = epoch(batches)
    assert [len(y) for _, y in first] == [16, 16, 16, 2]
    for x, y in first:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (1, 4, 4)
        assert torch.equal(y, torch.tensor(indices_of(x)) % 5)
    order = sum((indices_of(x) for x, _ in first), [])
    assert sorted(order) == list(range(50)) and order != list(range(50))
    assert same(epoch(batches), first)
    batches.set_epoch(1)
    second = epoch(batches)
    assert not same(second, first)
    resumed = BatchIterator(data, 16, seed=7)
    resumed.set_epoch(1)
    assert same(epoch(resumed), second)  # a restarted run at epoch 1 sees the same batches
    assert not same(epoch(BatchIterator(data, 16, seed=8)), first)


def test_unshuffled_and_drop_last():
    batches = BatchIterator(indexed_set(50), 16, shuffle=False, drop_last=True)
    assert len(batches) == 3 and batches.samples_per_epoch == 48
    assert sum((indices_of(x) for x, _ in batches), []) == list(range(48))


def test_resize_matches_interpolate_on_the_same_images():
    data = load_dataset("synthetic", "test", num_samples=40)
    for size, antialias in ((96, False), ((20, 14), True)):
        x, y = next(iter(BatchIterator(data, 40, shuffle=False, resize=size)))
        target = (size, size) if isinstance(size, int) else size
        expected = F.interpolate(data.images.float() / 255, size=target, mode="bilinear",
                                 align_corners=False, antialias=antialias)
        assert x.shape == (40, 1, *target)
        torch.testing.assert_close(x, expected, rtol=0, atol=1e-6)
        assert torch.equal(y, data.labels)


def test_normalize_with_given_and_dataset_statistics():
    data = load_dataset("synthetic", "test", num_samples=30, image_size=(3, 5, 5))
    raw = data.images.float() / 255
    x, _ = next(iter(BatchIterator(data, 30, shuffle=False,
                                   normalize=((0.5, 0.4, 0.3), (0.2, 0.25, 0.5)))))
    expected = (raw - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    x, _ = next(iter(BatchIterator(data, 30, shuffle=False, normalize="dataset")))
    pixels = raw.double()
    expected = (pixels - pixels.mean((0, 2, 3), keepdim=True)) / pixels.std(
        (0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(x.double(), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="2 values for 3 channel"):
        BatchIterator(data, 4, normalize=((0.5, 0.5), (0.2, 0.2)))


def test_augmentations_are_seeded_keep_shapes_and_do_what_they_say():
    data = load_dataset("synthetic", "train", num_samples=64, image_size=(3, 12, 12))
    # No zero pixels, so an erased (zeroed) pixel always shows.
    data = DataSet(data.images.clamp(min=1), data.labels, data.classes, data.name, data.source)
    raw = data.images.float() / 255
    for augment in (Augment(crop_padding=3), Augment(flip=True), Augment(erasing=1.0)):
        batches = BatchIterator(data, 64, shuffle=False, seed=5, augment=augment)
        (x, y), = epoch(batches)
        assert x.shape == raw.shape and torch.equal(y, data.labels)
        assert same(epoch(batches), [(x, y)])
        batches.set_epoch(3)
        assert not same(epoch(batches), [(x, y)])
        if augment.crop_padding:
            padded = F.pad(raw, (3, 3, 3, 3))
            for out, image in zip(x, padded):  # each output is a window of its padded image
                assert any(torch.equal(out, image[:, i:i + 12, j:j + 12])
                           for i in range(7) for j in range(7))
            assert not torch.equal(x, raw)
        if augment.flip:
            flipped = torch.tensor([torch.equal(o, r.flip(2)) for o, r in zip(x, raw)])
            kept = torch.tensor([torch.equal(o, r) for o, r in zip(x, raw)])
            assert torch.all(flipped | kept) and flipped.any() and kept.any()
        if augment.erasing:
            erased = (x != raw).any(1)  # (B, H, W): where some channel changed
            assert torch.all(x.masked_select(erased[:, None].expand_as(x)) == 0)
            assert erased.flatten(1).any(1).all()  # probability 1: every image
            for mask in erased:  # one filled rectangle per image
                rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
                assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_augment_and_iterator_reject_bad_arguments():
    with pytest.raises(ValueError):
        Augment(erasing=1.5)
    with pytest.raises(ValueError):
        Augment(crop_padding=-1)
    with pytest.raises(ValueError):
        BatchIterator(indexed_set(), 0)
    with pytest.raises(ValueError):
        BatchIterator(indexed_set(), 4, resize=(0, 3))


# --- cnnzoo data ---------------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch, capsys):
    # Only this module's command, so the test does not depend on the other subcommands.
    monkeypatch.setattr(cnnzoo.cli, "COMMANDS", ("data",))

    def run(*argv):
        code = cnnzoo.cli.main(["data", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_prints_source_splits_shapes_classes_and_counts(cli, idx_dir):
    directory, _ = idx_dir
    code, out, err = cli("fashion-mnist", "--data-dir", str(directory))
    assert code == 0 and err == ""
    assert f"train         40 images  from {directory}" in out
    assert "test          20 images" in out and "1x28x28 uint8" in out
    assert re.search(r"0  T-shirt/top\s+4\s+2\n", out) and re.search(r"9  Ankle boot\s+4\s+2", out)


def test_cli_missing_or_damaged_data_is_one_line_error(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(catalog.SOURCES, "mnist",
                        dataclasses.replace(catalog.MNIST, system_dirs=()))
    code, out, err = cli("mnist", "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith("cnnzoo: error: mnist (train) not found in ") and err.count("\n") == 1
    make_idx_set(tmp_path)
    corrupt("truncated", tmp_path)
    code, out, err = cli("mnist", "--data-dir", str(tmp_path))
    assert code == 2 and "train-images-idx3-ubyte.gz: truncated" in err and err.count("\n") == 1


def test_cli_empty_data_dir_is_refused_not_read_as_the_working_folder(cli, tmp_path,
                                                                      monkeypatch):
    make_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("folder", "--data-dir", "")
    assert code == 2 and out == ""
    assert err.startswith("cnnzoo: error: data directory is an empty path; ")


def test_cli_data_dir_that_is_a_file_says_so(cli, tmp_path):
    (tmp_path / "passwd").write_text("root:x:0:0")
    code, out, err = cli("folder", "--data-dir", str(tmp_path / "passwd"))
    assert code == 2 and out == ""
    assert err == (f"cnnzoo: error: data directory {tmp_path / 'passwd'} is a file, not a "
                   f"folder; give the folder that holds the data set's files (--data-dir DIR)\n")
