"""Keeping the accelerator fed: the next step's inputs are made in a reader thread while
the current step runs.

``prefetched`` runs ``make(step + 1)`` (and up to ``depth`` steps ahead) in one background thread while the
caller works on ``step`` (same items, in the same order: a thread, not a reorder) and says how long the caller
waited for each item. ``DeviceFeeder`` moves a step's host tensors to the device from that thread: under CUDA
from pinned memory on a side stream, so that the copy runs on the copy engine during the previous step's
kernels; the step's stream waits on an event (the GPU waits, not the Python thread). Elsewhere (CPU, MPS)
tensors stay where they are and the step moves them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch


def prefetched(
    make: Callable[[int], Any], start: int, total: int, depth: int = 3
) -> Iterator[tuple[int, Any, float]]:
    """(step, make(step), seconds the caller waited for it) for step in [start, total); up to ``depth`` items
    are made ahead (in order, by one thread), so that a reader that loses its CPU for a while catches up.
    ``depth`` 0 makes each item in the caller's thread when it is needed (the same items)."""
    if depth <= 0:
        for step in range(start, total):
            t0 = time.perf_counter()
            item = make(step)
            yield step, item, time.perf_counter() - t0
        return
    with ThreadPoolExecutor(1, thread_name_prefix="batches") as reader:
        ahead = deque(reader.submit(make, s) for s in range(start, min(start + max(depth, 1), total)))
        for step in range(start, total):
            t0 = time.perf_counter()
            item = ahead.popleft().result()
            waited = time.perf_counter() - t0
            if step + len(ahead) + 1 < total:
                ahead.append(reader.submit(make, step + len(ahead) + 1))
            yield step, item, waited


def _tensors(tree: Any) -> Iterator[torch.Tensor]:
    if torch.is_tensor(tree):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _tensors(v)
    elif isinstance(tree, list | tuple):
        for v in tree:
            yield from _tensors(v)


def _map(tree: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if torch.is_tensor(tree):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: _map(v, fn) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_map(v, fn) for v in tree)
    return tree


class DeviceFeeder:
    """``send`` (reader thread) starts the host→device copy of a tree of tensors; ``receive`` (step thread)
    makes the step's stream wait for it. A no-op pair except under CUDA."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def send(self, tree: Any) -> tuple[Any, Any]:
        if self.stream is None:
            return tree, None
        with torch.cuda.stream(self.stream):
            moved = _map(tree, lambda t: t.pin_memory().to(self.device, non_blocking=True))
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return moved, ready

    def receive(self, tree: Any, ready: Any) -> Any:
        if ready is None:
            return tree
        current = torch.cuda.current_stream(self.device)
        current.wait_event(ready)
        for t in _tensors(
            tree
        ):  # made on the side stream, used on this one: keep their memory until it is done
            t.record_stream(current)
        return tree
