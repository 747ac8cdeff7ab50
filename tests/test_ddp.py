"""Our modules under ``DistributedDataParallel`` (gloo, CPU, two processes): after two SGD steps, each
step's all-reduced gradients equal those of one process training on the concatenated batch."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import kernels
import kernels.nn as knn

WORLD = 2
STEPS = 2
TIME_LIMIT_S = 120.0


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        knn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        knn.MaxPool2d(2),
        knn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise
        knn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 2),
    ).double()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """inputs ``(4, 3, 6, 6)`` and targets ``(4, 2)``, split evenly over the ranks."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(2 * WORLD, 3, 6, 6, generator=g, dtype=torch.float64),
            torch.randn(2 * WORLD, 2, generator=g, dtype=torch.float64))


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[list[torch.Tensor]]:
    """``STEPS`` SGD steps on the mean squared error; returns each step's gradients."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    grads = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        grads.append([p.grad.detach().clone() for p in model.parameters()])
        optimizer.step()
    return grads


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = torch.nn.parallel.DistributedDataParallel(_model())
        x, y = _batch()
        shard = slice(2 * rank, 2 * rank + 2)
        torch.save(_train(model, x[shard], y[shard]), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")
@pytest.mark.skipif(not kernels.INTERPRETING, reason="a CPU test (gloo, CPU tensors): the kernels run on the GPU here")
def test_ddp_gradients_match_single_process(tmp_path: Path) -> None:
    context = mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIME_LIMIT_S
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIME_LIMIT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()

    expected = _train(_model(), *_batch())
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for step_got, step_expected in zip(got, expected, strict=True):
            for g, e in zip(step_got, step_expected, strict=True):
                torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)
