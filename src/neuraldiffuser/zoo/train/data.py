"""Image + caption pairs for the zoo trainers, from any dataset ``open_dataset`` reads.

The whole pool is held in memory as uint8 (30 000 scenes at 64 px are 370 MB) and every caption is
tokenised once, so a training step is pure tensor indexing. Batches are drawn with an explicit
``torch.Generator`` whose state is checkpointed, which makes resumed runs exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError


@dataclass
class ImageCaptionData:
    """``images`` uint8 (N, H, W, 3); ``captions[i]`` the captions of image i; ``tokens`` filled by
    :meth:`tokenize`."""

    images: np.ndarray
    captions: list[list[str]]
    source: str = ""
    tokens: torch.Tensor | None = None  # (total captions, max_length) int64
    offsets: np.ndarray | None = None  # (N + 1,): captions of image i are tokens[offsets[i]:offsets[i+1]]

    def __post_init__(self) -> None:
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise DataError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {x.shape}", where=self.source)
        if x.shape[1] != x.shape[2] or x.shape[1] % 8:
            raise DataError(
                f"images must be square with a side divisible by 8, got {x.shape[1]}×{x.shape[2]}",
                where=self.source,
                fix="adapt a trained stack instead (`zoo train --init-from "
                "builtin:insilico-64`: any size is padded and resized to it)",
            )
        if len(self.captions) != len(x):
            raise DataError(f"{len(self.captions)} caption lists for {len(x)} images", where=self.source)
        empty = [
            i
            for i, c in enumerate(self.captions)
            if not c or not all(isinstance(s, str) and s.strip() for s in c)
        ]
        if empty:
            raise DataError(
                f"images {empty[:5]} have no (or an empty) caption",
                where=self.source,
                fix="every image needs at least one non-empty caption",
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])

    @classmethod
    def from_dataset(cls, path: str | Path, limit: int | None = None, chunk: int = 4096) -> ImageCaptionData:
        """Read every image (or the first ``limit``) and its captions from a dataset folder."""
        from ...data import open_dataset
        from ...utils.progress import progress_bar

        ds = open_dataset(path)
        n = len(ds.images) if limit is None else min(limit, len(ds.images))
        if n == 0:
            raise DataError("the dataset has no images", where=str(path))
        h, w = ds.images.size
        images = np.empty((n, h, w, 3), dtype=np.uint8)
        with progress_bar("read images", n) as bar:
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                images[start:stop] = ds.images.get(np.arange(start, stop))
                bar.advance(stop - start)
        return cls(images, [ds.captions_of(i) for i in range(n)], source=str(path))

    def tokenize(self, tokenizer, max_length: int) -> None:
        """Tokenise every caption once (padded with the end token to ``max_length``, truncated)."""
        flat = [c for caps in self.captions for c in caps]
        ids = tokenizer(
            flat, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
        ).input_ids
        self.tokens = ids.long()
        self.offsets = np.concatenate([[0], np.cumsum([len(c) for c in self.captions])])

    def sample(self, gen: torch.Generator, batch_size: int) -> torch.Tensor:
        """Random image indices (with replacement across steps, without within a step when possible)."""
        n = len(self)
        if batch_size <= n:
            return torch.randperm(n, generator=gen)[:batch_size]
        return torch.randint(0, n, (batch_size,), generator=gen)

    def pixels(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` as float (B, 3, H, W) in [0, 1]."""
        x = torch.from_numpy(self.images[idx.numpy()]).permute(0, 3, 1, 2)
        return x.float() / 255.0

    def random_tokens(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One randomly chosen caption per image, as token ids (B, max_length)."""
        if self.tokens is None or self.offsets is None:
            raise RuntimeError("call tokenize() first")
        lo = torch.from_numpy(self.offsets[idx.numpy()])
        count = torch.from_numpy(self.offsets[idx.numpy() + 1]) - lo
        pick = (torch.rand(len(idx), generator=gen, dtype=torch.float64) * count).long().clamp(max=count - 1)
        return self.tokens[lo + pick]
