"""The training step: eager on any device, recorded as a CUDA graph and replayed on a GPU."""

import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training import recipe_for, train
from cnnzoo.training.optim import Schedule, lr_factor, make_optimizer
from cnnzoo.training.step import TrainStep, check_graphs

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("recipe", ["best", "modern"])
def test_a_graphable_optimiser_keeps_one_rate_tensor_that_the_schedule_fills(recipe):
    rec = recipe_for("resnet9_fmnist", recipe)
    net = torch.nn.Linear(4, 2)
    optimizer = make_optimizer(rec, net, torch.device("cpu"), graph=True)
    rate = optimizer.lr
    assert isinstance(rate, torch.Tensor)
    schedule = Schedule(optimizer, rec, 100)
    for step in range(1, 31):
        net(torch.ones(1, 4)).sum().backward()
        optimizer.step()
        schedule.step()
        assert optimizer.lr is rate  # filled in place: a recorded step reads it there
        assert rate.item() == pytest.approx(rec.lr * lr_factor(rec, step, 100), rel=1e-6)


def test_graphs_are_refused_off_cuda(tmp_path, capsys):
    net = torch.nn.Linear(4, 2)
    with pytest.raises(CnnzooError, match="cuda_graphs=True needs a CUDA device"):
        TrainStep(net, net, torch.optim.SGD(net.parameters()), torch.nn.CrossEntropyLoss(),
                  batch_size=8, device=torch.device("cpu"), graph=True)
    for command in (["train", "--data", "synthetic"], ["bench", "lenet5_d2l"],
                    ["leaderboard", "--models", "lenet5_d2l"]):
        assert main([*command, "--device", "cpu", "--cuda-graphs",
                     "--out" if command[0] != "bench" else "--results",
                     str(tmp_path / command[0])]) == 2
        assert "--cuda-graphs needs a CUDA device" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic", "--device", "cpu", "--compile", "--amp",
                 "--out", str(tmp_path / "x"), "--cuda-graphs"]) == 2
    cuda = torch.device("cuda")  # a device object only: nothing runs on it
    with pytest.raises(CnnzooError, match="do not go together"):
        check_graphs(cuda, compile=True)
    with pytest.raises(CnnzooError, match="one process"):
        check_graphs(cuda, processes=2)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("model, recipe", [("lenet5_bn_d2l", "modern"),
                                           ("resnet9_fmnist", "best"),
                                           ("alexnet_d2l", "d2l")])
def test_a_replayed_graph_trains_as_the_eager_steps_do(tmp_path, model, recipe):
    # the same seed, data, schedule and augmentation: the replays must follow the eager run
    # (dropout draws other numbers inside a graph, so AlexNet is held to its loss only)
    common = dict(recipe=recipe, epochs=2, data="fashion-mnist", train_subset=2000,
                  test_subset=500, batch_size=64, device="cuda", amp=True, channels_last=True,
                  resize=96 if model == "alexnet_d2l" else None)
    eager = train(model, out=tmp_path / "eager", **common)
    graphed = train(model, out=tmp_path / "graph", cuda_graphs=True, **common)
    assert graphed.config["cuda_graphs"] is True
    for a, b in zip(eager.history, graphed.history):
        tolerance = 0.1 if model == "alexnet_d2l" else 0.02
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=tolerance)
        if model != "alexnet_d2l":
            assert b["test_acc"] == pytest.approx(a["test_acc"], abs=0.03)
    assert graphed.final["train_acc"] > 0.25  # ten classes: well above chance in 2 epochs
    # a resumed graph run records its step again and goes on
    more = train(model, resume=graphed.run_dir, epochs=3, device="cuda")
    assert len(more.history) == 3 and more.final["train_loss"] < graphed.history[0]["train_loss"]
