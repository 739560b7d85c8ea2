"""Faults: a training process killed at any moment, a full disk, an unwritable output, two runs in
one directory. Nothing written before the fault is lost, and the run finishes as if uninterrupted.

The kill tests run the real command line in a subprocess (CPU, one thread, fixed seed) through a
small driver that pauses it at a chosen point (half-way through writing a checkpoint, just before
a file is renamed into place, in the middle of an epoch) and prints a marker; the test then kills
it with SIGKILL, checks what is on disk, resumes with ``cnnzoo train --resume DIR`` and compares
the final weights with those of an uninterrupted run, tensor by tensor.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnzoo.cli import main
from cnnzoo.errors import CnnzooError
from cnnzoo.training.checkpoint import load_checkpoint
from cnnzoo.training.rundir import RunLock

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and flock are POSIX")

TRAIN = ["train", "lenet5_bn_d2l", "--data", "synthetic", "--subset", "512", "--batch-size", "32",
         "--epochs", "4", "--lr", "0.1", "--device", "cpu"]
STEPS_PER_EPOCH = 512 // 32
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
WAIT = 120  # seconds before a subprocess that never reaches its marker is killed (shared machine)

# Runs cnnzoo's command line with one hook installed, which prints PAUSED and then waits (until
# the file named by --go exists, or for a minute) at a chosen point:
#   write NAME K    half-way through writing the K-th temporary file of NAME (a torn write)
#   replace NAME K  just before the K-th complete temporary file is renamed over NAME
#   step K          just before the K-th optimiser step
DRIVER = r'''
import os, sys, tempfile, time
from pathlib import Path

point, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
argv = sys.argv[5:]
seen = [0]

def pause():
    print("PAUSED", flush=True)
    for _ in range(600):
        if go and os.path.exists(go):
            return
        time.sleep(0.1)

def reached(file_name):
    if file_name != name:
        return False
    seen[0] += 1
    return seen[0] == count

if point == "replace":
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        if reached(Path(dst).name):
            pause()
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
elif point == "write":
    temporaries = {}
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen
    def mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        temporaries[fd] = Path(path).name
        return fd, path
    class Torn:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)
        def __getattr__(self, attribute):
            return getattr(self.handle, attribute)
        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            pause()
            return self.handle.write(data[len(data) // 2:])
    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        temporary = temporaries.pop(fd, "")
        stem = temporary[1:].rsplit(".", 2)[0] if temporary.startswith(".") else ""
        return Torn(handle) if reached(stem) else handle
    tempfile.mkstemp, os.fdopen = mkstemp, fdopen
elif point == "step":
    from cnnzoo.training import optim
    real_step = optim.SGD.step
    def step(self, *args, **kwargs):
        if reached("step"):
            pause()
        return real_step(self, *args, **kwargs)
    optim.SGD.step = step

from cnnzoo.cli import main
sys.exit(main(argv))
'''


def cnnzoo(args, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m cnnzoo ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "cnnzoo", *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=WAIT)


def start_paused(tmp_path: Path, point: str, name: str, count: int, args, go: Path | None = None):
    """Start the driver; return the process once it has printed PAUSED."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    process = subprocess.Popen([sys.executable, str(driver), point, name, str(count),
                                str(go or ""), *map(str, args)], cwd=tmp_path, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(WAIT, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if line.strip() == "PAUSED":
                return process
    finally:
        watchdog.cancel()
    process.wait()
    pytest.fail(f"the run never reached {point} {name} #{count}: {process.stderr.read()[-2000:]}")


def same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a), load_file(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The final weights of the uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    done = cnnzoo([*TRAIN, "--out", folder / "run"], cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder / "run" / "model.safetensors"


# point, file, occurrence, epoch of the checkpoint on disk after the kill (None: no checkpoint yet)
KILL_POINTS = [
    pytest.param("write", "checkpoint.pt", 1, None, id="torn-write-of-the-first-checkpoint"),
    pytest.param("write", "checkpoint.pt", 3, 2, id="torn-write-of-the-third-checkpoint"),
    pytest.param("step", "step", 2 * STEPS_PER_EPOCH + 7, 2, id="mid-epoch-3"),
    pytest.param("replace", "metrics.csv", 4, 3, id="between-metrics-and-checkpoint-of-epoch-4"),
    pytest.param("replace", "model.safetensors", 1, 4, id="before-the-final-weights"),
]


@pytest.mark.parametrize("point, name, count, epoch", KILL_POINTS)
def test_sigkill_leaves_a_loadable_checkpoint_and_resume_matches(tmp_path, reference, point,
                                                                 name, count, epoch):
    run = tmp_path / "run"
    process = start_paused(tmp_path, point, name, count, [*TRAIN, "--out", run])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT)
    assert process.returncode == -signal.SIGKILL

    if epoch is None:
        assert not (run / "checkpoint.pt").exists()
    else:
        state = load_checkpoint(run / "checkpoint.pt")
        assert state["epoch"] == epoch
    assert not (run / "model.safetensors").exists()
    leftovers = list(run.glob(".*.tmp"))
    if point == "write":
        assert leftovers, "the torn temporary file should still be there"

    resumed = cnnzoo(["train", "--resume", run], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    resumed_at = 1 if epoch is None else epoch + 1
    assert (f"resuming at epoch {resumed_at}" in resumed.stdout) == (resumed_at > 1)
    same_weights(reference, run / "model.safetensors")
    assert not list(run.glob(".*.tmp")), "the killed run's temporary files are cleaned up"
    assert not (run / ".lock").exists()
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", "1", "2", "3", "4"]


def test_sigterm_ends_the_run_as_ctrl_c_does_and_resume_matches(tmp_path, reference):
    """A batch system's kill (SIGTERM) mid-epoch: one line naming the command that continues,
    status 143, the lock let go; that command ends with the uninterrupted run's weights."""
    run = tmp_path / "run"
    process = start_paused(tmp_path, "step", "step", 2 * STEPS_PER_EPOCH + 7,
                           [*TRAIN, "--out", run])
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=WAIT) == 128 + signal.SIGTERM
    hint = f"cnnzoo: terminated; continue with: cnnzoo train --resume {run}\n"
    assert process.stderr.read() == hint
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    assert not (run / ".lock").exists() and not list(run.glob(".*.tmp"))
    resumed = cnnzoo(["train", "--resume", run], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    same_weights(reference, run / "model.safetensors")


def test_a_live_run_keeps_a_second_one_out_of_its_directory(tmp_path, reference, capsys):
    run, go = tmp_path / "run", tmp_path / "go"
    first = start_paused(tmp_path, "replace", "checkpoint.pt", 2, [*TRAIN, "--out", run], go=go)
    try:
        assert (run / ".lock").read_text() == str(first.pid)
        before = {path.name: path.stat().st_mtime_ns for path in run.iterdir()}

        # the same command again, and a resume of the directory, while the first one lives
        assert main([*TRAIN, "--out", str(run)]) == 2
        assert "already holds a run" in one_line(capsys)
        assert main(["train", "--resume", str(run)]) == 2
        assert f"in use by another cnnzoo process (pid {first.pid})" in one_line(capsys)
        with pytest.raises(CnnzooError, match="in use by another cnnzoo process"):
            with RunLock(run):
                pass
        assert {path.name: path.stat().st_mtime_ns for path in run.iterdir()} == before
    finally:
        go.touch()
    assert first.wait(timeout=WAIT) == 0, first.stderr.read()
    same_weights(reference, run / "model.safetensors")


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnzoo: error: "), err
    return err


@pytest.mark.parametrize("resume", [False, True], ids=["new-run", "resume"])
def test_a_run_that_finishes_while_another_sets_up_in_its_folder_is_kept(tmp_path, monkeypatch,
                                                                        capsys, resume):
    """Two commands on one folder: the second checks the folder, then reads its data while
    the first trains there to the end and lets go of the lock. The second then refuses, in one
    line, instead of writing over the first's finished run from what it saw before."""
    import cnnzoo.data
    from cnnzoo.training import train

    run = tmp_path / "run"
    quick = dict(data="synthetic", train_subset=128, batch_size=32, device="cpu", epochs=2)
    if resume:
        train("lenet5_d2l", out=run, stop_after_epoch=1, **quick)
    load_dataset, finished = cnnzoo.data.load_dataset, {}

    def other_run_meanwhile(*args, **kwargs):
        if not finished:
            finished["files"] = None
            with warnings.catch_warnings():  # the other run's, not the command's
                warnings.simplefilter("ignore")
                train("lenet5_d2l", progress=False,
                      **(dict(resume=run) if resume else dict(out=run, **quick)))
            finished["files"] = {path.name: path.read_bytes() for path in run.iterdir()}
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(cnnzoo.data, "load_dataset", other_run_meanwhile)
    second = ["--resume", str(run)] if resume else [
        "lenet5_d2l", "--data", "synthetic", "--subset", "128", "--batch-size", "32",
        "--device", "cpu", "--out", str(run)]
    assert main(["train", *second, "--epochs", "3"]) == 2
    assert f"another cnnzoo process trained in {run} while this one set up" in one_line(capsys)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == finished["files"]


# --- the lock, without subprocesses --------------------------------------------------------------

def test_a_lock_naming_a_live_but_unrelated_pid_is_taken_over(tmp_path):
    """Only a held lock counts: a killed run's pid reused by another process is no owner."""
    (tmp_path / ".lock").write_text(str(os.getppid()))
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


def test_taking_the_lock_removes_only_the_run_files_temporaries(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.k2j4.tmp", tmp_path / ".model.safetensors.x.tmp",
             tmp_path / ".metrics.csv.abc.tmp"]
    kept = [tmp_path / ".confusion.png.q.tmp", tmp_path / "checkpoint.pt", tmp_path / "notes.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x")
    with RunLock(tmp_path):
        assert [path.exists() for path in stale] == [False] * len(stale)
        assert all(path.exists() for path in kept)


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(CnnzooError, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).__enter__()
    with RunLock(tmp_path):  # released: free again
        pass


# --- a full disk, an unwritable output -----------------------------------------------------------

QUICK = ["train", "lenet5_bn_d2l", "--data", "synthetic", "--subset", "128", "--batch-size", "32",
         "--lr", "0.1", "--device", "cpu"]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory) -> Path:
    """The weights after two uninterrupted epochs of the QUICK run, trained in this process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = tmp_path_factory.mktemp("two-epochs") / "run"
        assert main([*QUICK, "--epochs", "2", "--out", str(run)]) == 0
    finally:
        torch.set_num_threads(threads)
    return run / "model.safetensors"


class FullDisk:
    """A file handle whose writes stop half-way with ENOSPC, as on a disk that fills up."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)

    def __getattr__(self, attribute):
        return getattr(self.handle, attribute)

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_checkpoint_writes(monkeypatch, where: str) -> None:
    """Make writing checkpoint.pt fail at ``where``: creating, writing or syncing the temporary."""
    real_mkstemp, real_fdopen, real_fsync = tempfile.mkstemp, os.fdopen, os.fsync
    ours = set()

    def mkstemp(*args, **kwargs):
        if where == "create" and kwargs.get("prefix", "").startswith(".checkpoint.pt."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd, path = real_mkstemp(*args, **kwargs)
        if Path(path).name.startswith(".checkpoint.pt."):
            ours.add(fd)
        return fd, path

    def fdopen(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        return FullDisk(handle) if where == "write" and fd in ours else handle

    def fsync(fd):
        if where == "sync" and fd in ours:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_fsync(fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("where, reason", [("create", "No space left on device"),
                                           ("write", "No space left on device"),
                                           ("sync", "Input/output error")])
def test_a_failing_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, capsys,
                                                           one_thread, two_epochs, where, reason):
    run = tmp_path / "run"
    assert main([*QUICK, "--epochs", "1", "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()

    with monkeypatch.context() as patch:
        fail_checkpoint_writes(patch, where)
        assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    line = one_line(capsys)
    assert "checkpoint.pt" in line or f"cannot write in {run}" in line
    assert reason in line
    if where != "create":
        assert line.rstrip().endswith("; the previous file is kept")
    assert (run / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert not list(run.glob(".*.tmp")) and not (run / ".lock").exists()

    # space again: the run goes on from the kept checkpoint to the uninterrupted result
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    same_weights(two_epochs, run / "model.safetensors")


def test_a_failing_first_checkpoint_claims_no_previous_file(tmp_path, monkeypatch, capsys,
                                                            one_thread):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        fail_checkpoint_writes(patch, "write")
        assert main([*QUICK, "--epochs", "1", "--out", str(run)]) == 2
    line = one_line(capsys)
    assert "cannot write" in line and "checkpoint.pt: No space left on device" in line
    assert "previous" not in line and not (run / "checkpoint.pt").exists()


def test_an_output_under_a_file_is_a_one_line_error(tmp_path, capsys, one_thread):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main([*QUICK, "--epochs", "1", "--out", str(blocker / "run")]) == 2
    assert "Not a directory" in one_line(capsys)
    assert main([*QUICK, "--epochs", "1", "--out", str(blocker)]) == 2
    assert "exists and is not a directory" in one_line(capsys)
    assert blocker.read_text() == "not a folder"


def test_written_files_get_the_usual_permissions(tmp_path, one_thread):
    run = tmp_path / "run"
    assert main([*QUICK, "--epochs", "1", "--out", str(run)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "metrics.csv", "checkpoint.pt", "model.safetensors"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# --- a run directory on a read-only medium -------------------------------------------------------

READ_ONLY = 'mount --bind -o ro "$0" "$0" && exec "$@"'


@pytest.fixture(scope="module")
def read_only_run(tmp_path_factory) -> Path:
    """A tiny finished run, for commands that see it on a read-only medium (``on_read_only``);
    skips where the system lends no mount namespace (no ``unshare``, or user namespaces off)."""
    try:
        probe = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", READ_ONLY,
                                str(tmp_path_factory.getbasetemp()), "true"],
                               capture_output=True, timeout=WAIT)
    except OSError:
        pytest.skip("no unshare here")
    if probe.returncode:
        pytest.skip(f"no read-only mount in a namespace here: {probe.stderr.decode()[-200:]}")
    run = tmp_path_factory.mktemp("read-only") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*QUICK, "--epochs", "1", "--out", str(run)]) == 0
    finally:
        torch.set_num_threads(threads)
    return run


def on_read_only(folder: Path, args) -> subprocess.CompletedProcess:
    """``python -m cnnzoo ARGS`` in a process that sees ``folder`` bound read-only over itself in
    a mount namespace of its own: a read-only medium, which even root cannot write."""
    return subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", READ_ONLY,
                           str(folder), sys.executable, "-m", "cnnzoo", *map(str, args)],
                          env=ENV, capture_output=True, text=True, timeout=WAIT)


def test_eval_of_a_read_only_run_prints_its_results_without_the_picture(read_only_run):
    before = {path.name: path.read_bytes() for path in read_only_run.iterdir()}
    done = on_read_only(read_only_run, ["eval", read_only_run, "--device", "cpu"])
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and "confusion matrix" in done.stdout
    assert "saved" not in done.stdout
    assert done.stderr == (f"cnnzoo: warning: confusion.png is not saved: cannot write "
                           f"{read_only_run / 'confusion.png'}: Read-only file system\n")
    assert {path.name: path.read_bytes() for path in read_only_run.iterdir()} == before


def test_export_into_a_read_only_run_is_one_line_naming_the_file(read_only_run):
    before = {path.name: path.read_bytes() for path in read_only_run.iterdir()}
    done = on_read_only(read_only_run, ["export", read_only_run])
    assert done.returncode == 2 and not done.stdout
    assert done.stderr == (f"cnnzoo: error: cannot write {read_only_run / 'model.onnx'}: "
                           f"Read-only file system\n")
    assert {path.name: path.read_bytes() for path in read_only_run.iterdir()} == before
