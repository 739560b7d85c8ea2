"""AlexNet (Krizhevsky, Sutskever & Hinton 2012): the paper's layers in one tower, and d2l's.

Five convolutions (96-256-384-384-256 maps; 11x11 stride 4, then 5x5 and 3x3) with overlapping
3/2 max-pools after the first, second and fifth, then three fully connected layers
(4096-4096-classes) with dropout on the two hidden ones. The first linear layer is sized for the
input at construction, so an input too small for the convolutions fails there, naming the layer.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..geometry import sequential_output_shape
from ._base import FeaturesHead, resolve_input_size
from .registry import FROM_D2L, FROM_PAPER, register_model

PAPER = ("Krizhevsky, Sutskever & Hinton, ImageNet Classification with Deep Convolutional "
         "Neural Networks")


# out channels, kernel, stride, padding (None: conv1's, 0 in the paper, 1 in d2l), split between
# the paper's two GPUs, followed by a max-pool
CONVS = (
    (96, 11, 4, None, False, True),
    (256, 5, 1, 2, True, True),
    (384, 3, 1, 1, False, False),
    (384, 3, 1, 1, True, False),
    (256, 3, 1, 1, True, True),
)


class AlexNet(FeaturesHead):
    """AlexNet with the paper's layer names: ``features`` (conv1..conv5, pool1, pool2, pool5) and
    ``classifier`` (fc6, fc7, fc8): (N, C, H, W) -> (N, num_classes).

    ``conv1_padding`` is 0 in the paper and 1 in d2l; ``local_response_norm`` adds the paper's
    LRN after the first two ReLUs; ``two_towers`` splits conv2, conv4 and conv5 into two groups
    as the paper's two GPUs did. fc6 is sized for ``input_size`` (C, H, W). ``forward_features``
    gives pool5's map: (N, 256, 6, 6) at 227x227, (N, 256, 5, 5) in d2l.
    """

    def __init__(self, num_classes: int = 1000, input_size: tuple[int, int, int] = (3, 227, 227),
                 conv1_padding: int = 0, dropout: float = 0.5, local_response_norm: bool = False,
                 two_towers: bool = False):
        super().__init__()
        self.input_size = input_size
        features = OrderedDict()
        channels = input_size[0]
        for index, (out_channels, kernel, stride, padding, split, pool) in enumerate(CONVS, 1):
            features[f"conv{index}"] = nn.Conv2d(
                channels, out_channels, kernel, stride,
                conv1_padding if padding is None else padding,
                groups=2 if split and two_towers else 1)
            features[f"relu{index}"] = nn.ReLU()
            if local_response_norm and index <= 2:
                # the paper's k=2, n=5, alpha=1e-4, beta=0.75; PyTorch divides alpha by n
                features[f"norm{index}"] = nn.LocalResponseNorm(5, alpha=5 * 1e-4, beta=0.75,
                                                                k=2.0)
            if pool:
                features[f"pool{index}"] = nn.MaxPool2d(3, stride=2)  # overlapping: 3 > 2
            channels = out_channels
        self.features = nn.Sequential(features)

        channels, height, width = sequential_output_shape(self.features.named_children(),
                                                          input_size)
        self.classifier = nn.Sequential(OrderedDict([
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(channels * height * width, 4096)), ("relu6", nn.ReLU()),
            ("dropout6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()),
            ("dropout7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]))


@register_model(family="alexnet", paper=PAPER, year=2012, input_size=(3, 227, 227),
                num_classes=1000, source=FROM_PAPER, fixed_head=True)
def alexnet(num_classes: int = 1000, in_channels: int | None = None, input_size=None,
            dropout: float = 0.5, local_response_norm: bool = False,
            two_towers: bool = False) -> AlexNet:
    """AlexNet as in the paper, in one tower: the 62,378,344-parameter network of the
    Chinese study notes on LeNet-5 and AlexNet.

    Krizhevsky et al. 2012, section 3 and Figure 2: conv1 96 11x11/4 (no padding), conv2 256 5x5,
    conv3 384, conv4 384, conv5 256 3x3, overlapping 3/2 max-pools after conv1, conv2 and conv5,
    fc6 9216 -> 4096, fc7 4096 -> 4096, fc8 -> 1000, ReLU throughout, dropout 0.5 on the outputs
    of fc6 and fc7 ("the first two fully-connected layers", section 4.2).
    Departures: 227x227 input, the size at which 11x11/4 without padding gives the paper's 55x55
    (the paper says 224); one tower: the paper splits conv2, conv4 and conv5 between two GPUs
    (``two_towers=True`` restores the split, 60,965,224 parameters); no local response
    normalization by default, as in the seed (whose table is what this variant reproduces) and
    torchvision: LRN has no parameters, and ``local_response_norm=True`` puts it back after the
    first two ReLUs. PyTorch's default init, not the paper's N(0, 0.01) weights with biases of 1
    in conv2, conv4, conv5 and the hidden fc layers.
    """
    return AlexNet(num_classes, resolve_input_size(in_channels, input_size, (3, 227, 227)),
                   conv1_padding=0, dropout=dropout, local_response_norm=local_response_norm,
                   two_towers=two_towers)


@register_model(family="alexnet", paper=PAPER, year=2012, input_size=(1, 224, 224),
                num_classes=10, source=FROM_D2L, fixed_head=True)
def alexnet_d2l(num_classes: int = 10, in_channels: int | None = None, input_size=None,
                dropout: float = 0.5) -> AlexNet:
    """d2l's AlexNet for Fashion-MNIST upsampled to 224x224: one channel, 10 classes.

    Krizhevsky et al. 2012's layers as Dive into Deep Learning builds them (fc6 6400 -> 4096).
    Departures: one input channel and 10 classes; conv1 padding 1 on 224x224 inputs (54x54 after
    conv1, 5x5 after pool5); one tower and no local response normalization; PyTorch's default
    init (d2l's recipe applies Xavier itself).
    """
    return AlexNet(num_classes, resolve_input_size(in_channels, input_size, (1, 224, 224)),
                   conv1_padding=1, dropout=dropout)
