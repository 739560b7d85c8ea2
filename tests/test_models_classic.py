"""LeNet, AlexNet, VGG and NiN against their sources: the papers' tables and formulas, and the
reference code of the seeds and d2l rebuilt here as plain ``nn.Sequential`` stacks; then d2l's
GoogLeNet, ResNet-18 and DenseNet and seed 004's two MNIST nets against their code.

Reference stacks get the zoo model's parameters copied over in order; the two must then compute
the same function (in training mode too where BatchNorm's batch statistics make its place show).
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cnnzoo
from cnnzoo.errors import CnnzooError, InputTooSmallError
from cnnzoo.models.lenet import PartialConv2d, Subsampling, lenet5_connections
from fixtures.weights import assert_input_matters, informative


def count(model):
    return sum(p.numel() for p in model.parameters())


def assert_same_function(model, reference, input_size, train=False):
    informative(model)  # BatchNorm's statistics copied too, so its place shows in eval mode
    ours = list(model.parameters()) + list(model.buffers())
    theirs = list(reference.parameters()) + list(reference.buffers())
    assert [p.shape for p in ours] == [p.shape for p in theirs]
    with torch.no_grad():
        for src, dst in zip(ours, theirs):
            dst.copy_(src)
    model.eval(), reference.eval()
    x = torch.rand(3, *input_size)
    with torch.no_grad():
        expected = reference(x)
        assert_input_matters(expected)
        torch.testing.assert_close(model(x), expected)
        if train:  # normalised by the batch, a BatchNorm on the other side of a ReLU differs
            model.train(), reference.train()
            torch.testing.assert_close(model(x), reference(x))


# --- LeNet-5, LeCun et al. 1998 ---------------------------------------------------------------

# Table I of the paper as printed: a row per S2 map, a column per C3 map, X = connected
TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def test_c3_wiring_is_table_i():
    c3 = cnnzoo.get_model("lenet5").features.c3
    rows = TABLE_I.split()
    for s2_map in range(6):
        for c3_map in range(16):
            # does C3 map c3_map change when S2 map s2_map does?
            x = torch.zeros(1, 6, 14, 14)
            y0 = c3(x)[0, c3_map]
            x[0, s2_map] = torch.rand(14, 14) + 1
            changed = not torch.equal(c3(x)[0, c3_map], y0)
            assert changed == (rows[s2_map][c3_map] == "X"), (s2_map, c3_map)
    # the paper: 1,516 trainable parameters, 151,600 connections
    assert count(c3) == 1_516


def test_partial_conv_is_a_masked_dense_conv():
    torch.manual_seed(0)
    table = ((0, 2), (1,), (0, 1, 2))
    partial = PartialConv2d(3, table, 3, padding=1)
    dense = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        dense.weight.zero_()
        for k, (out, source) in enumerate((o, s) for o, sources in enumerate(table)
                                          for s in sources):
            dense.weight[out, source] = partial.weight[k, 0]
        dense.bias.copy_(partial.bias)
    x = torch.randn(2, 3, 7, 7)
    torch.testing.assert_close(partial(x), dense(x))
    assert count(partial) == (2 + 1 + 3) * 9 + 3
    with pytest.raises(ValueError):
        PartialConv2d(2, table, 3)


def test_subsampling_is_a_weighted_window_sum_plus_bias():
    # seed 003's worked example: the 2x2 windows of 1..16 average 3.5, 5.5, 11.5, 13.5
    layer = Subsampling(1)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.bias.fill_(-1.0)
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    expected = 0.5 * 4 * torch.tensor([[3.5, 5.5], [11.5, 13.5]]) - 1.0
    torch.testing.assert_close(layer(x)[0, 0], expected)
    assert count(layer) == 2


def test_lenet5_squashing_and_rbf_output():
    model = cnnzoo.get_model("lenet5").eval()
    squash = model.features.tanh1
    # Appendix A: A = 1.7159 makes f(1) = 1 and f(-1) = -1
    torch.testing.assert_close(squash(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]),
                               atol=1e-4, rtol=0)
    rbf = model.classifier.output
    assert "classifier.output.prototypes" in dict(model.named_buffers())
    assert not any("prototypes" in name for name, _ in model.named_parameters())
    codes = rbf.prototypes
    assert codes.shape == (10, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert torch.cdist(codes, codes).add(torch.eye(10) * 1e3).min() > 12  # well apart
    # the logits are minus the squared Euclidean distances, so the nearest code wins
    x = codes[[3, 7]] * 0.9
    logits = rbf(x)
    torch.testing.assert_close(logits, -torch.cdist(x, codes).pow(2))
    assert logits.argmax(1).tolist() == [3, 7]


def test_lenet5_connections_follow_the_input_size():
    # section II.B at 32x32: C1 122,304 + S2 5,880 + C3 151,600 + S4 2,000 + C5 48,120
    # + F6 10,164 + output 840
    assert lenet5_connections(cnnzoo.get_model("lenet5")) == 340_908
    # at 36x36 every map grows by 4 (conv) or 2 (subsampled) and C5 leaves 2x2
    expected = (26 * 6 * 32 * 32 + 5 * 6 * 16 * 16 + 1_516 * 12 * 12 + 5 * 16 * 6 * 6
                + 48_120 * 2 * 2 + (480 * 84 + 84) + 840)
    assert lenet5_connections(cnnzoo.get_model("lenet5", input_size=36)) == expected


def test_lenet5_input_size_and_classes():
    with pytest.raises(InputTooSmallError, match="c5"):
        cnnzoo.get_model("lenet5", input_size=28)
    model = cnnzoo.get_model("lenet5", input_size=(3, 36, 36), num_classes=4).eval()
    assert model(torch.rand(2, 3, 36, 36)).shape == (2, 4)
    with pytest.raises(CnnzooError, match="127"):
        cnnzoo.get_model("lenet5", num_classes=128)


# --- the textbook LeNets: seed 003 (d2l), seed 001, d2l's BN-LeNet ----------------------------

def test_lenet5_d2l_is_seed_003():
    reference = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))
    assert_same_function(cnnzoo.get_model("lenet5_d2l"), reference, (1, 28, 28))


def test_lenet5_maxpool_is_seed_001():
    reference = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))
    assert_same_function(cnnzoo.get_model("lenet5_maxpool"), reference, (1, 28, 28))


def test_lenet5_bn_d2l_is_d2l():
    reference = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))
    assert_same_function(cnnzoo.get_model("lenet5_bn_d2l"), reference, (1, 28, 28))


# --- AlexNet ----------------------------------------------------------------------------------

def test_alexnet_layers_are_seed_000():
    # seed 000's torchinfo table, layer by layer, and its output shapes at 227x227
    model = cnnzoo.get_model("alexnet")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [count(m) for m in layers] == [34_944, 614_656, 885_120, 1_327_488, 884_992,
                                          37_752_832, 16_781_312, 4_097_000]
    with torch.no_grad():
        assert model.forward_features(torch.rand(1, 3, 227, 227)).shape == (1, 256, 6, 6)


def test_alexnet_dropout_on_the_two_hidden_fc_layers():
    # section 4.2: dropout "in the first two fully-connected layers", zeroing their outputs
    kinds = [type(m) for m in cnnzoo.get_model("alexnet").classifier]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout,
                     nn.Linear]


def test_alexnet_two_towers_is_the_papers_count():
    # the paper's two-GPU split of conv2, conv4, conv5 (as in Caffe's bvlc_alexnet): 60,965,224
    assert count(cnnzoo.get_model("alexnet", two_towers=True)) == 60_965_224


def test_alexnet_local_response_norm_is_the_papers_formula():
    # section 3.3: b_i = a_i / (k + alpha * sum_{j=i-n/2}^{i+n/2} a_j^2)^beta,
    # k = 2, n = 5, alpha = 1e-4, beta = 0.75
    model = cnnzoo.get_model("alexnet", local_response_norm=True)
    norm = model.features.norm1
    a = torch.rand(2, 8, 3, 3) * 30
    expected = torch.empty_like(a)
    for i in range(8):
        window = a[:, max(0, i - 2):min(8, i + 3)].pow(2).sum(1)
        expected[:, i] = a[:, i] / (2 + 1e-4 * window) ** 0.75
    torch.testing.assert_close(norm(a), expected)
    assert count(model) == 62_378_344
    names = list(dict(model.features.named_children()))
    assert names[:4] == ["conv1", "relu1", "norm1", "pool1"]


def test_alexnet_d2l_is_d2l():
    reference = nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))
    assert_same_function(cnnzoo.get_model("alexnet_d2l"), reference, (1, 224, 224))


# --- VGG and NiN ------------------------------------------------------------------------------

def test_vgg16_has_torchvisions_state_dict_keys():
    # the keys of torchvision's published vgg16 checkpoint: conv layers at these indices
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    model = cnnzoo.get_model("vgg16")
    assert list(model.state_dict()) == expected
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d) and model.avgpool.output_size == (7, 7)


def test_vgg_batch_norm_counts_are_torchvisions():
    # torchvision's documented counts for vgg11_bn and vgg16_bn
    assert count(cnnzoo.get_model("vgg11", batch_norm=True)) == 132_868_840
    assert count(cnnzoo.get_model("vgg16", batch_norm=True)) == 138_365_992


def d2l_vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))


def test_vgg11_d2l_is_seed_001():
    conv_arch = ((1, 1, 16), (1, 16, 32), (2, 32, 64), (2, 64, 128), (2, 128, 128))
    reference = nn.Sequential(
        *(d2l_vgg_block(*arch) for arch in conv_arch), nn.Flatten(),
        nn.Linear(128 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 10))
    assert_same_function(cnnzoo.get_model("vgg11_d2l"), reference, (1, 224, 224))
    small = cnnzoo.get_model("vgg11_d2l", input_size=64).eval()
    assert small(torch.rand(1, 1, 64, 64)).shape == (1, 10)
    with pytest.raises(InputTooSmallError):
        cnnzoo.get_model("vgg11_d2l", input_size=16)


def d2l_nin_block(in_channels, out_channels, kernel_size, stride, padding):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
                         nn.ReLU(), nn.Conv2d(out_channels, out_channels, kernel_size=1),
                         nn.ReLU(), nn.Conv2d(out_channels, out_channels, kernel_size=1),
                         nn.ReLU())


def test_nin_d2l_is_seed_001():
    reference = nn.Sequential(
        d2l_nin_block(1, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(kernel_size=3, stride=2),
        d2l_nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(kernel_size=3, stride=2),
        d2l_nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Dropout(0.5),
        d2l_nin_block(384, 10, kernel_size=3, stride=1, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert_same_function(cnnzoo.get_model("nin_d2l"), reference, (1, 224, 224))


# --- d2l's GoogLeNet, ResNet-18 and DenseNet; seed 004's MNIST nets -----------------------------

class D2LInception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def d2l_pool():
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


def test_googlenet_d2l_is_d2l():
    reference = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), d2l_pool(),
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(), d2l_pool(),
        D2LInception(192, 64, (96, 128), (16, 32), 32),
        D2LInception(256, 128, (128, 192), (32, 96), 64), d2l_pool(),
        D2LInception(480, 192, (96, 208), (16, 48), 64),
        D2LInception(512, 160, (112, 224), (24, 64), 64),
        D2LInception(512, 128, (128, 256), (24, 64), 64),
        D2LInception(512, 112, (144, 288), (32, 64), 64),
        D2LInception(528, 256, (160, 320), (32, 128), 128), d2l_pool(),
        D2LInception(832, 256, (160, 320), (32, 128), 128),
        D2LInception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(1024, 10))
    assert_same_function(cnnzoo.get_model("googlenet_d2l"), reference, (1, 96, 96))


class D2LResidual(nn.Module):
    def __init__(self, in_channels, channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv3 = (nn.Conv2d(in_channels, channels, kernel_size=1, stride=strides)
                      if use_1x1conv else None)
        self.bn1 = nn.BatchNorm2d(channels)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.conv3(x) if self.conv3 else x))


def d2l_stem():
    return [nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            d2l_pool()]


def test_resnet18_d2l_is_d2l():
    blocks = [D2LResidual(64, 64), D2LResidual(64, 64)]
    for in_channels, channels in ((64, 128), (128, 256), (256, 512)):
        blocks += [D2LResidual(in_channels, channels, use_1x1conv=True, strides=2),
                   D2LResidual(channels, channels)]
    reference = nn.Sequential(*d2l_stem(), *blocks, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                              nn.Linear(512, 10))
    assert_same_function(cnnzoo.get_model("resnet18_d2l"), reference, (1, 96, 96), train=True)


class D2LDenseBlock(nn.Module):
    def __init__(self, num_convs, in_channels, growth):
        super().__init__()
        self.net = nn.Sequential(*(
            nn.Sequential(nn.BatchNorm2d(in_channels + i * growth), nn.ReLU(),
                          nn.Conv2d(in_channels + i * growth, growth, kernel_size=3, padding=1))
            for i in range(num_convs)))

    def forward(self, x):
        for block in self.net:
            x = torch.cat((x, block(x)), dim=1)
        return x


def test_densenet_d2l_is_d2l():
    # growth 32, four blocks of four, transitions halving the channels: 64 -> ... -> 248
    layers, channels = d2l_stem(), 64
    for index in range(4):
        layers.append(D2LDenseBlock(4, channels, 32))
        channels += 4 * 32
        if index < 3:
            layers += [nn.BatchNorm2d(channels), nn.ReLU(),
                       nn.Conv2d(channels, channels // 2, kernel_size=1),
                       nn.AvgPool2d(kernel_size=2, stride=2)]
            channels //= 2
    assert channels == 248
    reference = nn.Sequential(*layers, nn.BatchNorm2d(channels), nn.ReLU(),
                              nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels, 10))
    assert_same_function(cnnzoo.get_model("densenet_d2l"), reference, (1, 96, 96), train=True)


class Seed004InceptionA(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_2 = nn.Conv2d(16, 24, kernel_size=5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch3x3_2 = nn.Conv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, kernel_size=3, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x):
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3, branch_pool], dim=1)


def test_inception_mnist_is_seed_004():
    # the seed's forward: relu(mp(conv(x))) before each InceptionA, fc 1408 -> 10
    reference = nn.Sequential(
        nn.Conv2d(1, 10, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(), Seed004InceptionA(10),
        nn.Conv2d(88, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(), Seed004InceptionA(20),
        nn.Flatten(), nn.Linear(1408, 10))
    assert_same_function(cnnzoo.get_model("inception_mnist"), reference, (1, 28, 28))


class Seed004ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


def test_residual_mnist_is_seed_004():
    # the course's code, which seed 004 names but leaves out: mp(relu(conv(x))), fc 512 -> 10
    reference = nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2), Seed004ResidualBlock(16),
        nn.Conv2d(16, 32, kernel_size=5), nn.ReLU(), nn.MaxPool2d(2), Seed004ResidualBlock(32),
        nn.Flatten(), nn.Linear(512, 10))
    assert_same_function(cnnzoo.get_model("residual_mnist"), reference, (1, 28, 28))
