"""Reconstruction in several local CPU processes, without a launcher.

The sampler's small UNet calls are dominated by per-operation overhead, so on a CPU W processes of
one thread each finish sooner than one process with W threads. Each worker takes every W-th image
(the same ``Shard`` split ``accelerate launch`` gives) and writes into the same setting folders, so
the result is identical to a single-process run. Worker 0 draws the progress bars.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config.schema import Config
from ..errors import ConfigError, NeuralDiffuserError


def _worker(
    index: int,
    count: int,
    barrier,
    source: str | None,
    out: str,
    config: Config,
    dataset: str | None,
    oracle: str | None,
    method: str,
    sweep: dict,
    images: list[int] | None,
    limit: int | None,
    overwrite: bool,
) -> None:
    import torch

    torch.set_num_threads(1)
    if index:
        os.environ["NEURALDIFFUSER_PROGRESS"] = "0"
    from .runner import Shard, make_job, reconstruct

    job = make_job(source, config, oracle=oracle, dataset=dataset, images=images, limit=limit)
    reconstruct(
        job,
        out,
        config,
        method=method,
        sweep=sweep,
        overwrite=overwrite,
        shard=Shard(index, count, barrier.wait),
        device="cpu",
    )


def reconstruct_in_processes(
    source: str | Path | None,
    out: str | Path,
    config: Config,
    workers: int,
    dataset: str | Path | None = None,
    oracle: str | Path | None = None,
    method: str = "neuraldiffuser",
    sweep: Mapping[str, Sequence[float]] | None = None,
    images: Sequence[int] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Run ``reconstruct`` for every setting in ``workers`` spawned processes; returns the setting folders."""
    from .methods import get_method
    from .runner import plan_settings, setting_folder

    if workers < 1:
        raise ConfigError(f"workers must be ≥ 1, got {workers}", fix="give 1 (this process) or more")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    opt = lambda p: None if p is None else str(p)  # noqa: E731
    args = (
        opt(source),
        str(out),
        config,
        opt(dataset),
        opt(oracle),
        method,
        dict(sweep or {}),
        None if images is None else list(images),
        limit,
        overwrite,
    )
    procs = [
        ctx.Process(target=_worker, args=(i, workers, barrier, *args), name=f"reconstruct-{i}")
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:  # finished images are kept (one record per image); a rerun continues
        for p in procs:
            p.terminate()
        raise
    failed = [p.name for p in procs if p.exitcode]
    if failed:
        barrier.abort()
        raise NeuralDiffuserError(
            f"reconstruction worker(s) {', '.join(failed)} failed (traceback above)",
            where=str(out),
            fix="rerun: finished images are kept; or run `neuraldiffuser "
            "reconstruct` in one process to see the error alone",
        )
    chosen = get_method(method)
    return [
        setting_folder(out, chosen, s)
        for s in plan_settings(chosen, config, sweep, oracle=oracle is not None)
    ]
