"""Data-parallel training (torch.distributed, gloo on CPU) launched as users launch it:
2 processes end where 1 process ends at the same global batch; resume under 2 processes is
bit-identical to an uninterrupted run; a failing rank stops the job with one error line and
keeps what was written; several "nodes" on localhost; NCCL when GPUs are present."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from invmap.config import load_config
from invmap.training import load_checkpoint, read_log, train

# denoising 32×32 ellipses with a tiny residual CNN, one thread per process: seconds per run
TINY = {"name": "tiny", "operator": {"name": "identity"}, "noise": {"name": "gaussian", "relative": 0.3},
        "model": {"name": "cnn", "input": "adjoint", "channels": 8, "depth": 3, "residual": True},
        "data": {"size": 32, "train": 17, "val": 7, "simulation": "crime"},  # uneven: a last batch of 1, val 4 + 3
        "training": {"epochs": 3, "batch_size": 4, "max_minutes": 0, "lr": 3e-3, "warmup_epochs": 1,
                     "threads": 1, "amp": "off"}}  # float32: the tests compare weights to 1e-5
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# A rank that fails at its second epoch (a stand-in for, say, an unreadable shard on one node).
FAILING_RANK = """
import sys
from invmap.training import setup
epoch = setup.Pairs.epoch
def failing(self, batches, e):
    if e == 2:
        raise ValueError("cannot read shard 7")
    return epoch(self, batches, e)
if __import__("os").environ["RANK"] == "1":
    setup.Pairs.epoch = failing
from invmap.cli import main
sys.exit(main(sys.argv[1:]))
"""


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def invmap(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invmap", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def tensors(run) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint.safetensors"))


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "invmap: error:" in line]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(scope="module")
def two(config, tmp_path_factory):
    """One uninterrupted 2-process run, through `invmap train --nproc 2`."""
    out = tmp_path_factory.mktemp("runs") / "two"
    r = invmap("train", str(config), "--out", str(out), "--quiet", "--nproc", "2")
    assert r.returncode == 0, r.stderr
    assert "on 2 processes" in r.stdout and r.stdout.count("invmap train: run") == 1  # rank 0 alone speaks
    return out


@pytest.mark.processes
def test_two_processes_match_one(two, config, tmp_path):
    one = train(load_config(config), tmp_path / "one", progress=False)
    a, b = tensors(one.run_dir), tensors(two)
    assert a.keys() == b.keys()
    # The two runs differ only in float32 summation order: 2 half-batch gradients are
    # all-reduced instead of one full-batch gradient (a relative difference of ~1e-7 per
    # step). Over 12 Adam steps of lr 3e-3 that stays below 1e-5, ~1/300 of one step's update.
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-5
    la, lb = read_log(one.run_dir / "train_log.csv"), read_log(two / "train_log.csv")
    assert [r["epoch"] for r in la] == [r["epoch"] for r in lb]
    assert abs(float(la[-1]["val_psnr"]) - float(lb[-1]["val_psnr"])) < 0.05
    assert load_checkpoint(two)["info"]["processes"] == 2
    assert not [p for p in two.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.processes
def test_a_failing_rank_stops_all_and_resume_is_bit_identical(two, config, tmp_path, caplog):
    out, script = tmp_path / "failed", tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK)
    r = torchrun("--standalone", "--nproc-per-node", "2", str(script), "train", str(config), "--out", str(out),
                 "--quiet")
    assert r.returncode != 0
    assert errors(r.stderr) == ["invmap: error: rank 1 of 2: cannot read shard 7"], r.stderr
    assert load_checkpoint(out)["epoch"] == 1  # what rank 0 wrote before the failure is intact
    assert (out / "model.safetensors").is_file()
    ckpt_before = (out / "checkpoint.safetensors").read_bytes()

    # a different number of processes continues with a note (on a copy of the failed run)
    other = tmp_path / "on-one"
    other.mkdir()
    for f in out.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    with caplog.at_level("WARNING"):
        res = train(load_config(other / "config.yaml"), other, resume=True, progress=False)
    assert "trained on 2 process(es) with 1" in caplog.text and res.epochs == 3

    # resuming under 2 processes continues bit-identically to the uninterrupted run
    assert (out / "checkpoint.safetensors").read_bytes() == ckpt_before
    r = invmap("train", "--resume", "--out", str(out), "--quiet", "--nproc", "2")
    assert r.returncode == 0, r.stderr
    a, b = tensors(two), tensors(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cols = ("epoch", "step", "lr", "train_loss", "val_psnr", "val_ssim")
    assert [[row[c] for c in cols] for row in read_log(two / "train_log.csv")] == \
           [[row[c] for c in cols] for row in read_log(out / "train_log.csv")]


def test_bad_input_under_several_processes_is_one_line(config, tmp_path, monkeypatch, capsys):
    """Every rank reads the same config; rank 0 alone reports its error (as rank 2 of 3 would see it)."""
    from invmap.cli import main

    out = tmp_path / "odd"
    monkeypatch.setenv("WORLD_SIZE", "3")  # a global batch of 4 cannot be split over 3 ranks
    for rank in ("0", "2"):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert errors(err) == [err.strip()] and "divisible by the 3 processes" in err
    assert not out.exists()
    monkeypatch.setenv("RANK", "0")
    assert main(["train", str(config), "--nproc", "2"]) == 2  # --nproc under torchrun
    assert main(["evaluate", str(out)]) == 2  # only train runs data-parallel
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert main(["train", str(config), "--nproc", "0"]) == 2
    err = capsys.readouterr().err
    assert len(errors(err)) == 3 and "only 'invmap train' runs data-parallel" in err


# Loaded by every rank through PYTHONPATH: rank 1 SIGKILLs itself at epoch INVMAP_TEST_DIE_AT (a node
# that dies: no Python error, no message of its own).
DYING_RANK = """
import os
if os.environ.get("RANK") == "1" and os.environ.get("INVMAP_TEST_DIE_AT"):
    import signal
    from invmap.training import setup
    _epoch = setup.Pairs.epoch
    def dying(self, batches, e):
        if e == int(os.environ["INVMAP_TEST_DIE_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return _epoch(self, batches, e)
    setup.Pairs.epoch = dying
"""


@pytest.mark.processes
def test_a_dead_peer_is_one_line_and_the_run_resumes(two, config, tmp_path):
    """A rank killed by SIGKILL mid-run: `invmap train --nproc 2` stops the others, says so in
    one line (exit 2), keeps the last checkpoint, and `--resume` finishes bit-identically."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DYING_RANK)
    out = tmp_path / "dead"
    env = {**ENV, "PYTHONPATH": str(hook), "INVMAP_TEST_DIE_AT": "3"}
    r = subprocess.run([sys.executable, "-m", "invmap", "train", str(config), "--out", str(out), "--quiet",
                        "--nproc", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and errors(r.stderr) == [r.stderr.strip().splitlines()[-1]], r.stderr
    assert "rank 1 of 2 ended with exit code -9" in r.stderr and "Traceback" not in r.stderr
    # rank 1 reached epoch 3, so rank 0 had written epoch 1's checkpoint (it joins epoch 2's all-reduces
    # only after); epoch 2's may or may not have been written before torchrun stopped rank 0
    assert load_checkpoint(out)["epoch"] in (1, 2)
    r = invmap("train", "--resume", "--out", str(out), "--quiet", "--nproc", "2")
    assert r.returncode == 0, r.stderr
    a, b = tensors(two), tensors(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Each rank trains (or fails at epoch 2), then names the threads its process still runs (as an
# uncaught error would find them at exit).
THREADS_AFTER_TRAINING = """
import json, os, sys
from invmap.config import load_config
from invmap.training import setup, train
config, out, fail = sys.argv[1:]
if fail == "fail":
    epoch = setup.Pairs.epoch
    def failing(self, batches, e):
        if e == 2:
            raise ValueError("cannot read shard 7")
        return epoch(self, batches, e)
    setup.Pairs.epoch = failing
def threads():
    return [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
try:
    train(load_config(config), out, progress=False)
    print(json.dumps(threads()))
except ValueError:  # read while the exception, its traceback and the frames it holds are alive
    print(json.dumps(threads()))
"""


@pytest.mark.processes
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="names threads through /proc")
@pytest.mark.parametrize("ending", ["done", "fail"])
def test_no_gloo_thread_outlives_training(config, tmp_path, ending):
    """After `train` returns or raises, a rank runs no thread of its process group: a group kept
    alive past `Dist.stop` keeps gloo's C++ threads into the interpreter's shutdown, which
    aborted a finished rank under load (exit -6)."""
    env = {**ENV, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    ranks = [subprocess.Popen([sys.executable, "-c", THREADS_AFTER_TRAINING, str(config), str(tmp_path / "run"),
                               ending], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    results = [p.communicate(timeout=180) for p in ranks]
    assert all(p.returncode == 0 for p in ranks), results
    threads = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    assert all(len(names) >= 1 for names in threads)  # the main thread, at least, was read
    assert not [n for names in threads for n in names if "gloo" in n], threads
    assert load_checkpoint(tmp_path / "run")["epoch"] == (3 if ending == "done" else 1)


@pytest.mark.processes
def test_a_wrong_world_size_fails_in_bounded_time(config, tmp_path):
    """WORLD_SIZE=2 with only one rank started: the rank waits INVMAP_DIST_TIMEOUT seconds for the
    other, then says so in one line; no run directory is left."""
    import time

    out, port = tmp_path / "alone", free_port()
    env = {**ENV, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "INVMAP_DIST_TIMEOUT": "2"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "invmap", "train", str(config), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert time.perf_counter() - t0 < 40
    assert r.returncode == 2 and errors(r.stderr) == [r.stderr.strip()], r.stderr
    assert "did not form within 2 s" in r.stderr and "1/2" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not an integer"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 is outside [1, 65536]"),
    ({"WORLD_SIZE": str(10**12)}, "is outside [1, 65536]"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is outside [0, 1]"),
    ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "-1"}, "LOCAL_RANK=-1 is outside"),
    ({"WORLD_SIZE": "2", "RANK": "0", "INVMAP_DIST_TIMEOUT": "nan"}, "INVMAP_DIST_TIMEOUT='nan' must be"),
    ({"WORLD_SIZE": "2", "RANK": "0", "INVMAP_DIST_TIMEOUT": "-1"}, "INVMAP_DIST_TIMEOUT='-1' must be"),
])
def test_a_torchrun_environment_it_would_not_set_is_one_line(config, tmp_path, monkeypatch, capsys, env, message):
    from invmap.cli import main

    for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert errors(err) == [err.strip()] and message in err, err
    assert not (tmp_path / "r").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.processes
@pytest.mark.slow
def test_two_nodes_on_localhost(two, config, tmp_path):
    """The multi-node command (c10d rendezvous) with two 'nodes' of one process each."""
    out, port = tmp_path / "nodes", free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "invmap-test",
           "-m", "invmap", "train", str(config), "--out", str(out), "--quiet"]
    nodes = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
             for _ in range(2)]
    results = [p.communicate(timeout=180) for p in nodes]
    assert all(p.returncode == 0 for p in nodes), results
    a, b = tensors(two), tensors(out)  # the same 2 ranks, the same sums: the same bits
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.processes
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (NCCL)")
def test_nccl_on_gpus(config, tmp_path):
    n = min(2, torch.cuda.device_count())
    out = tmp_path / "gpu"
    r = invmap("train", str(config), "--out", str(out), "--quiet", "--nproc", str(n), "--set", "training.device=cuda")
    assert r.returncode == 0, r.stderr
    assert "cuda:0" in load_checkpoint(out)["info"]["device"] and load_checkpoint(out)["epoch"] == 3


@pytest.mark.parametrize("world", [1, 2, 3])
def test_global_batches_are_split_over_the_ranks(world):
    """Every pair of a global batch goes to exactly one rank, and the shares weight the ranks'
    mean losses into the global batch's mean: Σ_r share_r · mean_r / W = mean."""
    from invmap.training.distributed import Dist

    perm = torch.randperm(13, generator=torch.Generator().manual_seed(0))
    parts = [Dist(rank=r, world=world).batches(perm.split(6)) for r in range(world)]
    for step in range(3):  # 6 + 6 + 1 pairs
        glob = perm[6 * step:6 * step + 6]
        ranks = [p[step] for p in parts]
        assert sorted(torch.cat([idx for idx, share, _ in ranks if share > 0]).tolist()) == sorted(glob.tolist())
        assert all(b == len(glob) for _, _, b in ranks) and all(len(idx) >= 1 for idx, _, _ in ranks)
        losses = torch.rand(13, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
        mixed = sum(share * float(losses[idx].mean()) for idx, share, _ in ranks) / world
        assert mixed == pytest.approx(float(losses[glob].mean()), rel=1e-12)


@pytest.mark.parametrize("rank, error, code, line", [
    ("1", ValueError("cannot read shard 7"), 2, "invmap: error: rank 1 of 2: cannot read shard 7"),
    ("0", ValueError("cannot read shard 7"), 2, "invmap: error: cannot read shard 7"),
    ("1", RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:41234"), 1, None),  # rank 0 says why
])
def test_what_a_rank_reports(config, tmp_path, monkeypatch, capsys, rank, error, code, line):
    from invmap.cli import main
    from invmap.commands import train as train_command

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(train_command, "train", failing)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--quiet"]) == code
    assert errors(capsys.readouterr().err) == ([line] if line else [])


def test_one_gpu_per_rank(monkeypatch):
    """More ranks on a node than GPUs is a one-line error before any CUDA call."""
    from invmap.training.distributed import Dist

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="local rank 1 has no GPU of its own"):
        Dist(rank=1, world=2, local_rank=1).start(torch.device("cuda"))


@pytest.fixture
def group():
    """A one-process gloo group: DDP's bookkeeping (every parameter reduced each step) runs for real."""
    import torch.distributed as tdist

    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    yield
    tdist.destroy_process_group()


@pytest.mark.processes
@pytest.mark.parametrize("name", __import__("invmap.models", fromlist=["names"]).names())
def test_every_model_trains_under_ddp(group, name):
    """Every registered network, wrapped by `Dist.wrap`, takes steps whose gradients DDP reduces
    (a parameter the forward pass does not use would make DDP fail at the second step)."""
    import invmap.models as models
    from invmap.training.distributed import Dist

    small = {"cnn": dict(depth=2, channels=4), "rescnn": dict(blocks=1, channels=4),
             "unet": dict(depth=2, base_channels=4), "vit": dict(patch_size=4, embed_dim=16, depth=1, heads=2,
                                                                 image_size=16), "mlp": dict(depth=1, width=8)}
    torch.manual_seed(0)
    recon = models.LearnedReconstructor(models.build_for(name, (16, 16), (16, 16), **small.get(name, {})),
                                        input="adjoint")
    step = Dist(rank=0, world=2).wrap(recon, "from_input")  # world 2 asks for DDP; the group has 1 process
    assert isinstance(step, torch.nn.parallel.DistributedDataParallel)
    opt = torch.optim.SGD(recon.parameters(), lr=1e-2)
    z = torch.rand(2, 1, 16, 16)
    for _ in range(3):
        opt.zero_grad()
        ((step(z) - z) ** 2).mean().backward()
        opt.step()
    assert all(p.grad is not None for p in recon.parameters())


@pytest.mark.processes
@pytest.mark.parametrize("kind", [k for k in __import__("invmap.models", fromlist=["KINDS"]).KINDS.names()
                                  if k != "pnp"])
def test_every_trained_kind_trains_under_ddp(group, kind):
    """The model-based kinds train `recon(y, physics)` through the same `Dist.wrap`."""
    import invmap.models as models
    import invmap.operators as ops
    from invmap.physics import Physics
    from invmap.training.distributed import Dist

    import invmap.noise as noise_mod

    torch.manual_seed(0)
    if kind == "denoiser":  # a prior for every operator: trained on a denoising task
        physics = Physics(ops.build("identity", image_shape=(16, 16)), noise_mod.build("gaussian", sigma=0.1))
        recon = models.build_kind(kind, depth=2, base_channels=4)
    elif kind == "unfolded":  # a denoiser inside the plug-and-play iteration
        physics = Physics(ops.build("tomography", image_shape=(16, 16), angles=8))
        recon = models.build_kind(kind, prior=None, iterations=2, depth=2, base_channels=4, tune=False)
    else:
        physics = Physics(ops.build("tomography", image_shape=(16, 16), angles=8))
        recon = models.build_kind(kind, iterations=2, channels=4, depth=2)
    step = Dist(rank=0, world=2).wrap(recon, "from_input")
    assert isinstance(step, torch.nn.parallel.DistributedDataParallel)
    x = torch.rand(2, 1, 16, 16)
    y = recon.preprocess(physics.operator(x), physics)
    opt = torch.optim.SGD(recon.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        ((step(y, physics) - x) ** 2).mean().backward()
        opt.step()
    assert all(p.grad is not None for p in recon.parameters() if p.requires_grad)


def test_nothing_to_train_is_not_wrapped():
    """A reconstructor without trainable parameters (PnP: a fixed denoiser) runs as it is."""
    from invmap.training.distributed import Dist

    frozen = torch.nn.Conv2d(1, 1, 3).requires_grad_(False)
    assert not isinstance(Dist(rank=0, world=2).wrap(frozen), torch.nn.parallel.DistributedDataParallel)
