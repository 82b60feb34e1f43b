"""Self-attention guidance (Hong et al. 2022), as the reference sampler uses it (method notes §5.3).

The unconditional UNet call records the self-attention probabilities of the mid block's first
transformer block. Key positions that receive more than their share of attention (summed over
queries, averaged over heads, > 1) mark the salient regions; there the predicted x0 is blurred,
re-noised with the same ε, and run through the UNet again. The guidance term pushes ε away from
what the UNet predicts for the degraded latent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ..errors import ModelLoadError

BLUR_KERNEL = 9
BLUR_SIGMA = 1.0


class SelfAttentionStore:
    """Attention processor that records the probabilities of the first call after ``arm()``.

    Every other call goes to the processor it replaced, so only one attention map per step is
    computed explicitly (the rest keep the fast fused kernel).
    """

    def __init__(self, fallback: Any):
        self.fallback = fallback
        self.armed = False
        self.probs: torch.Tensor | None = None
        self.heads = 0
        self.map_size: tuple[int, int] | None = None

    def arm(self) -> None:
        self.armed, self.probs = True, None

    def disarm(self) -> None:
        self.armed = False

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs
    ):
        if not self.armed or self.probs is not None:
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(hidden_states))
        probs = attn.get_attention_scores(query, key, None)
        self.probs, self.heads = probs.detach(), attn.heads
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        return attn.to_out[1](attn.to_out[0](out))


def _mid_attention(unet) -> tuple[Any, Any]:
    try:
        block = unet.mid_block.attentions[0]
        attn = block.transformer_blocks[0].attn1
    except (AttributeError, IndexError, TypeError):
        raise ModelLoadError(
            "self-attention guidance needs a UNet whose mid "
            "block has a transformer (mid_block.attentions[0])",
            fix="use a UNet2DConditionModel with a UNetMidBlock2DCrossAttn, or set sampler.sag_scale=0",
        ) from None
    plain = (
        attn.spatial_norm is None
        and attn.group_norm is None
        and not attn.residual_connection
        and attn.norm_q is None
    )
    if not plain or attn.rescale_output_factor != 1.0 or attn.is_cross_attention:
        raise ModelLoadError(
            "the mid-block self-attention is not a plain attention layer; SAG cannot record its map",
            fix="set sampler.sag_scale=0",
        )
    return block, attn


@contextmanager
def capture_mid_attention(unet) -> Iterator[SelfAttentionStore]:
    """Install a :class:`SelfAttentionStore` on the mid-block self-attention for the duration of the block."""
    block, attn = _mid_attention(unet)
    old = attn.processor
    store = SelfAttentionStore(old)

    def record_size(module, inputs, output):
        if store.armed and store.map_size is None:
            store.map_size = tuple(output[0].shape[-2:])

    attn.set_processor(store)
    handle = block.register_forward_hook(record_size)
    try:
        yield store
    finally:
        handle.remove()
        attn.set_processor(old)


def attention_mask(
    probs: torch.Tensor, batch: int, map_size: tuple[int, int], latent_size: tuple[int, int]
) -> torch.Tensor:
    """(batch·heads, N, N) probabilities → (batch, 1, h, w) float mask of the salient key positions."""
    n = probs.shape[-1]
    if n != map_size[0] * map_size[1]:
        raise ValueError(f"attention over {n} positions does not match the {map_size} mid-block map")
    per_key = probs.reshape(batch, -1, n, n).mean(1).sum(1)  # total attention each key position receives
    mask = (per_key > 1.0).to(probs.dtype).reshape(batch, 1, *map_size)
    return F.interpolate(mask, size=latent_size, mode="nearest")


def degrade(x0: torch.Tensor, mask: torch.Tensor, eps: torch.Tensor, t: int, scheduler) -> torch.Tensor:
    """Blur x0 where ``mask`` is 1 and noise it back to timestep t with the same ε."""
    blurred = gaussian_blur(x0, [BLUR_KERNEL, BLUR_KERNEL], [BLUR_SIGMA, BLUR_SIGMA])
    mixed = blurred * mask + x0 * (1 - mask)
    return scheduler.add_noise(mixed, eps, torch.tensor([t]))
