"""Data-parallel training over MPI: the API alone (a world of 1) and real jobs under
``mpiexec -n 2`` and ``-n 3`` (skipped, saying why, where mpi4py/MPICH are missing;
``pip install ".[test]"`` brings them)."""
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import neuropil
from neuropil import distributed as dist
from neuropil import nn
from neuropil.training.data import EpochPlan

HERE = pathlib.Path(__file__).resolve().parent
WORKER = HERE / "_mpi_worker.py"
ROOT = HERE.parent


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install '.[mpi]' or '.[test]')"
    near = pathlib.Path(sys.executable).parent / "mpiexec"
    exe = str(near) if near.exists() else shutil.which("mpiexec")
    if exe is None:
        return None, "no mpiexec found (pip install mpich)"
    return exe, ""


MPIEXEC, WHY = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason=WHY)


def run_mpi(n, *args, timeout=60, script=WORKER, check=True, **extra_env):
    env = dict(os.environ, **extra_env)
    env.pop("NEUROPIL_NUM_THREADS", None)
    cmd = [MPIEXEC, "-n", str(n), sys.executable, str(script), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(HERE))
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- a world of one: the API without MPI ---------------------------------------------

def test_world_of_one_without_a_launcher():
    assert dist.launched_by_mpi() == 0 or dist.is_initialized()
    dist.init()
    if dist.launched_by_mpi():
        pytest.skip("the suite itself runs under an MPI launcher")
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.local_size()) == (0, 1, 0, 1)
    assert not dist.is_distributed()
    model = nn.Sequential(nn.Linear(3, 2))
    before = model.state_dict()
    dist.broadcast_parameters(model)
    model.parameters()[0].grad[:] = 2.0
    dist.allreduce_gradients(model)
    np.testing.assert_array_equal(model.parameters()[0].grad, 2.0)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    a = np.arange(4.0)
    assert dist.allreduce(a, "average") is a and np.array_equal(a, np.arange(4.0))
    assert dist.broadcast_object({"x": 1}) == {"x": 1}
    assert dist.allgather_object(3) == [3]


def test_api_rejects_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        dist.init("tcp")
    with pytest.raises(ValueError, match="root"):
        dist.broadcast_parameters(nn.Linear(2, 2), root=5)
    with pytest.raises(TypeError, match="Module"):
        dist.broadcast_parameters(np.zeros(3))
    with pytest.raises(ValueError, match="op"):
        dist.allreduce(np.zeros(3), "mean")
    with pytest.raises(ValueError, match="contiguous"):
        dist.allreduce(np.zeros((4, 4))[:, 1])
    with pytest.raises(TypeError, match="ndarray"):
        dist.allreduce([1.0, 2.0])


def test_gradient_buckets_are_views_that_keep_the_gradients():
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 40), nn.ReLU(), nn.Linear(40, 30), nn.Linear(30, 2))
    for p in model.parameters():
        p.grad[:] = np.random.default_rng(p.size).standard_normal(p.shape)
    grads = [p.grad.copy() for p in model.parameters()]
    r = dist.GradientReducer(model.parameters(), bucket_bytes=4000, extras=2)
    assert r.num_buckets >= 3
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)
    # layers writing into p.grad write into the buckets
    model.parameters()[0].grad[0, 0] = 123.0
    flat = np.concatenate([b["grads"] for b in r.buckets])
    assert 123.0 in flat
    r.start(scale=2.0)
    extras = r.finish([1.5, 3.0])
    np.testing.assert_array_equal(extras, [1.5, 3.0])
    assert model.parameters()[0].grad[0, 0] == 246.0
    # a frozen parameter is left out; zero_grad then a rebuild keeps working
    model.parameters()[1].requires_grad = False
    r2 = dist.reducer_for(model)
    assert all(p is not model.parameters()[1] for p in r2.params)
    model.zero_grad()
    r2.start()
    r2.finish()
    assert not any(p.grad.any() for p in r2.params)


@pytest.mark.parametrize("n,world,b", [(77, 2, 4), (113, 3, 4), (10, 3, 4), (1, 3, 2),
                                       (64, 4, 8), (7, 1, 3)])
def test_epoch_plan_covers_every_sample_once(n, world, b):
    order = np.random.default_rng(0).permutation(n)
    plans = [EpochPlan(n, b, world, r) for r in range(world)]
    assert len({p.steps for p in plans}) == 1
    taken = []
    for k in range(plans[0].steps):
        sizes = plans[0].sizes(k)
        assert sum(sizes) == min(world * b, n - k * world * b) and max(sizes) - min(sizes) <= 1
        step = []
        for r, p in enumerate(plans):
            lo, hi = p.bounds(k)
            assert hi - lo == sizes[r]
            step.extend(order[lo:hi])
        # the samples of one step of one process with batch world*b
        assert sorted(step) == sorted(order[k * world * b:(k + 1) * world * b])
        taken.extend(step)
    assert sorted(taken) == list(range(n))


# -- real jobs ---------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_ranks_stay_identical_and_match_one_process(ranks):
    """After every step all ranks hold bitwise the same parameters and optimizer
    state, and R ranks x batch b equal one process x batch R*b after 10 steps (MLP,
    CNN, LSTM, a graph model with a skip; SGD and Adam; the last step split unevenly, a
    rank with no sample)."""
    proc = run_mpi(ranks, "equivalence")
    assert f"OK equivalence on {ranks} ranks" in proc.stdout


@needs_mpi
def test_overlapped_allreduce_gives_the_same_training():
    proc = run_mpi(2, "equivalence", NEUROPIL_ALLREDUCE_OVERLAP="1")
    assert "OK equivalence on 2 ranks" in proc.stdout


def test_gradient_ready_hooks_mark_layers_as_backward_finishes_them():
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    r = dist.GradientReducer(model.parameters(), bucket_bytes=1)  # a bucket per parameter
    order = []
    mark = r.mark_ready
    r.mark_ready = lambda p: (order.append(p), mark(p))
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    with dist.gradient_ready_hooks(model, r) as reset:
        for _ in range(2):
            reset()
            r.start()
            order.clear()
            model.eval()
            model.forward(x)  # an eval pass (validation) in between must not confuse it
            model.train()
            out = model.forward(x)
            assert order == []
            model.backward_params(np.ones_like(out))
            first, last = model[0], model[2]
            assert order == [last.weight, last.bias, first.weight, first.bias]
            r.finish()
    assert "forward" not in model[0].__dict__ and "backward" not in model[2].__dict__


@needs_mpi
def test_an_exception_on_one_rank_ends_the_job():
    t0 = time.monotonic()
    proc = run_mpi(2, "raise", timeout=30, check=False)
    assert time.monotonic() - t0 < 30
    assert proc.returncode != 0
    assert "NOT REACHED" not in proc.stdout
    assert "[rank 1]" in proc.stderr and "rank 1 fails at step 3 on purpose" in proc.stderr
    assert "Traceback" in proc.stderr


@needs_mpi
def test_threads_default_to_the_cores_per_rank():
    proc = run_mpi(2, "threads")
    cores = len(os.sched_getaffinity(0))
    want = max(1, cores // 2)
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank"))
    assert lines == [f"rank {r} of 2 local {r} of 2 threads {want}" for r in range(2)]


def _same_run(a, b):
    wa, wb = neuropil.load(a), neuropil.load(b)
    assert list(wa) == list(wb)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k
    assert pathlib.Path(a + ".json").read_text() == pathlib.Path(b + ".json").read_text()
    assert pathlib.Path(a + ".csv").read_text() == pathlib.Path(b + ".csv").read_text()


def _resume_case(tmp_path, runner):
    """An uninterrupted run; a run SIGKILLed at epoch 1 batch 5 (last checkpoint: after
    batch 4); the same command again, which resumes: same weights, history, CSV log."""
    a, b = str(tmp_path / "a.st"), str(tmp_path / "b.st")
    ckpt = str(tmp_path / "b.ckpt")
    runner("resume", tmp_path / "a.ckpt", a)
    killed = runner("resume", ckpt, b, 1, 5, check=False)
    assert killed.returncode != 0 and os.path.exists(ckpt) and not os.path.exists(b)
    runner("resume", ckpt, b)
    _same_run(a, b)
    assert not os.path.exists(ckpt)  # removed after the run ended normally


def test_resume_after_sigkill_single_process(tmp_path):
    def runner(*args, check=True):
        proc = subprocess.run([sys.executable, str(WORKER), *map(str, args)],
                              capture_output=True, text=True, timeout=60, cwd=str(HERE))
        if check and proc.returncode != 0:
            pytest.fail(proc.stdout + proc.stderr)
        return proc
    _resume_case(tmp_path, runner)


@needs_mpi
def test_resume_after_sigkill_under_mpiexec(tmp_path):
    _resume_case(tmp_path, lambda *a, check=True: run_mpi(2, *a, check=check))


@needs_mpi
def test_example_runs_data_parallel_unchanged():
    pytest.importorskip("sklearn")
    proc = run_mpi(2, "--smoke", script=ROOT / "examples" / "digits_mlp.py", timeout=120)
    assert proc.stdout.count("test accuracy") == 2  # one result per rank, the same
    results = [line.split(" (")[0] for line in proc.stdout.splitlines()
               if line.startswith("test accuracy")]
    assert len(set(results)) == 1
