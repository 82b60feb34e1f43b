"""The diffusion prior: maps the decoder's direct token estimate to a sample of the target tokens.

Written from our reading of MindEye2's prior (method notes §4.1; ME2:src/models.py): a non-causal
transformer over [brain tokens ; time token ; noisy target tokens + learned positions] whose last T
outputs predict x0 directly; a cosine noise schedule over ``timesteps`` steps; the brain tokens are
replaced by a learned null sequence with probability ``cond_drop`` during training; DDIM sampling
with a chosen number of steps and η at test time. The noise schedule and the DDIM update come from
diffusers' ``DDIMScheduler`` (``squaredcos_cap_v2`` is the cosine schedule; ``prediction_type=
"sample"`` is x0 prediction).

The prior works in whatever space its caller gives it: ``TokenTarget`` (models/brain.py) hands it
raw targets (the reference) or targets normalised with training statistics (``decoder.target_norm``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / max(half, 1)
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


class Block(nn.Module):
    """Pre-norm transformer block: multi-head self-attention, then a GELU feed-forward.

    The key projection has no bias: adding a constant to every key shifts all of a query's logits
    equally, so such a bias never receives a gradient (only rounding noise, which Adam would amplify)."""

    def __init__(self, width: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.q, self.k, self.v = (
            nn.Linear(width, width),
            nn.Linear(width, width, bias=False),
            nn.Linear(width, width),
        )
        self.proj = nn.Linear(width, width)
        self.ff = nn.Sequential(
            nn.Linear(width, width * ff_mult), nn.GELU(), nn.Linear(width * ff_mult, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm1(x)
        q, k, v = (
            t.view(b, n, self.heads, d // self.heads).transpose(1, 2)
            for t in (self.q(h), self.k(h), self.v(h))
        )
        a = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.ff(self.norm2(x))


class TokenDenoiser(nn.Module):
    """Predicts x0 (B, T, D) from noisy tokens x_t, the timestep and the brain tokens (B, T, D)."""

    def __init__(
        self, tokens: int, width: int, depth: int, heads: int, ff_mult: int = 4, dropout: float = 0.0
    ):
        super().__init__()
        if width % heads:
            raise ValueError(f"prior width {width} is not divisible by its {heads} attention heads")
        self.tokens, self.width = tokens, width
        self.time_mlp = nn.Sequential(nn.Linear(width, width * 2), nn.SiLU(), nn.Linear(width * 2, width))
        self.pos_cond = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.pos_x = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.null_cond = nn.Parameter(torch.randn(tokens, width) * 0.02)
        self.cond_in = nn.Linear(width, width)
        self.blocks = nn.ModuleList(Block(width, heads, ff_mult, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, width, bias=False)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        if drop is not None:
            cond = torch.where(drop.view(-1, 1, 1), self.null_cond.to(cond.dtype).expand_as(cond), cond)
        temb = self.time_mlp(timestep_embedding(t, self.width).to(x_t.dtype))[:, None]
        # brain tokens enter twice: as their own sequence (as the reference) and added to the noisy token at
        # the same position, which lets a small prior start from the decoder's estimate instead of
        # learning to route it
        seq = torch.cat([cond + self.pos_cond, temb, x_t + self.pos_x + self.cond_in(cond)], dim=1)
        for block in self.blocks:
            seq = block(seq)
        h = seq
        return self.out(self.norm(h[:, -self.tokens :]))


def make_schedule(timesteps: int):
    """DDIM over a cosine β schedule, x0 prediction; 'trailing' spacing starts sampling at
    the noisiest step."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="sample",
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )


class DiffusionPrior(nn.Module):
    """Training pair (prediction, target) for the prior loss, and DDIM sampling for decoding."""

    def __init__(
        self,
        tokens: int,
        width: int,
        depth: int = 6,
        heads: int = 12,
        timesteps: int = 100,
        cond_drop: float = 0.2,
        ff_mult: int = 4,
        network: str = "ours",
        dim_head: int | None = None,
    ):
        super().__init__()
        if network == "mindeye2":  # MindEye2's network also drops the noisy image tokens (at the same rate)
            from .prior_mindeye2 import MindEye2Denoiser

            self.net = MindEye2Denoiser(tokens, width, depth, heads, dim_head, ff_mult)
        elif network == "ours":
            self.net = TokenDenoiser(tokens, width, depth, heads, ff_mult)
        else:
            raise ValueError(f"prior network must be 'ours' or 'mindeye2', got {network!r}")
        self.network = network
        self.timesteps, self.cond_drop = int(timesteps), float(cond_drop)
        alphas = make_schedule(self.timesteps).alphas_cumprod.clone()
        self.register_buffer("alphas_cumprod", alphas, persistent=False)

    def noise_inputs(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The random draws of one training step (timesteps, noise, dropped conditions), made outside the
        model so that they depend only on the global batch and not on how it is split across processes."""
        dev = generator.device  # made where the generator lives (the accelerator's in training on CUDA)
        t = torch.randint(0, self.timesteps, (batch,), generator=generator, device=dev)
        noise = torch.randn(batch, self.net.tokens, self.net.width, generator=generator, device=dev)
        drop = torch.rand(batch, generator=generator, device=dev) < self.cond_drop
        draws = {"t": t, "noise": noise, "drop": drop}
        if self.network == "mindeye2":
            draws["drop_image"] = torch.rand(batch, generator=generator, device=dev) < self.cond_drop
        return draws

    def training_pair(
        self,
        cond: torch.Tensor,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        drop: torch.Tensor,
        drop_image: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted x0, true x0) for the prior MSE."""
        a = self.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1).to(x0.dtype)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise.to(x0.dtype)
        if drop_image is not None:
            return self.net(x_t, t, cond, drop, drop_image), x0
        return self.net(x_t, t, cond, drop), x0

    @torch.no_grad()
    def sample(
        self,
        cond: torch.Tensor,
        steps: int = 20,
        eta: float = 1.0,
        cond_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """DDIM from pure noise in ``steps`` steps; ``cond_scale`` > 1 mixes in the null condition (CFG)."""
        from diffusers.utils.torch_utils import randn_tensor

        sched = make_schedule(self.timesteps)
        sched.set_timesteps(steps, device=cond.device)
        x = randn_tensor(tuple(cond.shape), generator=generator, device=cond.device, dtype=cond.dtype)
        for t in sched.timesteps:
            tt = torch.full((cond.shape[0],), int(t), device=cond.device, dtype=torch.long)
            pred = self.net(x, tt, cond)
            if cond_scale != 1.0:
                ones = torch.ones(cond.shape[0], dtype=torch.bool, device=cond.device)
                # MindEye2's null branch drops the brain and the image tokens, as DALLE2's
                # forward_with_cond_scale
                null = (
                    self.net(x, tt, cond, ones, ones)
                    if self.network == "mindeye2"
                    else self.net(x, tt, cond, ones)
                )
                pred = null + cond_scale * (pred - null)
            x = sched.step(pred, t, x, eta=eta, generator=generator).prev_sample
        return x
