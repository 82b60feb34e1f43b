"""MindEye2's prior network (``decoder.prior_network: mindeye2``), written from its description.

The reference builds ``PriorNetwork(dim=768, depth=6, dim_head=52, heads=14, causal=False, num_tokens=T,
learned_query_mode="pos_emb")`` on DALLE2-pytorch's transformer (MedARC-AI/MindEyeV2 @ c1847188,
``src/models.py``: ``PriorNetwork``, ``FlaggedCausalTransformer``; HaoyyLi/NeuralDiffuser @ 9286cada,
``src/train_c.py`` constructs it, ``src/mindeye_models.py`` is the same file). What it is made of:

- the sequence [brain tokens ; one time token ; noisy target tokens + learned positions], the last T
  outputs being the x0 prediction;
- dropped brain tokens are replaced by a learned null sequence, and — independently, at the same rate —
  the noisy target tokens by a learned null image sequence;
- non-causal (the reference passes ``causal=False`` to DALLE2's "causal" transformer) layers of
  [cosine-similarity attention with one shared key/value head (multi-query), a learned null key/value, rotary
  embedding of the first min(32, dim_head) channels and a T5-style relative position bias] + [SwiGLU
  feed-forward], each pre-normed with a bias-free LayerNorm; a final "stable" LayerNorm and a
  bias-free projection.

``DiffusionPrior`` (models/prior.py) wraps it exactly as it wraps our own ``TokenDenoiser``: same schedule,
same training pair, same sampler.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class GainLayerNorm(nn.Module):
    """LayerNorm with a gain and no bias; ``stable`` first divides by the (detached) row maximum."""

    def __init__(self, dim: int, stable: bool = False):
        super().__init__()
        self.stable = stable
        self.g = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stable:
            x = x / x.amax(dim=-1, keepdim=True).detach()
        eps = 1e-3 if x.dtype in (torch.float16, torch.bfloat16) else 1e-5  # a larger ε in half precision
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        return (x - mean) * (var + eps).rsqrt() * self.g


def sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) → (B, dim): sin then cos of t·10000^(−k/(dim/2 − 1))."""
    half = dim // 2
    freqs = torch.exp(
        torch.arange(half, device=t.device, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1))
    )
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def rotate_pairs(x: torch.Tensor, rot_dim: int) -> torch.Tensor:
    """Rotary embedding over the sequence axis (−2): channel pairs (2i, 2i+1) of the first ``rot_dim``
    channels are rotated by position · 10000^(−2i/rot_dim); the other channels pass through."""
    n = x.shape[-2]
    inv = 1.0 / (10000.0 ** (torch.arange(0, rot_dim, 2, device=x.device, dtype=torch.float32) / rot_dim))
    ang = torch.arange(n, device=x.device, dtype=torch.float32)[:, None] * inv[None]  # (n, rot_dim/2)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    head, tail = x[..., :rot_dim], x[..., rot_dim:]
    a, b = head[..., 0::2], head[..., 1::2]
    rot = torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
    return torch.cat([rot, tail], dim=-1)


def relative_bucket(rel: torch.Tensor, buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """T5-style bucket of (key − query) offsets, one-sided: keys after the query all share bucket 0, the first
    buckets/2 past offsets are exact, the rest log-spaced up to ``max_distance``."""
    n = (-rel).clamp(min=0)
    exact = buckets // 2
    far = (
        exact
        + (
            torch.log(n.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (buckets - exact)
        ).long()
    )
    return torch.where(n < exact, n, far.clamp(max=buckets - 1))


class CosineAttention(nn.Module):
    """Multi-query cosine-similarity attention (logits = 16·cos) with a learned null key/value."""

    def __init__(
        self, dim: int, heads: int, dim_head: int, rot_dim: int, scale: float = 16.0, dropout: float = 0.0
    ):
        super().__init__()
        self.heads, self.dim_head, self.rot_dim, self.scale = heads, dim_head, rot_dim, scale
        self.norm = GainLayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim_head, bias=False)
        self.null_kv = nn.Parameter(torch.randn(2, dim_head))
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.out_norm = GainLayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.norm(x)
        q = self.to_q(h).view(b, n, self.heads, self.dim_head).transpose(1, 2)  # (b, H, n, d)
        k, v = self.to_kv(h).chunk(2, dim=-1)  # (b, n, d) each: one key/value head shared by all query heads
        if self.rot_dim:
            q, k = rotate_pairs(q, self.rot_dim), rotate_pairs(k, self.rot_dim)
        nk, nv = (p.to(x.dtype).expand(b, 1, self.dim_head) for p in self.null_kv.unbind(0))
        k, v = torch.cat([nk, k], dim=1), torch.cat([nv, v], dim=1)  # (b, n+1, d)
        sim = (
            self.scale * torch.einsum("bhid,bjd->bhij", F.normalize(q, dim=-1), F.normalize(k, dim=-1)) + bias
        )
        attn = self.dropout(sim.softmax(dim=-1, dtype=torch.float32).to(sim.dtype))
        out = torch.einsum("bhij,bjd->bhid", attn, v).transpose(1, 2).reshape(b, n, -1)
        return self.out_norm(self.to_out(out))


class SwiGLUFeedForward(nn.Module):
    """LN → Linear(D, 2·mult·D) → x·SiLU(gate) → Linear(mult·D, D), bias-free."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        inner = int(mult * dim)
        self.norm = GainLayerNorm(dim)
        self.up = nn.Linear(dim, 2 * inner, bias=False)
        self.down = nn.Linear(inner, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.up(self.norm(x)).chunk(2, dim=-1)
        return self.down(self.dropout(a * F.silu(gate)))


class MindEye2Denoiser(nn.Module):
    """Predicts x0 (B, T, D) from noisy tokens, timesteps and brain tokens; ``drop``/``drop_image`` (B,) bools
    swap in the learned null brain / null image sequences (the condition dropout of training)."""

    def __init__(
        self,
        tokens: int,
        width: int,
        depth: int = 6,
        heads: int = 14,
        dim_head: int | None = None,
        ff_mult: int = 4,
        buckets: int = 32,
        max_distance: int = 128,
    ):
        super().__init__()
        self.tokens, self.width = tokens, width
        dim_head = int(dim_head or width // heads)
        self.buckets, self.max_distance = buckets, max_distance
        self.time_mlp = nn.Sequential(
            nn.Linear(width, 2 * width),
            nn.SiLU(),
            nn.Linear(2 * width, 2 * width),
            nn.SiLU(),
            nn.Linear(2 * width, width),
        )
        self.learned_query = nn.Parameter(torch.randn(tokens, width) * width**-0.5)
        self.null_brain = nn.Parameter(torch.randn(tokens, width))
        self.null_image = nn.Parameter(torch.randn(tokens, width))
        self.rel_bias = nn.Embedding(buckets, heads)
        rot = min(32, dim_head) // 2 * 2
        self.attn = nn.ModuleList(CosineAttention(width, heads, dim_head, rot) for _ in range(depth))
        self.ff = nn.ModuleList(SwiGLUFeedForward(width, ff_mult) for _ in range(depth))
        self.norm = GainLayerNorm(width, stable=True)
        self.out = nn.Linear(width, width, bias=False)

    def position_bias(self, n: int, device) -> torch.Tensor:
        """(heads, n, n+1): key index 0 is the null key, so key j sits at offset j − i from query i (the
        reference's indexing, which counts the null key as position 0)."""
        rel = torch.arange(n + 1, device=device)[None] - torch.arange(n, device=device)[:, None]
        return self.rel_bias(relative_bucket(rel, self.buckets, self.max_distance)).permute(2, 0, 1)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        drop: torch.Tensor | None = None,
        drop_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if drop is not None:
            cond = torch.where(drop.view(-1, 1, 1), self.null_brain.to(cond.dtype)[None], cond)
        if drop_image is not None:
            x_t = torch.where(drop_image.view(-1, 1, 1), self.null_image.to(x_t.dtype)[None], x_t)
        temb = self.time_mlp(sinusoid(t, self.width).to(x_t.dtype))[:, None]
        seq = torch.cat([cond, temb, x_t + self.learned_query.to(x_t.dtype)], dim=1)
        bias = self.position_bias(seq.shape[1], seq.device).to(seq.dtype)
        for attn, ff in zip(self.attn, self.ff, strict=True):
            seq = seq + attn(seq, bias)
            seq = seq + ff(seq)
        return self.out(self.norm(seq[:, -self.tokens :]))
