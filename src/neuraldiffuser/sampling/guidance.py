"""Primary-visual-feature guidance: the gradient of the g-feature loss with respect to the latent
(method notes §5.3–§5.4).

At a guided step the conditional UNet re-predicts x̂0 from x_t, the prediction is blended back
towards x_t, decoded by the VAE *with* gradient, encoded by the guidance tower, and compared with the
decoded target g by an inverse-norm-weighted per-layer MSE. The gradient of −κ·loss with respect to
x_t flows through the guidance tower, the VAE decoder and the UNet; the sampler then shifts ε by
−√(1−ᾱ_t)·∇ (the reference's sign convention), which lowers the loss of the next x̂0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from ..errors import DataError


def layer_weights(g: torch.Tensor, boosts: Sequence[float]) -> torch.Tensor:
    """w_L = a_L · (1/‖g_L‖) / Σ_L' (1/‖g_L'‖), computed from one image's target g of shape
    (L, tokens, width)."""
    if g.ndim != 3:
        raise DataError(f"g target must be (layers, tokens, width), got shape {tuple(g.shape)}")
    if len(boosts) != g.shape[0]:
        raise DataError(
            f"{len(boosts)} layer boosts for {g.shape[0]} guidance layers",
            fix="give sampler.layer_boosts one value per zoo.guidance_layers entry",
        )
    norms = g.double().flatten(1).norm(dim=1)
    if not torch.all(norms > 0):
        raise DataError(
            "a g target layer is all zeros: its inverse-norm weight is undefined", fix="check the decoded g"
        )
    inv = 1.0 / norms
    return (inv / inv.sum() * torch.as_tensor(boosts, dtype=torch.float64)).to(torch.float32)


class FeatureLoss:
    """MSE_CLIP(g, φ(I)) = Σ_L w_L · mean((g_L − φ_L(I))²), one value per image of the batch.

    ``target`` is one image's g (L, tokens, width), shared by every row, or one g per row (N, L, tokens,
    width) when several images are sampled together; each row's layer weights come from its own target.
    """

    def __init__(
        self, encoder: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, boosts: Sequence[float]
    ):
        if not target.is_floating_point():
            raise DataError(f"g target must be floating point, got {target.dtype}")
        self.encoder = encoder
        self.target = target
        per_row = [layer_weights(t, boosts) for t in target] if target.ndim == 4 else None
        self.weights = (torch.stack(per_row) if per_row else layer_weights(target, boosts)).to(
            target.device, target.dtype
        )

    def __call__(self, images: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """``images`` in [−1, 1] (the VAE's output range) → (B,) loss; the encoder clamps (I+1)/2 to [0, 1].

        With one target per row, ``rows`` says which rows of the targets ``images`` are (default: all).
        """
        feats = self.encoder((images + 1) / 2).to(self.target.dtype)
        target, weights = self.target, self.weights
        if target.ndim == 4:
            pick = rows or slice(None)
            target, weights = target[pick], weights[pick]
            if len(target) != len(feats):
                raise DataError(f"{len(feats)} images for {len(target)} per-row g targets")
        if feats.shape[1:] != target.shape[-3:]:
            raise DataError(
                f"guidance tower gives features {tuple(feats.shape[1:])} "
                f"but the g target is {tuple(target.shape[-3:])}",
                fix="decode g with the same zoo (guidance encoder and layers) as the sampler uses",
            )
        mse = (feats - target).pow(2).mean(dim=(-2, -1))  # (B, L)
        return (mse * weights).sum(dim=1)


def predict_x0(x: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor, formula: str) -> torch.Tensor:
    """x̂0 from ε. 'released' keeps the reference's (1−ᾱ) in place of √(1−ᾱ) (method notes §5.3)."""
    coeff = (1 - alpha_bar) if formula == "released" else (1 - alpha_bar).sqrt()
    return (x - coeff * eps) / alpha_bar.sqrt()


@contextmanager
def checkpointing(*models, enabled: bool) -> Iterator[None]:
    """Turn diffusers' gradient checkpointing on for the block (it only acts while autograd records)."""
    if not enabled:
        yield
        return
    for m in models:
        m.enable_gradient_checkpointing()
    try:
        yield
    finally:
        for m in models:
            m.disable_gradient_checkpointing()


class GuidanceStep:
    """Computes, for a batch of latents at one timestep, the conditional ε and ∇_x of −κ·loss."""

    def __init__(
        self,
        unet,
        vae,
        loss: FeatureLoss,
        kappa: float,
        x0_formula: str = "standard",
        checkpoint: bool = False,
    ):
        self.unet, self.vae, self.loss = unet, vae, loss
        self.kappa, self.x0_formula, self.checkpoint = float(kappa), x0_formula, checkpoint
        self.scale = float(vae.config.scaling_factor)

    def objective(
        self,
        x: torch.Tensor,
        t: int,
        alpha_bar: torch.Tensor,
        context: torch.Tensor,
        rows: slice | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(−κ·Σ_batch loss, ε_c) as differentiable functions of x (``rows``: which rows
        of the batch x is)."""
        dtype = self.unet.dtype
        eps = self.unet(x.to(dtype), t, encoder_hidden_states=context.to(dtype)).sample.to(x.dtype)
        x0 = predict_x0(x, eps, alpha_bar, self.x0_formula)
        fac = (1 - alpha_bar).sqrt()
        blend = x0 * fac + x * (1 - fac)
        image = self.vae.decode((blend / self.scale).to(self.vae.dtype)).sample.to(x.dtype)
        return -self.kappa * self.loss(image, rows).sum(), eps

    def __call__(
        self,
        x: torch.Tensor,
        t: int,
        alpha_bar: torch.Tensor,
        context: torch.Tensor,
        chunk: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε_c detached, gradient) for every row of x; rows are independent, so chunking gives
        the same gradient."""
        eps_out, grads = [], []
        step = chunk or x.shape[0]
        with torch.enable_grad(), checkpointing(self.unet, self.vae, enabled=self.checkpoint):
            for i in range(0, x.shape[0], step):
                leaf = x[i : i + step].detach().requires_grad_(True)
                value, eps = self.objective(leaf, t, alpha_bar, context[i : i + step], slice(i, i + step))
                (grad,) = torch.autograd.grad(value, leaf)
                eps_out.append(eps.detach())
                grads.append(grad)
        return torch.cat(eps_out), torch.cat(grads)
