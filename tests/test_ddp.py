"""Two-process CPU DistributedDataParallel (gloo) over a convext model: the
gradients are all-reduced (equal on both ranks) and equal to those of a single
process on the whole batch; so are the parameters after one SGD step."""
import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import convext
from conftest import free_port

WORLD_SIZE = 2
BATCH = 8
JOIN_TIMEOUT_S = 150


def build_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(6, 6, 3, stride=2, groups=3), nn.ReLU(),
        nn.Flatten(2), nn.Conv1d(6, 4, 2, padding="same"), nn.Flatten(), nn.Linear(4 * 9, 2))
    return convext.convert(model).double()


def batch():
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(BATCH, 3, 7, 7, generator=gen, dtype=torch.float64),
            torch.randn(BATCH, 2, generator=gen, dtype=torch.float64))


def step(model, x, y):
    """One forward/backward/SGD step; returns (grads, params after the step)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.mse_loss(model(x), y).backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    opt.step()
    return grads, [p.detach().clone() for p in model.parameters()]


def _worker(rank, port, out_dir):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE,
                            timeout=datetime.timedelta(seconds=60))
    try:
        model = build_model()
        assert type(model[0]) is convext.Conv2d
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = batch()
        shard = slice(rank * BATCH // WORLD_SIZE, (rank + 1) * BATCH // WORLD_SIZE)
        grads, params = step(ddp, x[shard], y[shard])
        torch.save({"grads": grads, "params": params}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_two_ranks(out_dir):
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, str(out_dir)))
             for rank in range(WORLD_SIZE)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(JOIN_TIMEOUT_S)
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join(10)
    assert not hung, f"DDP workers did not finish within {JOIN_TIMEOUT_S}s"
    assert [p.exitcode for p in procs] == [0] * WORLD_SIZE
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with gloo is not available in this build")
def test_ddp_two_processes(tmp_path):
    rank0, rank1 = run_two_ranks(tmp_path)
    ref_grads, ref_params = step(build_model(), *batch())
    for name, a, b, ref in zip(("grads", "params"), (rank0["grads"], rank0["params"]),
                               (rank1["grads"], rank1["params"]), (ref_grads, ref_params)):
        for i, (g0, g1, r) in enumerate(zip(a, b, ref)):
            torch.testing.assert_close(g0, g1, rtol=0, atol=0, msg=f"{name}[{i}] differ by rank")
            torch.testing.assert_close(g0, r, rtol=1e-10, atol=1e-12,
                                       msg=f"{name}[{i}] differ from one process")
