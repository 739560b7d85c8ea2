"""cnnzoo's data layer: labelled image sets as uint8 tensors, batched and augmented on the device.

``load_dataset(name, split)`` returns a ``DataSet`` (images uint8 (N, C, H, W), labels int64
(N,)); ``BatchIterator`` turns one into float32 batches with resizing, augmentation (``Augment``)
and normalisation as whole-batch tensor operations. Sources: Fashion-MNIST and MNIST (IDX files),
CIFAR-10 (binary batches), a folder of images, and a synthetic set; see ``DATASETS``.

The public names are imported on first use, so that the list of data sets is read without
importing torch.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Augment": ".batches", "BatchIterator": ".batches",
    "DATASETS": ".catalog", "SPLITS": ".catalog", "canonical_name": ".catalog",
    "load_dataset": ".catalog",
    "DataSet": ".dataset",
    "CorruptDataError": ".errors", "DataSetNotFoundError": ".errors",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
