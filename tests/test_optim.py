"""cnnzoo's optimisers and schedule against torch.optim's, and what they spare a process."""

import subprocess
import sys

import pytest
import torch

from cnnzoo.errors import CnnzooError
from cnnzoo.training import recipe_for
from cnnzoo.training.optim import SGD, AdamW, Schedule, make_optimizer

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (ours, torch's) with the same settings
PAIRS = {
    "plain sgd": (lambda p, fused: SGD(p, 0.1, fused=fused),
                  lambda p, fused: torch.optim.SGD(p, lr=0.1, fused=fused or None)),
    "nesterov, decay": (lambda p, fused: SGD(p, 0.05, 0.9, True, 5e-4, fused=fused),
                        lambda p, fused: torch.optim.SGD(p, lr=0.05, momentum=0.9,
                                                         nesterov=True, weight_decay=5e-4,
                                                         fused=fused or None)),
    "adamw": (lambda p, fused: AdamW(p, 0.01, 0.05, fused=fused),
              lambda p, fused: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05,
                                                 fused=fused or None)),
}


def small_net(device):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                               torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3)).to(device)


def run_steps(net, optimizer, steps, device, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=generator).to(device)
        y = torch.randint(0, 3, (8,), generator=generator).to(device)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(PAIRS))
def test_the_same_weights_as_torch_optim_step_for_step(name, device):
    ours_net, torch_net = small_net(device), small_net(device)
    fused = device == "cuda"
    make_ours, make_torch = PAIRS[name]
    ours, theirs = make_ours(ours_net.parameters(), fused), make_torch(torch_net.parameters(),
                                                                       fused)
    run_steps(ours_net, ours, 5, device)
    run_steps(torch_net, theirs, 5, device)
    for a, b in zip(ours_net.parameters(), torch_net.parameters()):
        assert torch.equal(a, b)
    # the same state-dict layout: the same keys, per-parameter states and group settings
    mine, torch_state = ours.state_dict(), theirs.state_dict()
    assert mine["state"].keys() == torch_state["state"].keys()
    for i, state in torch_state["state"].items():
        assert mine["state"][i].keys() == state.keys()
        for key, value in state.items():
            assert torch.equal(mine["state"][i][key], value), key
    assert mine["param_groups"][0].keys() == torch_state["param_groups"][0].keys()


@pytest.mark.parametrize("name", list(PAIRS))
def test_a_torch_optim_state_dict_resumes_as_if_never_stopped(name):
    # a checkpoint written with torch.optim (cnnzoo before its own optimisers) goes on exactly
    make_ours, make_torch = PAIRS[name]
    straight_net, resumed_net = small_net("cpu"), small_net("cpu")
    straight = make_torch(straight_net.parameters(), False)
    run_steps(straight_net, straight, 3, "cpu")
    resumed_net.load_state_dict(straight_net.state_dict())
    resumed = make_ours(resumed_net.parameters(), False)
    resumed.load_state_dict(straight.state_dict())
    run_steps(straight_net, straight, 3, "cpu", seed=2)
    run_steps(resumed_net, resumed, 3, "cpu", seed=2)
    for a, b in zip(straight_net.parameters(), resumed_net.parameters()):
        assert torch.equal(a, b)


def test_a_state_dict_of_another_model_is_refused():
    optimizer = SGD(small_net("cpu").parameters(), 0.1, 0.9)
    other = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CnnzooError, match="holds 2 parameters, the model 6"):
        optimizer.load_state_dict(other.state_dict())
    # the same count, another shape; an index past the parameters: one-line errors, no state
    net = small_net("cpu")
    donor = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    run_steps(net, donor, 1, "cpu")
    state = donor.state_dict()
    state["state"][0]["momentum_buffer"] = torch.zeros(2, 2)
    with pytest.raises(CnnzooError, match=r"has shape \(2, 2\), its parameter \(4, 1, 3, 3\)"):
        optimizer.load_state_dict(state)
    state["state"] = {6: {"momentum_buffer": torch.zeros(3)}}
    with pytest.raises(CnnzooError, match="entry 6 that is no parameter"):
        optimizer.load_state_dict(state)
    assert optimizer.state == {}


@pytest.mark.parametrize("recipe", ["d2l", "modern", "best"])
def test_the_schedule_sets_the_rates_lambdalr_would(recipe):
    rec = recipe_for("resnet9_fmnist", recipe).replace(epochs=2)
    total = 40
    net = small_net("cpu")
    ours = make_optimizer(rec, net, torch.device("cpu"))
    schedule = Schedule(ours, rec, total)
    from cnnzoo.training.optim import lr_factor

    reference = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=rec.lr)
    lambdalr = torch.optim.lr_scheduler.LambdaLR(reference,
                                                 lambda step: lr_factor(rec, step, total))
    rates = []
    for _ in range(total):
        assert ours.lr == pytest.approx(reference.param_groups[0]["lr"], rel=1e-12)
        rates.append(ours.lr)
        reference.step()
        lambdalr.step()
        schedule.step()
    if rec.schedule != "constant":
        assert max(rates) == pytest.approx(rec.lr, rel=0.05) and rates[-1] < rec.lr / 10
    # the state carries the count: a schedule loaded from it sets the same rate
    again = Schedule(make_optimizer(rec, net, torch.device("cpu")), rec, total)
    again.load_state_dict(schedule.state_dict())
    assert again.optimizer.lr == ours.lr
    assert schedule.state_dict() == {"last_epoch": lambdalr.state_dict()["last_epoch"]}


def test_a_training_process_never_imports_torch_dynamo(tmp_path):
    # importing torch._dynamo, which any torch.optim optimiser does, costs about as long as
    # importing torch: a training run without --compile must not pay it
    code = ("import sys; from cnnzoo.cli import main; "
            f"status = main(['train', 'lenet5_bn_d2l', '--data', 'synthetic', '--subset', '256', "
            f"'--epochs', '1', '--recipe', 'modern', '--device', 'cpu', "
            f"'--out', {str(tmp_path / 'run')!r}]); "
            "print('dynamo' if 'torch._dynamo' in sys.modules else 'no dynamo', status)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "no dynamo 0", done.stderr[-2000:]
