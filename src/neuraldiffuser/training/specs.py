"""Which decoders a run trains, and how each is built from the config and the target store."""

from __future__ import annotations

import numpy as np

from ..config.sections.decoder import DecoderConfig
from ..errors import ConfigError, DataError
from ..targets.store import TargetStore


def head_keys(
    store: TargetStore, families: list[str], z_target: str = "store"
) -> dict[str, tuple[str, int | None]]:
    """Head name → (store key, g layer): 'c', 'g0' … 'g{L-1}', 'z' for the families asked for; with
    ``z_target`` 'mode' the z head reads the posterior mode ('z_mode', or 'z' itself when it was
    extracted as the mode)."""
    heads: dict[str, tuple[str, int | None]] = {}
    for fam in ("c", "g", "z"):
        if fam not in families:
            continue
        if fam not in store.keys:
            raise DataError(
                f"decoder.targets asks for '{fam}' but the target store has only {store.keys}",
                where=str(store.path),
                fix=f"extract '{fam}' or drop it from decoder.targets",
            )
        if fam == "g":
            heads.update({f"g{i}": ("g", i) for i in range(store.shape("g")[0])})
        elif fam == "z" and z_target == "mode" and store.attrs.get("z_mode") != "mode":
            if "z_mode" not in store.keys:
                raise DataError(
                    "train.z_target is 'mode' but the target store holds a sampled z and no 'z_mode'",
                    where=str(store.path),
                    fix="extract again with train.z_target=mode (it "
                    "adds z_mode), or set train.z_target=store",
                )
            heads["z"] = ("z_mode", None)
        else:
            heads[fam] = (fam, None)
    return heads


def model_groups(cfg: DecoderConfig, heads: dict) -> dict[str, list[str]]:
    """per_target: one model per head; multi_head: a single model 'all' with every head."""
    if cfg.layout == "multi_head":
        return {"all": list(heads)}
    return {h: [h] for h in heads}


def target_stats(
    cfg: DecoderConfig, data, heads: dict, limit: int = 1000
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(mean, std) per token head that ``decoder.target_norm`` normalises with, from (up to ``limit``) of the
    stage's training images (``data``: the stage's ``TrainingData``)."""
    if cfg.target_norm == "raw":
        return {}
    images = np.unique(np.concatenate([p.images for p in data.pools]))
    sample = images[np.linspace(0, len(images) - 1, min(limit, len(images))).astype(int)]
    token_heads = [h for h, (key, _) in heads.items() if key != "z"]
    values = data.restrict(token_heads).targets_of(sample)
    out = {}
    for h in token_heads:
        x = values[h].astype(np.float64)
        if cfg.target_norm == "rms":
            out[h] = (np.zeros(1, np.float32), np.array([np.sqrt(np.mean(x**2))], np.float32))
        else:  # standardize; a floor keeps near-constant dimensions (e.g. padding tokens) from blowing up
            std = x.std(0)
            out[h] = (x.mean(0).astype(np.float32), np.maximum(std, 0.05 * std.mean()).astype(np.float32))
    return out


def head_spec(head: str, shape: tuple[int, ...], cfg: DecoderConfig, cont_dim: int) -> dict:
    if head == "z":
        return {
            "kind": "latent",
            "shape": list(shape),
            "map_channels": cfg.z_map_channels,
            "up_channels": list(cfg.z_up_channels),
            "norm_groups": cfg.z_norm_groups,
            "cont_dim": int(cont_dim),
        }
    tokens, width = int(np.prod(shape[:-1])), int(shape[-1])
    prior = head.rstrip("0123456789") in cfg.prior
    if (
        prior and cfg.prior_network == "ours" and width % cfg.prior_heads
    ):  # mindeye2 sizes its heads by dim_head
        raise ConfigError(
            f"decoder.prior_heads {cfg.prior_heads} does not "
            f"divide the width {width} of the '{head}' targets",
            where="decoder.prior_heads",
            fix=f"set decoder.prior_heads to a divisor of {width}"
            + (" (or --preset mini, made for the mini zoo's targets)" if width < 768 else ""),
        )
    return {
        "kind": "tokens",
        "tokens": tokens,
        "width": width,
        "proj_depth": cfg.proj_depth,
        "prior": prior,
        "prior_depth": cfg.prior_depth,
        "prior_heads": cfg.prior_heads,
        "ff_mult": cfg.prior_ff_mult,
        "timesteps": cfg.prior_timesteps,
        "cond_drop": cfg.prior_cond_drop,
        "prior_network": cfg.prior_network,
        "prior_dim_head": cfg.prior_dim_head,
    }


def build_model(
    name: str,
    group: list[str],
    subjects: dict[str, int],
    cfg: DecoderConfig,
    shapes: dict,
    stats: dict,
    cont_dim: int = 0,
):
    """A fresh ``BrainDecoder`` with its target statistics; the z-only model of the per_target layout uses the
    MindEye1-style path."""
    import torch

    from ..models.brain import BrainDecoder

    heads = {h: head_spec(h, shapes[h], cfg, cont_dim) for h in group}
    if group == ["z"]:
        model = BrainDecoder(
            subjects=subjects,
            heads=heads,
            hidden=cfg.z_hidden,
            blocks=cfg.z_blocks,
            style="latent",
            dropout=cfg.z_dropout,
            adapter_dropout=cfg.z_adapter_dropout,
        )
    else:
        model = BrainDecoder(
            subjects=subjects,
            heads=heads,
            hidden=cfg.hidden,
            blocks=cfg.blocks,
            style="token",
            dropout=cfg.dropout,
        )
    for h in group:
        if h in stats:
            mean, std = stats[h]
            model.set_target_stats(h, torch.from_numpy(mean), torch.from_numpy(std))
    return model
