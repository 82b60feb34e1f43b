"""``BrainDecoder``: per-subject adapters → shared residual MLP → one head per target.

A head is either a token head (c or one g layer: linear to T×D tokens, the retrieval projector
and the diffusion prior) or a latent head (z). One model per target family, as the reference
trains them, is a ``BrainDecoder`` with one head; the multi-head layout is one model with them all.
Saved and loaded as a folder of ``config.json`` + ``diffusion_pytorch_model.safetensors`` through
diffusers' ``ModelMixin``/``ConfigMixin``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..errors import ModelLoadError
from .layers import ResidualMLP, RetrievalProjector, TokenHead, VoxelAdapters
from .prior import DiffusionPrior
from .zdecoder import LatentHead


class TokenTarget(nn.Module):
    """Everything one token target needs: the linear head, the retrieval projector and the prior.

    The head and the prior work on normalised targets (x − mean) / std; ``mean`` and ``std`` are
    buffers saved with the model (0 and 1 keep the targets raw, as the reference does).
    """

    def __init__(self, hidden: int, spec: dict[str, Any]):
        super().__init__()
        tokens, width = int(spec["tokens"]), int(spec["width"])
        self.register_buffer("mean", torch.zeros(tokens, width))
        self.register_buffer("std", torch.ones(tokens, width))
        self.head = TokenHead(hidden, tokens, width)
        self.projector = RetrievalProjector(width, int(spec.get("proj_depth", 3)))
        self.prior = None
        if spec.get("prior", True):
            self.prior = DiffusionPrior(
                tokens,
                width,
                depth=int(spec.get("prior_depth", 6)),
                heads=int(spec.get("prior_heads", 12)),
                timesteps=int(spec.get("timesteps", 100)),
                cond_drop=float(spec.get("cond_drop", 0.2)),
                ff_mult=int(spec.get("ff_mult", 4)),
                network=str(spec.get("prior_network", "ours")),
                dim_head=spec.get("prior_dim_head"),
            )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x.dtype) + self.mean.to(x.dtype)


class BrainDecoder(ModelMixin, ConfigMixin):
    """fMRI → targets. ``forward`` gives what the training losses need; ``decode`` gives predictions."""

    config_name = "config.json"
    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        subjects: dict[str, int],
        heads: dict[str, dict[str, Any]],
        hidden: int = 4096,
        blocks: int = 4,
        style: str = "token",
        dropout: float = 0.15,
        adapter_dropout: float = 0.5,
    ):
        super().__init__()
        if not subjects:
            raise ValueError("a decoder needs at least one subject")
        if not heads:
            raise ValueError("a decoder needs at least one head")
        self.adapters = VoxelAdapters(subjects, hidden, style, adapter_dropout)
        self.backbone = ResidualMLP(hidden, blocks, style, dropout)
        mods: dict[str, nn.Module] = {}
        for name, spec in heads.items():
            if spec["kind"] == "tokens":
                mods[name] = TokenTarget(hidden, spec)
            elif spec["kind"] == "latent":
                mods[name] = LatentHead(
                    hidden,
                    spec["shape"],
                    int(spec.get("map_channels", 64)),
                    list(spec.get("up_channels", (64, 128, 256))),
                    int(spec.get("norm_groups", 32)),
                    int(spec.get("cont_dim", 0)),
                )
            else:
                raise ValueError(f"head {name!r}: kind must be 'tokens' or 'latent', got {spec['kind']!r}")
        self.targets = nn.ModuleDict(mods)

    def token_heads(self) -> list[str]:
        return [n for n, s in self.config.heads.items() if s["kind"] == "tokens"]

    def set_target_stats(self, head: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Statistics of the training targets that the head and prior are normalised with."""
        mod = self.targets[head]
        mod.mean.copy_(torch.as_tensor(mean).expand_as(mod.mean))
        mod.std.copy_(torch.as_tensor(std).expand_as(mod.std))

    def embed(self, groups: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        unknown = [name for name, _ in groups if name not in self.adapters.layers]
        if unknown:
            raise ModelLoadError(
                f"this decoder has no adapter for subject(s) {unknown} (it has {list(self.config.subjects)})",
                fix="decode with the subject the model was trained or fine-tuned on",
            )
        return self.backbone(self.adapters(groups))

    def forward(
        self,
        groups: list[tuple[str, torch.Tensor]],
        targets: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, dict[str, torch.Tensor]]:
        """``groups`` = [(subject, voxels), ...]; ``targets[head]`` = {x0 and, with a prior, t, noise, drop}.

        Token heads return the (normalised) head tokens, the projector output and, when targets are given,
        ``reg_pred``/``reg_target``: the prior's x0 prediction and the normalised x0 (or, without a prior,
        the head tokens themselves and the normalised x0)."""
        h = self.embed(groups)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name, mod in self.targets.items():
            if isinstance(mod, TokenTarget):
                tokens = mod.head(h)
                res = {"tokens": tokens, "proj": mod.projector(tokens)}
                if targets is not None and name in targets:
                    p = targets[name]
                    x0 = mod.normalize(p["x0"])
                    if mod.prior is not None:
                        res["reg_pred"], res["reg_target"] = mod.prior.training_pair(
                            tokens, x0, p["t"], p["noise"], p["drop"], p.get("drop_image")
                        )
                    else:
                        res["reg_pred"], res["reg_target"] = tokens, x0
                out[name] = res
            else:
                z, maps = mod(h)
                out[name] = {"z": z} if maps is None else {"z": z, "maps": maps}
        return out

    @torch.no_grad()
    def decode(
        self,
        subject: str,
        voxels: torch.Tensor,
        steps: int = 20,
        eta: float = 1.0,
        cond_scale: float = 1.0,
        use_prior: bool = True,
        generator: torch.Generator | None = None,
        samples: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Predicted targets for one subject's (already scaled) voxels: prior samples (the mean of ``samples``
        of them) for token heads, z for latent ones."""
        h = self.embed([(subject, voxels)])
        out = {}
        for name, mod in self.targets.items():
            if isinstance(mod, TokenTarget):
                tokens = mod.head(h)
                if use_prior and mod.prior is not None:
                    cond = tokens.repeat(samples, 1, 1)
                    tokens = (
                        mod.prior.sample(cond, steps, eta, cond_scale, generator)
                        .view(samples, *tokens.shape)
                        .mean(0)
                    )
                out[name] = mod.denormalize(tokens)
            else:
                out[name] = mod(h)[0]
        return out

    @classmethod
    def for_subjects(
        cls, pretrained: BrainDecoder, subjects: dict[str, int]
    ) -> tuple[BrainDecoder, dict[str, list[str]]]:
        """A copy of ``pretrained`` with adapters for ``subjects``: every shared weight is loaded by name, the
        adapters of subjects not listed are dropped (exactly those), and new subjects get fresh adapters."""
        cfg = dict(pretrained.config)
        cfg = {k: cfg[k] for k in ("heads", "hidden", "blocks", "style", "dropout", "adapter_dropout")}
        model = cls(subjects=dict(subjects), **cfg)
        state = pretrained.state_dict()
        own = model.state_dict()
        dropped = [k for k in state if k.startswith("adapters.layers.") and k.split(".")[2] not in subjects]
        keep = {k: v for k, v in state.items() if k not in dropped}
        mismatched = [k for k, v in keep.items() if k in own and own[k].shape != v.shape]
        if mismatched:
            raise ModelLoadError(
                f"pretrained weights do not fit: {mismatched[:3]} change shape",
                fix="fine-tune with the decoder settings used for pretraining",
            )
        result = model.load_state_dict(keep, strict=False)
        fresh = [
            k
            for k in result.missing_keys
            if k.startswith("adapters.layers.") and k.split(".")[2] not in pretrained.config.subjects
        ]
        other = sorted(set(result.missing_keys) - set(fresh)) + sorted(result.unexpected_keys)
        if other:
            raise ModelLoadError(
                f"pretrained weights do not match the decoder: {other[:4]}",
                fix="fine-tune with the decoder settings used for pretraining",
            )
        return model, {"dropped": dropped, "fresh": fresh}
