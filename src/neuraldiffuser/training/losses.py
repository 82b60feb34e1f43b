"""Training losses of the decoders (method notes §4.3), written from their definitions.

All contrastive losses take L2-normalised, flattened vectors ``preds`` (B, d) and ``targets`` (B, d)
and are symmetrised over both directions (brain→target and target→brain).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def flat_normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.flatten(1).float(), dim=-1)


def mixco_draws(
    batch: int, rng: np.random.Generator, beta: float = 0.15, prob: float = 0.5
) -> dict[str, np.ndarray]:
    """Random draws of voxel mixup for one group of ``batch`` samples: a partner permutation, the mixing
    weight λ ~ Beta(beta, beta) and which samples are mixed (probability ``prob``); λ = 1 for the rest."""
    perm = rng.permutation(batch)
    lam = rng.beta(beta, beta, size=batch).astype(np.float32)
    select = rng.random(batch) < prob
    lam[~select] = 1.0
    return {"perm": perm, "lam": lam, "select": select}


def mixco_apply(voxels: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """x_i ← λ_i x_i + (1 − λ_i) x_perm(i) (λ = 1 leaves a sample unmixed)."""
    lam = lam.to(voxels.dtype).view(-1, *([1] * (voxels.ndim - 1)))
    return lam * voxels + (1 - lam) * voxels[perm]


def global_partners(perms: list[torch.Tensor], offset: bool = True) -> torch.Tensor:
    """Concatenate per-subject partner permutations into indices over the whole (concatenated) batch.

    Each subject's voxels are mixed within its own group, so its partner i → p(i) sits at row start + p(i) of
    the global batch (``offset``). The reference concatenated the local indices unchanged, so the soft labels
    of every subject but the first point at the first subject's rows (``offset=False`` reproduces that)."""
    out, start = [], 0
    for p in perms:
        out.append(p + start if offset else p)
        start += len(p)
    return torch.cat(out)


def mixco_targets(perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Soft labels of BiMixCo: λ_i on the sample's own target and 1 − λ_i on its partner's."""
    n = len(perm)
    probs = torch.diag(lam.float())
    probs[torch.arange(n, device=perm.device), perm] += 1 - lam.float()
    return probs


def bimixco_loss(
    preds: torch.Tensor,
    targets: torch.Tensor,
    perm: torch.Tensor,
    lam: torch.Tensor,
    temperature: float = 0.006,
) -> torch.Tensor:
    """Bidirectional MixCo: soft cross-entropy of preds·targetsᵀ/τ against the mixup soft labels, both ways.

    (The soft label matrix adds 1 − λ on the partner, so a sample drawn as its own partner keeps a total
    weight of 1; the reference's assignment would zero it in that rare case.)"""
    logits = preds @ targets.T / temperature
    probs = mixco_targets(perm, lam).to(logits.device)
    fwd = -(logits.log_softmax(-1) * probs).sum(-1).mean()
    bwd = -(logits.T.log_softmax(-1) * probs.T).sum(-1).mean()
    return (fwd + bwd) / 2


def soft_clip_loss(preds: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """SoftCLIP: the student logits preds·targetsᵀ/τ are matched to the teacher distribution
    softmax(targets·targetsᵀ/τ), in both directions."""
    teacher = (targets @ targets.T / temperature).softmax(-1)
    logits = preds @ targets.T / temperature
    fwd = -(logits.log_softmax(-1) * teacher).sum(-1).mean()
    bwd = -(logits.T.log_softmax(-1) * teacher).sum(-1).mean()
    return (fwd + bwd) / 2


def cosine_anneal(start: float, end: float, steps: int) -> np.ndarray:
    """``steps`` values from ``start`` to ``end`` along half a cosine (the SoftCLIP temperature per epoch)."""
    if steps <= 1:
        return np.array([start], dtype=np.float64)[:steps] if steps == 1 else np.zeros(0)
    i = np.arange(steps)
    return end + (start - end) / 2 * (1 + np.cos(math.pi * i / (steps - 1)))


class ContrastiveSchedule:
    """Which contrastive loss and temperature each epoch uses: BiMixCo for the first
    ``int(fraction · epochs)`` epochs, then SoftCLIP with a temperature annealed from start to end."""

    def __init__(
        self, epochs: int, fraction: float, mixco_temperature: float, soft_start: float, soft_end: float
    ):
        self.epochs = int(epochs)
        self.mixco_epochs = int(fraction * epochs)
        self.mixco_temperature = float(mixco_temperature)
        self.temps = cosine_anneal(soft_start, soft_end, self.epochs - self.mixco_epochs)

    def at(self, epoch: int) -> tuple[str, float]:
        if epoch < self.mixco_epochs:
            return "bimixco", self.mixco_temperature
        return "softclip", float(self.temps[min(epoch - self.mixco_epochs, len(self.temps) - 1)])


def z_l1_loss(pred: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """Mean absolute error divided by the latent scale (the reference's L1/0.18215)."""
    return (pred.float() - target.float()).abs().mean() / scale


def prior_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.float(), target.float())


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor from every process along dim 0, keeping its gradient path (identity on one)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its suggested replacement is a private module
        return torch.cat(all_gather(x.contiguous()), dim=0)
