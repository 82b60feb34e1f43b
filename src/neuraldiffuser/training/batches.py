"""Training batches whose content depends only on (seed, stage, epoch, step).

Every process builds the whole global batch (it is only data), applies voxel mixup with draws
derived from (seed, step), and then takes its own contiguous slice. So the result does not depend
on how many processes share the batch, and a resumed run sees exactly the batches it would have seen.
In multi-subject pretraining each global batch holds ``batch // n_subjects`` trials of every subject,
concatenated subject after subject (method notes §4.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import SubjectData
from ..data.normalization import VoxelScaler
from ..errors import ConfigError
from ..targets.store import TargetStore

HeadKey = tuple[str, "int | None"]  # (store key, g layer or None)


def human_bytes(n: float) -> str:
    return (
        f"{n / 2**30:.2f} GB"
        if n >= 2**28
        else f"{n / 2**20:.1f} MB"
        if n >= 2**20
        else f"{n / 2**10:.0f} kB"
    )


def step_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


@dataclass
class Pool:
    """One subject's training trials: betas rows, their images, and (when preloaded) scaled voxels."""

    name: str
    subject: SubjectData
    scaler: VoxelScaler
    rows: np.ndarray
    images: np.ndarray
    voxels: np.ndarray | None = None

    def read(self, idx: np.ndarray) -> np.ndarray:
        if self.voxels is not None:
            return self.voxels[idx]
        return self.scaler.transform(self.subject.read(self.rows[idx]))


class TrainingData:
    """The pools of one stage and the targets of their images, with the deterministic batch plan.

    Arrays that fit ``preload_gb`` are held in RAM (``preload``), smallest first: a batch then costs a
    gather instead of HDF5 reads; the rest is read per batch (sorted rows, only the layers a head uses).
    Preloaded or not, a batch holds the same values.
    """

    def __init__(
        self,
        pools: list[Pool],
        store: TargetStore,
        heads: dict[str, HeadKey],
        preload_gb: float = 4.0,
        preload: bool = True,
    ):
        self.pools, self.store, self.heads = pools, store, dict(heads)
        self.preload_gb = float(preload_gb)
        self._targets: dict[str, np.ndarray] = {}  # head -> (images, ...) float32; shared with views
        self._row_of: dict[int, int] = {}
        self.preload_note = ""
        if preload:
            self.preload()

    def restrict(self, heads: list[str]) -> TrainingData:
        """The same pools and preloaded arrays, serving only ``heads``: one read of the
        data for every model."""
        missing = [h for h in heads if h not in self.heads]
        if missing:
            raise KeyError(f"no data for heads {missing}")
        out = object.__new__(TrainingData)
        out.__dict__.update(self.__dict__)
        out.heads = {h: self.heads[h] for h in heads}
        return out

    def head_shape(self, head: str) -> tuple[int, ...]:
        key, layer = self.heads[head]
        shape = self.store.shape(key)
        return shape[1:] if layer is not None else shape

    def _images(self) -> np.ndarray:
        return np.unique(np.concatenate([p.images for p in self.pools]))

    def preload(self) -> str:
        """Hold in RAM what fits ``preload_gb`` (betas of each pool, then this view's heads, smallest first),
        drop preloaded heads this view does not serve; returns (and keeps) a one-line note of what it did."""
        images = self._images()
        if not self._row_of:
            self._row_of.update({int(im): i for i, im in enumerate(images)})
        for h in [h for h in self._targets if h not in self.heads]:
            del self._targets[h]
        parts = [(len(p.rows) * p.subject.n_voxels * 4, f"betas {p.name}", p) for p in self.pools]
        parts += [(len(images) * int(np.prod(self.head_shape(h))) * 4, f"target {h}", h) for h in self.heads]
        in_ram = lambda what: what.voxels is not None if isinstance(what, Pool) else what in self._targets  # noqa: E731
        held = sum(n for n, _, what in parts if in_ram(what))
        budget, loaded, lazy = self.preload_gb * 2**30, [], []
        for n, name, what in sorted(parts, key=lambda x: x[0]):
            if in_ram(what):
                loaded.append(f"{name} {human_bytes(n)}")
            elif held + n <= budget:
                self._load_pool(what) if isinstance(what, Pool) else self._load_head(what, images)
                held += n
                loaded.append(f"{name} {human_bytes(n)}")
            else:
                lazy.append(f"{name} {human_bytes(n)}")
        self.preload_note = (
            f"data in RAM (train.preload_gb={self.preload_gb:g}): {', '.join(loaded) or 'nothing'}"
            + (f"; read from disk per batch (over the budget): {', '.join(lazy)}" if lazy else "")
        )
        return self.preload_note

    def release(self) -> None:
        """Forget every preloaded array (another stage's data is about to be loaded)."""
        for p in self.pools:
            p.voxels = None
        self._targets.clear()

    def _load_pool(self, p: Pool, block: int = 512) -> None:
        out = np.empty(
            (len(p.rows), p.subject.n_voxels), dtype=np.float32
        )  # filled block by block: no 3x peak
        for a in range(0, len(p.rows), block):
            out[a : a + block] = p.scaler.transform(
                p.subject.read(p.rows[a : a + block])
            )  # same values as a batch read
        p.voxels = out

    def _load_head(self, head: str, images: np.ndarray, block: int = 256) -> None:
        key, layer = self.heads[head]
        out = np.empty(
            (len(images), *self.head_shape(head)), dtype=np.float32
        )  # float32 (also for fp16 g): a batch is then a bare gather
        rows = self.store.rows_of(images)
        order = np.argsort(rows, kind="stable")
        for a in range(0, len(images), block):
            part = order[a : a + block]
            if (
                np.diff(part) == 1
            ).all():  # the store holds these images in this order: read straight into place
                self.store.get(key, rows[part], layer, out=out[part[0] : part[-1] + 1])
            else:
                out[part] = self.store.get(key, rows[part], layer, dtype=None)
        self._targets[head] = out

    def targets_of(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """float32 targets of each head for these images."""
        idx = None
        out, cache = {}, {}
        for head, (key, layer) in self.heads.items():
            if head in self._targets:
                if idx is None:
                    idx = np.array([self._row_of[int(i)] for i in images], dtype=np.int64)
                out[head] = self._targets[head][idx]
                continue
            if (key, layer) not in cache:
                cache[key, layer] = self.store.get_images(key, images, layer)
            out[head] = cache[key, layer]
        return out

    @property
    def n_trials(self) -> int:
        return sum(len(p.rows) for p in self.pools)

    def per_subject(self, batch: int) -> int:
        k = batch // len(self.pools)
        if k < 1:
            raise ConfigError(
                f"train.batch_size {batch} is smaller than the {len(self.pools)} subjects it is split across",
                fix="raise train.batch_size",
            )
        return k

    def epoch_plan(self, seed: int, stage: int, epoch: int, steps: int, per_subject: int) -> list[np.ndarray]:
        """For each pool, (steps, per_subject) trial indices: shuffles derived from (seed,
        stage, epoch, pool)."""
        plan = []
        for i, p in enumerate(self.pools):
            need, chunks, cycle = steps * per_subject, [], 0
            while sum(len(c) for c in chunks) < need:
                chunks.append(step_rng(seed, stage, epoch, i, cycle).permutation(len(p.rows)))
                cycle += 1
            plan.append(np.concatenate(chunks)[:need].reshape(steps, per_subject))
        return plan

    def global_batch(self, plan: list[np.ndarray], step_in_epoch: int) -> dict:
        """{"names": [(subject, n)], "voxels": [per-subject arrays], "images": (B,), "targets":
        {head: (B, ...)}}."""
        voxels, images, names = [], [], []
        for p, idx in zip(self.pools, plan, strict=True):
            rows = idx[step_in_epoch]
            voxels.append(p.read(rows))
            images.append(p.images[rows])
            names.append((p.name, len(rows)))
        images_all = np.concatenate(images)
        return {
            "names": names,
            "voxels": voxels,
            "images": images_all,
            "targets": self.targets_of(images_all),
        }
