"""``cnnzoo show``: every picture is written, draws what it claims to, and bad arguments give
one-line errors.

Expectations come from outside the drawing code: kernels and feature maps from the model's own
tensors and ``torch.nn.functional``; LeNet's shapes from d2l's printout (section 7.6); receptive
fields by hand and from ``cnnzoo.summary``'s arithmetic; the vanishing gradient from the
sigmoid's slope (at most 1/4 per layer).
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from cnnzoo.cli import main
from conftest import train_tiny_run
from cnnzoo.errors import CnnzooError
from cnnzoo.inspect.shapes import build_for_input
from cnnzoo.show import (compare_stacks, draw_data, draw_features, draw_filters,
                         draw_predictions, layer_boxes, layer_gradient_norms, receptive_region)
from cnnzoo.show.limits import MAX_COUNT, MAX_DEPTH, MAX_PER_CLASS
from cnnzoo.training import evaluate, load_run


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, one_thread):
    return train_tiny_run(tmp_path_factory.mktemp("show") / "run")


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        low, high = image.convert("L").getextrema()
        assert high - low > 100, "the picture is blank"
        return image.size


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def written(capsys, *argv) -> tuple[int, int]:
    """Run a show command that must succeed; the path it prints is a PNG: its (width, height)."""
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    path = Path(out.strip())
    assert path.stat().st_size > 0
    return png_size(path)


def one_line_error(capsys, *argv) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: error: "), err
    return lines[0]


def image_data(fig, index: int = 0) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(fig.axes[index].images[0].get_array(), dtype=float),
                        np.nan)


def gray_folder(root: Path, names=("cat", "dog"), step: int = 60) -> Path:
    """A folder data set under ``root``: five 12x12 gray images per class, each of its own
    shade (class ``i``'s image ``j`` is ``step * i + 30 * j``)."""
    for label, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for index in range(5):
            Image.new("L", (12, 12), step * label + 30 * index).save(root / name / f"{index}.png")
    return root


# data

def test_show_data_writes_one_row_per_class_wider_with_more_per_class(capsys, tmp_path):
    narrow = written(capsys, "show", "data", "synthetic", "--per-class", 3,
                     "--out", tmp_path / "a.png")
    wide = written(capsys, "show", "data", "synthetic", "--per-class", 12,
                   "--out", tmp_path / "b.png")
    assert wide[0] > narrow[0] * 2 and abs(wide[1] - narrow[1]) < 0.1 * narrow[1]
    assert 200 < narrow[1] < 1500  # ten rows of 28-pixel images


def test_data_grid_shows_images_of_each_rows_class():
    from cnnzoo.data import load_dataset

    dataset = load_dataset("synthetic", split="test")
    fig = draw_data(dataset, per_class=3)
    mosaic = image_data(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(dataset.classes)
    pixels = dataset.images[:, 0].float().numpy() / 255
    for row in range(dataset.num_classes):
        for column in range(3):
            cell = mosaic[row * 30:row * 30 + 28, column * 30:column * 30 + 28]  # gap 28//14
            match = np.abs(pixels - cell).reshape(len(pixels), -1).max(axis=1) < 1e-6
            assert match.any() and set(dataset.labels[match].tolist()) == {row}


def test_show_data_errors(capsys):
    assert "did you mean" in one_line_error(capsys, "show", "data", "synthtic")
    with pytest.raises(SystemExit) as stop:  # argparse's own usage error
        main(["show", "data", "synthetic", "--per-class", "0"])
    assert stop.value.code == 2 and "--per-class" in capsys.readouterr().err


def test_show_data_is_as_wide_as_the_images_a_class_has(capsys, tmp_path):
    # four training images per class (a fifth of five held out): 20 asked for draws four
    gray_folder(tmp_path / "pics", step=40)
    sizes = {k: written(capsys, "show", "data", "folder", "--data-dir", tmp_path / "pics",
                        "--per-class", k, "--out", tmp_path / f"{k}.png") for k in (3, 4, 20)}
    assert sizes[20] == sizes[4] and sizes[3][0] < sizes[4][0]


# filters

def test_show_filters_draws_the_first_layers_kernels(capsys, run_dir):
    width, height = written(capsys, "show", "filters", run_dir)
    assert (run_dir / "filters-features.conv1.png").exists()
    assert 250 < width < 1500 and 100 < height < 1000
    run = load_run(run_dir)
    weight = run.model.features.conv1.weight.detach().numpy()  # (6, 1, 5, 5)
    mosaic = image_data(draw_filters(run.model))
    for k in range(6):  # one row of six 5x5 kernels, one pixel apart
        np.testing.assert_allclose(mosaic[:, k * 6:k * 6 + 5], weight[k, 0], rtol=1e-6)
    assert mosaic.shape == (5, 35)


def test_filters_of_a_deeper_layer_are_output_rows_by_input_columns(run_dir):
    run = load_run(run_dir)
    weight = run.model.features.conv2.weight.detach().numpy()  # (16, 6, 5, 5)
    mosaic = image_data(draw_filters(run.model, "features.conv2"))
    assert mosaic.shape == (16 * 6 - 1, 6 * 6 - 1)
    np.testing.assert_allclose(mosaic[6 * 3:6 * 3 + 5, 6 * 4:6 * 4 + 5], weight[3, 4],
                               rtol=1e-6)


def test_filters_errors_list_the_convolution_layers(capsys, run_dir, tmp_path):
    line = one_line_error(capsys, "show", "filters", run_dir, "--layer", "conv9")
    assert "features.conv1, features.conv2" in line
    line = one_line_error(capsys, "show", "filters", run_dir, "--layer", "classifier.fc1")
    assert "features.conv1" in line
    assert "not a run directory" in one_line_error(capsys, "show", "filters", tmp_path / "no")


# features

def test_show_features_by_index_and_from_an_image_file(capsys, run_dir, tmp_path):
    width, height = written(capsys, "show", "features", run_dir, "--index", 3)
    assert (run_dir / "features-test3.png").exists()
    assert height > width * 0.6  # input and four stages, one row each
    picture = tmp_path / "shoe.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30), dtype=np.uint8)
                    ).save(picture)
    written(capsys, "show", "features", run_dir, picture, "--out", tmp_path / "f.png")
    one_layer = written(capsys, "show", "features", run_dir, "--index", 0, "--layer",
                        "features.conv2", "--out", tmp_path / "g.png")
    assert one_layer[0] > 300


def test_feature_maps_are_the_layers_outputs(run_dir):
    from cnnzoo.show.features import run_input

    run = load_run(run_dir)
    x, label, _ = run_input(run, index=0)
    fig = draw_features(run.model, x, classes=run.classes, true_label=label)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    # d2l 7.6: conv 6x28x28, pool 6x14x14, conv 16x10x10, pool 16x5x5
    for shape in ("6x28x28", "6x14x14", "16x10x10", "16x5x5"):
        assert any(shape in title for title in titles), shape
    conv1 = run.model.features.conv1
    with torch.no_grad():
        expected = torch.sigmoid(F.conv2d(x, conv1.weight, conv1.bias, padding=2))[0].numpy()
    row = image_data(fig, 1)  # the first stage: conv1 and its sigmoid, six maps 28 wide
    for k in range(6):
        cell = row[:, k * 30:k * 30 + 28]  # two pixels between maps
        span = expected[k].max() - expected[k].min()
        np.testing.assert_allclose(cell, (expected[k] - expected[k].min()) / span, atol=1e-5)
    assert f"true {run.classes[label]}" in titles[0]



def test_features_title_the_prediction_eval_makes_for_a_run_that_evaluates_flipped(run_dir,
                                                                                   tmp_path):
    import json
    import shutil

    from cnnzoo.training.evaluation import run_dataset
    from cnnzoo.show.features import run_features
    from cnnzoo.training.checkpoint import save_weights
    from cnnzoo.training.evaluation import preprocess, run_logits
    from cnnzoo.training.rundir import build_model

    # the run made to evaluate each image with its mirror image, and given weights large
    # enough (the tiny run's own predict one class for every image) that for some test images
    # the mirror image changes the prediction
    flipped = Path(shutil.copytree(run_dir, tmp_path / "flipped"))
    config = json.loads((flipped / "config.json").read_text())
    config["recipe"]["eval_flip"] = True
    (flipped / "config.json").write_text(json.dumps(config))
    for seed in range(10):
        model = build_model(config)
        torch.manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0, 1)
        save_weights(flipped / "model.safetensors", model)
        run = load_run(flipped)
        x = preprocess(run, run_dataset(run).images)
        with torch.no_grad():
            unflipped = run.model(x).argmax(dim=1)
        evaluated = run_logits(run, x).argmax(dim=1)  # what eval and predict compute
        differ = (unflipped != evaluated).nonzero().flatten().tolist()
        if differ:
            break
    assert differ, "no test image whose mirror image changes the prediction"
    for index in differ[:2]:
        fig, _ = run_features(run, index=index)
        heading = fig.axes[0].get_title(loc="left")
        assert f"predicted {run.classes[evaluated[index]]} (" in heading, heading

def test_features_errors(capsys, run_dir, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert "not a readable image" in one_line_error(capsys, "show", "features", run_dir, text)
    assert "no such file" in one_line_error(capsys, "show", "features", run_dir,
                                            tmp_path / "missing.png")
    assert "not both or neither" in one_line_error(capsys, "show", "features", run_dir)
    assert "outside the test set" in one_line_error(capsys, "show", "features", run_dir,
                                                    "--index", 10_000)
    line = one_line_error(capsys, "show", "features", run_dir, "--index", 0, "--layer", "nope")
    assert "features.conv1" in line and "features.pool2" in line


# predictions

def test_show_predictions_writes_a_grid(capsys, run_dir):
    width, height = written(capsys, "show", "predictions", run_dir, "--count", 5)
    assert (run_dir / "predictions.png").exists()
    assert width > 2 * height  # one row of five
    width, height = written(capsys, "show", "predictions", run_dir, "--count", 16)
    assert height > width / 4  # two rows of eight


def test_predictions_mark_the_mistakes():
    images = torch.zeros(3, 1, 8, 8, dtype=torch.uint8)
    fig = draw_predictions(images, [0, 1, 2], [0, 2, 2], [0.9, 0.6, 0.8], ["a", "b", "c"])
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0].startswith("a 90%") and "true: a" in titles[0]
    assert titles[1].startswith("wrong: c 60%") and "true: b" in titles[1]
    widths = [ax.spines["top"].get_linewidth() for ax in fig.axes[:3]]
    assert widths[1] > widths[0] and widths[0] == widths[2]
    assert "2 of 3 right, 1 wrong" in fig._suptitle.get_text()


def test_predicted_labels_agree_with_evaluate(run_dir):
    from cnnzoo.training.evaluation import run_dataset
    from cnnzoo.show.predictions import predict_images

    run = load_run(run_dir)
    # the pictures draw from the whole test split; evaluate takes the run's subset of it
    dataset = run_dataset(run).subset(run.config["test_subset"], seed=run.config["seed"])
    predicted, confidences = predict_images(run, dataset.images)
    accuracy = np.mean(np.array(predicted) == dataset.labels.numpy())
    assert accuracy == pytest.approx(evaluate(run_dir, device="cpu", plot=False).accuracy)
    assert all(1 / len(run.classes) <= c <= 1 for c in confidences)


# receptive field

def test_show_receptive_field_of_a_model_name_and_a_run(capsys, run_dir, tmp_path):
    width, height = written(capsys, "show", "receptive-field", "lenet5_d2l", "--layer",
                            "features.conv2", "--out", tmp_path / "rf.png")
    assert width > 1.3 * height  # the image and the effective field side by side
    written(capsys, "show", "receptive-field", run_dir, "--layer", "features.pool1",
            "--unit", "0,0")
    assert (run_dir / "receptive-field-features.pool1.png").exists()


def test_receptive_region_by_hand_for_lenet():
    model = build_for_input("lenet5_d2l")
    # conv2's unit (5, 5) sees pool1 5..9, so conv1 10..19, so input 10-2..19+2 (padding 2)
    centre = receptive_region(model, (1, 28, 28), "features.conv2", (5, 5))
    assert (centre.top, centre.bottom, centre.left, centre.right) == (8, 21, 8, 21)
    assert centre.mask.sum() == 14 * 14
    corner = receptive_region(model, (1, 28, 28), "features.conv2", (0, 0))
    assert (corner.top, corner.bottom, corner.left, corner.right) == (0, 11, 0, 11)


@pytest.mark.parametrize("name, layer", [
    ("lenet5_d2l", "features.pool2"),
    ("lenet5_maxpool", "features.pool2"),  # through max pooling
    ("inception_mnist", "incep1"),  # the widest of four branches
    ("residual_mnist", "rblock1"),  # a block with a shortcut
    ("residual_mnist", "conv2"),
])
def test_receptive_region_matches_the_summarys_arithmetic(name, layer):
    from cnnzoo import model_info, summary

    size = model_info(name).input_size
    model = build_for_input(name, size)
    field = [row.receptive_field for row in summary(model, input_size=(1, *size), depth=9).layers
             if row.name == layer][-1]
    region = receptive_region(model, size, layer)  # the centre unit, whose field fits inside
    assert region.size == tuple(field)
    assert region.mask.sum() == field[0] * field[1]  # a full rectangle


def test_receptive_field_errors(capsys):
    line = one_line_error(capsys, "show", "receptive-field", "lenet5_d2l", "--layer", "fc9")
    assert "features.conv1" in line
    line = one_line_error(capsys, "show", "receptive-field", "lenet5_d2l", "--layer",
                          "classifier.fc1")
    assert "feature maps" in line  # a linear layer has no map to take a unit from
    assert "outside" in one_line_error(capsys, "show", "receptive-field", "lenet5_d2l",
                                       "--layer", "features.conv2", "--unit", "10,0")
    assert "ROW,COL" in one_line_error(capsys, "show", "receptive-field", "lenet5_d2l",
                                       "--layer", "features.conv2", "--unit", "5")
    assert "unknown model" in one_line_error(capsys, "show", "receptive-field", "lenet9",
                                             "--layer", "x").lower()


def test_receptive_field_of_a_run_refuses_data(capsys, run_dir, tmp_path):
    # a run directory shows its own test image; --data (for a model name) would be ignored
    line = one_line_error(capsys, "show", "receptive-field", run_dir, "--layer", "features.pool1",
                          "--data", "mnist", "--out", tmp_path / "rf.png")
    assert "--data mnist" in line and "model name" in line
    assert not (tmp_path / "rf.png").exists()


# gradients

def test_show_gradients(capsys, tmp_path):
    width, height = written(capsys, "show", "gradients", "--depth", 6, "--out", tmp_path / "g.png")
    assert width > height
    written(capsys, "show", "gradients", "lenet5_d2l", "--out", tmp_path / "lenet.png")
    assert "unknown model" in one_line_error(capsys, "show", "gradients", "lenet9").lower()


def test_show_gradients_of_a_model_refuses_depth(capsys, tmp_path):
    # --depth sets the compared stacks; a named model has its own layers, so it is refused
    line = one_line_error(capsys, "show", "gradients", "lenet5_d2l", "--depth", 5,
                          "--out", tmp_path / "g.png")
    assert "--depth 5" in line and "lenet5_d2l" in line
    assert not (tmp_path / "g.png").exists()


def test_plain_sigmoid_stacks_lose_the_gradient_and_residual_ones_keep_it():
    curves = compare_stacks(depth=20)
    assert all(len(norms) == 22 for norms in curves.values())  # stem, 20 layers, classifier

    def first_over_last(key):
        norms = [value for _, value in curves[key]]
        return norms[0] / norms[-1]

    # the sigmoid's slope is at most 1/4: twenty layers shrink the gradient by far more than 1e6
    assert first_over_last("plain, sigmoid") < 1e-6
    assert first_over_last("residual, sigmoid") > 1e-3
    assert first_over_last("plain, ReLU") > 1e-3
    assert first_over_last("residual, ReLU") > 1e-2


def test_layer_gradient_norms_are_the_weight_gradients():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
                                torch.nn.Linear(2 * 4 * 4, 3))
    x, y = torch.rand(4, 1, 6, 6), torch.tensor([0, 1, 2, 0])
    norms = layer_gradient_norms(model, x, y)
    F.cross_entropy(model(x), y).backward()
    assert [name for name, _ in norms] == ["0.weight", "2.weight"]
    assert norms[0][1] == pytest.approx(float(model[0].weight.grad.norm()))
    assert norms[1][1] == pytest.approx(float(model[2].weight.grad.norm()))


# architecture

def test_show_architecture(capsys, tmp_path):
    width, height = written(capsys, "show", "architecture", "lenet5_d2l", "--out",
                            tmp_path / "a.png")
    deep = written(capsys, "show", "architecture", "resnet18_d2l", "--out", tmp_path / "r.png")
    assert deep[1] > height  # more boxes, a taller picture
    assert "unknown model" in one_line_error(capsys, "show", "architecture", "lenet9").lower()
    assert "--input-size" in one_line_error(capsys, "show", "architecture", "lenet5_d2l",
                                            "--input-size", "1,28")


def test_lenet_boxes_follow_d2ls_shapes():
    from cnnzoo import trace_shapes

    model = build_for_input("lenet5_d2l")
    boxes = layer_boxes(trace_shapes(model, (1, 28, 28)))
    # d2l 7.6's printout: each layer's output shape
    assert [b.output_shape for b in boxes] == [(6, 28, 28), (6, 14, 14), (16, 10, 10),
                                               (16, 5, 5), (400,), (120,), (84,), (10,)]
    assert [b.kind for b in boxes] == ["conv", "pool", "conv", "pool", "other", "linear",
                                       "linear", "linear"]
    assert boxes[0].title.endswith("+ Sigmoid") and boxes[0].group == "features"


def test_blocks_with_shortcuts_stay_closed_unless_a_depth_is_asked():
    from cnnzoo import trace_shapes

    rows = trace_shapes(build_for_input("resnet18_d2l"), (1, 96, 96))
    closed = layer_boxes(rows)
    assert sum(b.kind == "block" for b in closed) == 8  # two residual blocks in each of 4 stages
    opened = layer_boxes(rows, depth=4)
    assert not any(b.kind == "block" for b in opened) and len(opened) > len(closed)


def test_pictures_of_a_run_whose_data_moved_read_it_from_data_dir(capsys, tmp_path):
    from cnnzoo.training import train

    gray_folder(tmp_path / "pics")
    run = tmp_path / "run"
    train("lenet5_d2l", data="folder", data_dir=str(tmp_path / "pics"), epochs=1, out=run,
          device="cpu")
    (tmp_path / "pics").rename(tmp_path / "moved")
    for picture in (("features", run, "--index", 1), ("predictions", run),
                    ("receptive-field", run, "--layer", "features.conv1")):
        assert "does not exist" in one_line_error(capsys, "show", *picture)
        written(capsys, "show", *picture, "--data-dir", tmp_path / "moved")


# what every picture shares

def test_counts_past_the_limits_are_one_line_errors_named_in_the_help(capsys, run_dir):
    for argv, limit in ((("show", "data", "synthetic", "--per-class"), MAX_PER_CLASS),
                        (("show", "predictions", run_dir, "--count"), MAX_COUNT),
                        (("show", "gradients", "--depth"), MAX_DEPTH)):
        line = one_line_error(capsys, *argv, limit + 1)
        assert f"{argv[-1]} {limit + 1}: give 1 to {limit}" in line
        with pytest.raises(SystemExit):
            main([str(a) for a in argv[:2]] + ["--help"])
        assert f"at most {limit}" in capsys.readouterr().out


PICTURES = [("data", "synthetic"), ("filters", "RUN"), ("features", "RUN", "--index", 0),
            ("predictions", "RUN"), ("receptive-field", "lenet5_d2l", "--layer", "features.conv1"),
            ("gradients", "--depth", 2), ("architecture", "lenet5_d2l")]


@pytest.mark.parametrize("picture", PICTURES, ids=[p[0] for p in PICTURES])
def test_every_picture_refuses_an_out_it_cannot_write_before_drawing(capsys, run_dir, tmp_path,
                                                                     picture):
    argv = ["show"] + [run_dir if a == "RUN" else a for a in picture]
    for name in ("picture.txt", "picture.gif", "picture"):
        line = one_line_error(capsys, *argv, "--out", tmp_path / name)
        assert f"--out {tmp_path / name}: end the file name in .png, .svg, .pdf or .jpg" in line
    line = one_line_error(capsys, *argv, "--out", tmp_path)
    assert line.endswith(f"--out {tmp_path} is a directory; give the name of a file to write")
    line = one_line_error(capsys, *argv, "--out", tmp_path / "missing" / "picture.png")
    assert f"there is no folder {tmp_path / 'missing'}" in line
    assert list(tmp_path.iterdir()) == []


def test_a_picture_is_written_in_the_format_its_name_ends_in(capsys, tmp_path):
    signatures = {"a.png": b"\x89PNG", "a.svg": b"<?xml", "a.pdf": b"%PDF", "a.jpg": b"\xff\xd8",
                  "a.JPEG": b"\xff\xd8"}
    for name, signature in signatures.items():
        code, out, err = run_cli(capsys, "show", "data", "synthetic", "--per-class", 2,
                                 "--out", tmp_path / name)
        assert code == 0 and out.strip() == str(tmp_path / name), err
        assert (tmp_path / name).read_bytes().startswith(signature), name
    with Image.open(tmp_path / "a.jpg") as image:
        assert image.format == "JPEG" and image.size == png_size(tmp_path / "a.png")


def test_show_without_a_picture_names_the_pictures_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit:  # argparse's way out, as for any usage error
        main(["show"])
    out, err = capsys.readouterr()
    assert exit.value.code == 2 and out == ""
    assert err.startswith("cnnzoo: error: show: choose a PICTURE") and "receptive-field" in err
    assert len(err.strip().splitlines()) == 1


def test_pick_layer_error_is_one_line_even_for_many_layers():
    from cnnzoo.show._common import conv_layers, pick_layer

    model = build_for_input("resnet50")
    with pytest.raises(CnnzooError) as error:
        pick_layer(model, "nope", conv_layers(model), "convolution layer")
    message = str(error.value)
    assert "\n" not in message and "(53 in all)" in message


def test_characters_no_font_has_are_one_warning_line_per_process_not_matplotlibs(capsys,
                                                                                 tmp_path):
    """A folder data set's classes may be named in any script; characters that no installed
    font has (here Egyptian hieroglyphs) are noted once in one line, not two lines of
    matplotlib's per character and drawing."""
    from cnnzoo import plots
    from cnnzoo.training import train

    names = ("cat \U00013080", "dog \U00013081\U00013082")
    gray_folder(tmp_path / "pics", names)
    run = tmp_path / "run"
    train("lenet5_d2l", data="folder", data_dir=str(tmp_path / "pics"), epochs=1, out=run,
          device="cpu")
    plots._noted_missing.difference_update("\U00013080\U00013081\U00013082")
    code, _, err = run_cli(capsys, "eval", run)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: warning: no installed font has 3 "
                                                   "character(s) of the labels"), err
    for char in "\U00013080\U00013081\U00013082":
        assert char in lines[0]
    code, _, err = run_cli(capsys, "show", "predictions", run, "--out", tmp_path / "p.png")
    assert code == 0 and err == ""  # noted already in this process


def test_a_font_installed_after_matplotlib_listed_the_systems_is_a_fallback(monkeypatch):
    """matplotlib keeps its list of the system's fonts from its first run; a font installed
    since (here matplotlib's own DejaVu Serif, taken off the list) is added and falls back
    for the glyphs the first font lacks."""
    import matplotlib
    from matplotlib import font_manager

    from cnnzoo import plots

    serif = [font for font in font_manager.fontManager.ttflist if font.name == "DejaVu Serif"]
    assert serif, "matplotlib ships DejaVu Serif"
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [font for font in font_manager.fontManager.ttflist
                         if font.name != "DejaVu Serif"])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [serif[0].fname])
    monkeypatch.setattr(plots, "FALLBACK_FONTS", ("DejaVu Serif",))
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["sans-serif"])
    monkeypatch.setattr(plots, "_fallbacks", None)
    assert plots.installed_fallbacks() == ["DejaVu Serif"]
    assert plots.font_families() == ["sans-serif", "DejaVu Serif"]
    assert matplotlib.rcParams["font.family"] == ["sans-serif"]  # the process's setting stays
    assert any(font.name == "DejaVu Serif" for font in font_manager.fontManager.ttflist)
