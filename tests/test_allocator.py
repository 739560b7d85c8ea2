"""Host memory on the CPU: with the allocator settings a training step stops faulting in pages."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from cnnzoo.training import allocator

STEPS = textwrap.dedent("""
    import resource, sys, torch
    from torch import nn
    torch.set_num_threads(1)
    if sys.argv[1] == "keep":
        from cnnzoo.training import allocator
        assert allocator.keep_freed_memory() and allocator.in_force()
    from cnnzoo.models import get_model
    torch.manual_seed(0)
    net = get_model("lenet5_d2l")
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    def step():
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(10):
        step()
    windows = []  # the quietest of four windows: a heap growing by its pad is no step's cost
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step()
        windows.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
    print(min(windows))
""")


def faults_per_step(mode: str) -> float:
    # glibc raises its mmap threshold by itself after some frees, which would make the default
    # case quiet in some runs and not others: fix it at glibc's own default, 128 KiB
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return float(done.stdout.split()[-1])


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="the settings are glibc's, on Linux")
def test_kept_memory_stops_page_faults_in_training_steps():
    # a LeNet step at batch 64 frees and re-allocates activations of a few hundred KiB each:
    # with glibc's defaults they are mmapped afresh every step, with the settings reused
    default, kept = faults_per_step("default"), faults_per_step("keep")
    assert default > 100, default
    assert kept < 5, kept


LARGE = textwrap.dedent("""
    import ctypes, resource
    from cnnzoo.training import allocator
    assert allocator.keep_freed_memory()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    SIZE = 600_000_000
    def step():  # two blocks of 0.6 GB, 1.2 GB at the top of the heap when both are freed
        a, b = libc.malloc(SIZE), libc.malloc(SIZE)
        ctypes.memset(a, 1, SIZE)
        ctypes.memset(b, 1, SIZE)
        libc.free(b)
        libc.free(a)
    step()
    faults = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(max(faults))
""")


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="the settings are glibc's, on Linux")
def test_more_than_a_gigabyte_freed_at_once_is_kept():
    # a 224x224 model's float32 batch of 512 frees this much between layers. The blocks come from
    # malloc itself: tensors' own small allocations can leave a hole between two large blocks,
    # and where the next ones land (and so how many pages they fault in) then varies from run
    # to run. With a trim threshold of 1 GiB every step here faults in 276,585 pages.
    done = subprocess.run([sys.executable, "-c", LARGE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) < 1000, done.stdout


def test_keep_freed_memory_is_applied_once_and_reported():
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first
    assert allocator.in_force() is first


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
                    reason="the settings are glibc's, on Linux")
def test_evaluating_on_the_cpu_keeps_freed_memory_too(tmp_path):
    # `cnnzoo eval` of a 224-px model frees and re-allocates activations of hundreds of MiB per
    # batch; a fresh process (the test process may have applied the settings already) shows
    # that evaluate() applies them itself
    from cnnzoo.training import train

    run = train("lenet5_d2l", data="synthetic", epochs=1, train_subset=64, test_subset=64,
                device="cpu", out=tmp_path / "run").run_dir
    code = textwrap.dedent(f"""
        from cnnzoo.training import allocator, evaluate
        before = allocator.in_force()
        evaluate({str(run)!r}, device="cpu", plot=False)
        print(before, allocator.in_force())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
