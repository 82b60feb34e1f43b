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
    """The pools of one stage and the targets of their images, with the deterministic batch plan."""

    def __init__(self, pools: list[Pool], store: TargetStore, heads: dict[str, HeadKey], preload_gb: float = 4.0):
        self.pools, self.store, self.heads = pools, store, dict(heads)
        self._targets: dict[str, np.ndarray] | None = None
        self._row_of: dict[int, int] = {}
        if self._bytes() <= preload_gb * 2**30:
            self._preload()

    def _bytes(self) -> int:
        vox = sum(len(p.rows) * p.subject.n_voxels * 4 for p in self.pools)
        uniq = len(np.unique(np.concatenate([p.images for p in self.pools])))
        per_image = sum(int(np.prod(self.head_shape(h))) * 4 for h in self.heads)
        return vox + uniq * per_image

    def restrict(self, heads: list[str]) -> TrainingData:
        """The same pools and (preloaded) arrays, serving only ``heads``: one read of the data for every model."""
        missing = [h for h in heads if h not in self.heads]
        if missing:
            raise KeyError(f"no data for heads {missing}")
        out = object.__new__(TrainingData)
        out.pools, out.store, out._row_of = self.pools, self.store, self._row_of
        out.heads = {h: self.heads[h] for h in heads}
        out._targets = None if self._targets is None else {h: self._targets[h] for h in heads}
        return out

    def head_shape(self, head: str) -> tuple[int, ...]:
        key, layer = self.heads[head]
        shape = self.store.shape(key)
        return shape[1:] if layer is not None else shape

    def _preload(self) -> None:
        for p in self.pools:
            p.voxels = p.scaler.transform(p.subject.read(p.rows))
        images = np.unique(np.concatenate([p.images for p in self.pools]))
        self._row_of = {int(im): i for i, im in enumerate(images)}
        self._targets = {}
        for key in {k for k, _ in self.heads.values()}:
            data = self.store.get_images(key, images)
            for head, (k, layer) in self.heads.items():
                if k == key:
                    self._targets[head] = np.ascontiguousarray(data if layer is None else data[:, layer])

    def targets_of(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self._targets is not None:
            idx = np.array([self._row_of[int(i)] for i in images], dtype=np.int64)
            return {h: t[idx] for h, t in self._targets.items()}
        out, cache = {}, {}
        for head, (key, layer) in self.heads.items():
            if key not in cache:
                cache[key] = self.store.get_images(key, images)
            out[head] = cache[key] if layer is None else cache[key][:, layer]
        return out

    @property
    def n_trials(self) -> int:
        return sum(len(p.rows) for p in self.pools)

    def per_subject(self, batch: int) -> int:
        k = batch // len(self.pools)
        if k < 1:
            raise ConfigError(f"train.batch_size {batch} is smaller than the {len(self.pools)} subjects it is split across", fix="raise train.batch_size")
        return k

    def epoch_plan(self, seed: int, stage: int, epoch: int, steps: int, per_subject: int) -> list[np.ndarray]:
        """For each pool, (steps, per_subject) trial indices: shuffles derived from (seed, stage, epoch, pool)."""
        plan = []
        for i, p in enumerate(self.pools):
            need, chunks, cycle = steps * per_subject, [], 0
            while sum(len(c) for c in chunks) < need:
                chunks.append(step_rng(seed, stage, epoch, i, cycle).permutation(len(p.rows)))
                cycle += 1
            plan.append(np.concatenate(chunks)[:need].reshape(steps, per_subject))
        return plan

    def global_batch(self, plan: list[np.ndarray], step_in_epoch: int) -> dict:
        """{"names": [(subject, n)], "voxels": [per-subject arrays], "images": (B,), "targets": {head: (B, ...)}}."""
        voxels, images, names = [], [], []
        for p, idx in zip(self.pools, plan, strict=True):
            rows = idx[step_in_epoch]
            voxels.append(p.read(rows))
            images.append(p.images[rows])
            names.append((p.name, len(rows)))
        images_all = np.concatenate(images)
        return {"names": names, "voxels": voxels, "images": images_all, "targets": self.targets_of(images_all)}
