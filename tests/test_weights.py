"""The trained weights that ship inside the package (cnnzoo.models.weights): they load, pass
their SHA-256 check, reach their recorded accuracy, and map images as their run did."""

import json
import shutil

import pytest
import torch

import cnnzoo
from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.models import weights as shipped
from cnnzoo.training.evaluation import preprocess, run_dataset
from cnnzoo.training.rundir import load_source

REQUIRED = {"lenet5", "lenet5_d2l", "lenet5_maxpool", "lenet5_bn_d2l", "lenet5_bn_scratch_d2l",
            "inception_mnist", "residual_mnist"}


def test_the_required_models_ship_weights_and_records():
    names = cnnzoo.list_models(weights=True)
    assert REQUIRED <= set(names)
    assert names == [name for name in cnnzoo.list_models() if name in names]
    for name in names:
        meta = cnnzoo.get_weights(name).meta
        test = meta["test_acc"]
        assert len(test["seeds"]) >= 3 and test["min"] <= test["mean"] <= test["max"]
        assert str(meta["seed"]) in test["seeds"]
        # the shipped seed is the one validation chose, never the test set
        assert meta["val_acc"]["seeds"][str(meta["seed"])] == meta["val_acc"]["max"]
        model = cnnzoo.get_model(name, weights="fashion-mnist")
        assert meta["parameters"] == sum(p.numel() for p in model.parameters())
        assert meta["file_size"] == (shipped.PRETRAINED / "fashion-mnist" /
                                     f"{name}.safetensors").stat().st_size
        assert f"--seed {meta['seed']}" in meta["command"] and meta["torch"]


@pytest.mark.parametrize("name", ["lenet5_d2l", "lenet5_bn_d2l"])
def test_shipped_weights_reach_their_recorded_accuracy_on_the_whole_test_set(name):
    meta = cnnzoo.get_weights(name).meta
    run = load_source(name, "fashion-mnist")
    accuracy = cnnzoo.evaluate(run, plot=False).accuracy
    recorded = meta["test_acc"]["seeds"][str(meta["seed"])]
    assert abs(accuracy - recorded) <= 0.002
    assert name != "lenet5_d2l" or accuracy >= 0.875  # near 0.89, the mark


def test_transforms_map_images_as_the_run_fed_its_test_images():
    weights = cnnzoo.get_weights("lenet5_bn_d2l")
    run = load_source("lenet5_bn_d2l", "fashion-mnist")
    images = run_dataset(run).images[:16]
    transform = weights.transforms()
    torch.testing.assert_close(transform(images), preprocess(run, images))
    torch.testing.assert_close(transform(images[0]), preprocess(run, images[:1])[0])
    with pytest.raises(CnnzooError, match="uint8"):
        transform(images.float())
    # and the model reads them: the same logits as the evaluation's
    model = weights.build()
    with torch.no_grad():
        assert model(transform(images)).argmax(1).tolist() == \
            run.model(preprocess(run, images)).argmax(1).tolist()


def test_a_tampered_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "pretrained"
    shutil.copytree(shipped.PRETRAINED, copy)
    monkeypatch.setattr(shipped, "PRETRAINED", copy)
    cnnzoo.get_model("lenet5_d2l", weights="fashion-mnist")  # the copy as shipped loads
    path = copy / "fashion-mnist" / "lenet5_d2l.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one bit of the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(CnnzooError, match="not the file its record describes"):
        cnnzoo.get_model("lenet5_d2l", weights="fashion-mnist")


def test_a_model_without_weights_says_which_have_them(capsys):
    with pytest.raises(CnnzooError, match="ships no fashion-mnist weights for vgg11.*"
                                          "lenet5_d2l"):
        cnnzoo.get_weights("vgg11")
    with pytest.raises(CnnzooError, match="ships weights for fashion-mnist"):
        cnnzoo.get_weights("lenet5_d2l", "imagenet")
    with pytest.raises(CnnzooError, match="weights must be True or False"):
        cnnzoo.list_models(weights="yes")
    assert main(["models", "--weights"]) == 0
    out = capsys.readouterr().out
    record = json.loads((shipped.PRETRAINED / "fashion-mnist" / "lenet5_d2l.json").read_text())
    assert f"{record['test_acc']['mean']:.4f}" in out and "lenet5_d2l" in out
    assert "vgg11" not in out
    assert main(["models", "vgg", "--weights"]) == 2
