"""Class activation maps and attributions (cnnzoo.show.cam): each method against a direct
computation, the default layer from the model's structure, faithfulness on a shipped model,
and ``cnnzoo show cam``."""

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.show.cam import attribute, cam_layer, deletion_curve, layer_gradients

pytest.importorskip("captum")


class PooledLinear(nn.Module):
    """features (a convolution) -> global average -> linear: the gradient of class k's score
    with respect to the maps is w[k, c] / (h w) at every position, so every CAM has a closed
    form."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


@pytest.fixture(scope="module")
def pooled():
    model = PooledLinear().eval()
    x = torch.randn(2, 1, 6, 6)
    with torch.no_grad():
        maps = model.features(x)
    return model, x, maps


def test_the_layer_methods_match_their_closed_forms(pooled):
    model, x, maps = pooled
    target = torch.tensor([0, 2])
    weights = model.fc.weight.detach()[target] / 36  # (N, C): the gradient at each position
    g = weights[:, :, None, None].expand_as(maps)
    expected = {
        "gradcam": (weights[:, :, None, None] * maps).sum(1).clamp_min(0),
        "layercam": (g.clamp_min(0) * maps).sum(1).clamp_min(0),
    }
    # Grad-CAM++, eq. 19: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), weights sum_ab alpha relu(g)
    alpha = g ** 2 / (2 * g ** 2 + maps.sum((2, 3), keepdim=True) * g ** 3)
    plus = (alpha * g.clamp_min(0)).sum((2, 3), keepdim=True)
    expected["gradcam++"] = (plus * maps).sum(1).clamp_min(0)
    for method, wanted in expected.items():
        got = attribute(model, x, target, method, layer="features")
        assert got.shape == (2, 6, 6)  # at the input's size (here the layer's own)
        torch.testing.assert_close(got, wanted, rtol=1e-4, atol=1e-6, msg=method)


def test_the_gradients_the_hand_methods_read_are_grad_cams(pooled):
    model, x, _ = pooled
    activations, gradients = layer_gradients(model, x, torch.tensor([1, 1]), "features")
    torch.testing.assert_close(gradients[:, :, 0, 0],
                               model.fc.weight.detach()[[1, 1]] / 36)
    mine = (gradients.mean((2, 3), keepdim=True) * activations).sum(1).clamp_min(0)
    torch.testing.assert_close(attribute(model, x, 1, "gradcam", layer="features"), mine)


def test_the_input_methods_match_direct_computations(pooled):
    model, x, _ = pooled
    x = x[:1]
    # saliency: |d score / d x|, the largest over channels
    inputs = x.clone().requires_grad_(True)
    model(inputs)[0, 2].backward()
    torch.testing.assert_close(attribute(model, x, 2, "saliency"), inputs.grad.abs().amax(1))
    # integrated gradients of a model linear in x: exactly (x - 0) * gradient
    linear = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    inputs = x.clone().requires_grad_(True)
    linear(inputs)[0, 1].backward()
    torch.testing.assert_close(attribute(linear, x, 1, "integrated-gradients"),
                               (x * inputs.grad).abs().sum(1), rtol=1e-4, atol=1e-6)
    # occlusion: each pixel's map is the mean score drop of the windows that cover it
    occluded = attribute(linear, x, 1, "occlusion")
    weights = linear[1].weight.detach()[1].reshape(6, 6)
    # the windows are 2x2 with stride 1 on a 6-pixel side; the drop of blacking out a window
    # is the sum of weight * pixel over it, and a pixel's value the mean over its windows
    contribution = weights * x[0, 0]
    drops = torch.zeros(6, 6)
    counts = torch.zeros(6, 6)
    for row in range(5):
        for column in range(5):
            drop = contribution[row:row + 2, column:column + 2].sum()
            drops[row:row + 2, column:column + 2] += drop
            counts[row:row + 2, column:column + 2] += 1
    torch.testing.assert_close(occluded[0], (drops / counts).clamp_min(0), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("name, layer", [
    ("lenet5", "features.tanh4"),  # c5's maps are 1x1: the stage before
    ("lenet5_d2l", "features.pool2"),
    ("resnet9_fmnist", "features.res3"),
    ("inception_mnist", "incep2"),  # a model without `features`: its own children
    ("residual_mnist", "rblock2"),
    ("googlenet_d2l", "features.b5"),
])
def test_the_default_layer_is_the_last_stage_with_maps_larger_than_1x1(name, layer):
    assert cam_layer(cnnzoo.get_model(name), cnnzoo.model_info(name).input_size) == layer


def test_deleting_the_ranked_pixels_lowers_the_true_class_more_than_random_ones():
    from cnnzoo.show.cam import black_input
    from cnnzoo.training.evaluation import preprocess, run_dataset
    from cnnzoo.training.rundir import load_source

    run = load_source("lenet5_d2l", "fashion-mnist")
    test = run_dataset(run)
    x, labels = preprocess(run, test.images[:48]), test.labels[:48]
    baseline = black_input(run)
    for method in ("gradcam", "occlusion", "saliency"):
        maps = attribute(run.model, x, labels, method, baseline=baseline)
        curve = deletion_curve(run.model, x, labels, maps, baseline=baseline)
        assert all(ranked < random - 0.02 for ranked, random in
                   zip(curve["ranked"], curve["random"])), (method, curve)


def test_deletion_of_nothing_random_or_ranked_alike_changes_nothing(pooled):
    model, x, _ = pooled
    labels = torch.tensor([0, 1])
    curve = deletion_curve(model, x, labels, torch.rand(2, 6, 6), fractions=(0.0,))
    assert curve["ranked"] == curve["random"] == [pytest.approx(curve["intact"])]


def test_show_cam_draws_shipped_weights_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "cam.png"
    assert main(["show", "cam", "lenet5_d2l", "--weights", "fashion-mnist", "--index", "0",
                 "1", "--method", "gradcam++", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert capsys.readouterr().out.strip() == str(out)
    cases = [
        (["--layer", "features.nothing"], "no layer named 'features.nothing'"),
        (["--target", "Sneakers"], "--target Sneakers is not a class"),
        (["--target", "12"], "--target 12 is not a class"),
        (["--method", "saliency", "--layer", "features.conv1"], "is read by gradcam"),
    ]
    for extra, message in cases:
        code = main(["show", "cam", "lenet5_d2l", "--weights", "fashion-mnist", "--index", "0",
                     "--out", str(tmp_path / "x.png"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (extra, err)
    assert main(["show", "cam", "lenet5_d2l", "--weights", "fashion-mnist",
                 "--out", str(tmp_path / "y.png")]) == 2
    assert "give image files" in capsys.readouterr().err
    with pytest.raises(CnnzooError, match="unknown method"):
        attribute(nn.Linear(2, 2), torch.zeros(1, 1, 1, 2), 0, "lime")
