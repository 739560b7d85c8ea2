"""cnnzoo's data layer: labelled image sets as uint8 tensors, batched and augmented on the device.

``load_dataset(name, split)`` returns a ``DataSet`` (images uint8 (N, C, H, W), labels int64
(N,)); ``BatchIterator`` turns one into float32 batches with resizing, augmentation (``Augment``)
and normalisation as whole-batch tensor operations. Sources: Fashion-MNIST and MNIST (IDX files),
CIFAR-10 (binary batches), a folder of images, and a synthetic set; see ``DATASETS``.
"""

from .batches import Augment, BatchIterator
from .catalog import DATASETS, SPLITS, canonical_name, load_dataset
from .dataset import DataSet
from .errors import CorruptDataError, DataSetNotFoundError

__all__ = ["Augment", "BatchIterator", "CorruptDataError", "DATASETS", "DataSet",
           "DataSetNotFoundError", "SPLITS", "canonical_name", "load_dataset"]
