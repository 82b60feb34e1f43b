"""Every metric the evaluator can report, with its network, layer, direction and scale.

Paper-scale names follow MindEye2's table; embedded-scale names say which small network they use
("mini-CLIP 2-way", "EffNet-Lite0 dist") so nobody mistakes them for the paper's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["pixel", "two_way", "distance", "consistency", "brain"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    higher_is_better: bool
    scale: Literal["paper", "embedded"]
    description: str
    backbone: str | None = None
    node: str | None = None

    def info(self) -> dict:
        return {
            "kind": self.kind,
            "direction": "higher" if self.higher_is_better else "lower",
            "scale": self.scale,
            "backbone": self.backbone,
            "layer": self.node,
            "description": self.description,
        }


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("PixCorr", "pixel", True, "paper", "Pearson r of RGB pixels at 425² (bilinear)"),
        MetricSpec("SSIM", "pixel", True, "paper", "SSIM of rgb2gray images at 425², Gaussian σ=1.5"),
        MetricSpec(
            "AlexNet(2)",
            "two_way",
            True,
            "paper",
            "2-way identification, torchvision AlexNet features.4",
            "alexnet",
            "features.4",
        ),
        MetricSpec(
            "AlexNet(5)",
            "two_way",
            True,
            "paper",
            "2-way identification, torchvision AlexNet features.11",
            "alexnet",
            "features.11",
        ),
        MetricSpec(
            "InceptionV3",
            "two_way",
            True,
            "paper",
            "2-way identification, InceptionV3 avgpool",
            "inception",
            "avgpool",
        ),
        MetricSpec(
            "CLIP",
            "two_way",
            True,
            "paper",
            "2-way identification, CLIP ViT-L/14 image embedding",
            "clip_l14",
            "embedding",
        ),
        MetricSpec(
            "EffNet-B",
            "distance",
            False,
            "paper",
            "correlation distance, EfficientNet-B1 avgpool",
            "efficientnet_b1",
            "avgpool",
        ),
        MetricSpec(
            "SwAV",
            "distance",
            False,
            "paper",
            "correlation distance, SwAV ResNet-50 avgpool",
            "swav",
            "avgpool",
        ),
        MetricSpec(
            "mini-CLIP 2-way",
            "two_way",
            True,
            "embedded",
            "2-way identification, the mini zoo's CLIP image embedding",
            "mini_clip",
            "embedding",
        ),
        MetricSpec(
            "mini-CLIP dist",
            "distance",
            False,
            "embedded",
            "correlation distance, the mini zoo's CLIP image embedding",
            "mini_clip",
            "embedding",
        ),
        MetricSpec(
            "EffNet-Lite0 2-way",
            "two_way",
            True,
            "embedded",
            "2-way identification, EfficientNet-Lite0 (ImageNet) avgpool",
            "effnet_lite0",
            "avgpool",
        ),
        MetricSpec(
            "EffNet-Lite0 dist",
            "distance",
            False,
            "embedded",
            "correlation distance, EfficientNet-Lite0 (ImageNet) avgpool",
            "effnet_lite0",
            "avgpool",
        ),
        MetricSpec(
            "Repeat SSIM",
            "consistency",
            True,
            "embedded",
            "mean SSIM between every pair of an image's repeats (same SSIM settings)",
        ),
        MetricSpec(
            "Brain corr.",
            "brain",
            True,
            "paper",
            "Pearson r across an ROI's voxels between encoder-predicted and measured (repeat-averaged) betas",
        ),
    )
}
# Repeat SSIM is our own addition (the paper's consistency score is unconfirmed): listed
# with the embedded set.
PAPER_TABLE = ["PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "InceptionV3", "CLIP", "EffNet-B", "SwAV"]
EMBEDDED_TABLE = [
    "mini-CLIP 2-way",
    "EffNet-Lite0 2-way",
    "mini-CLIP dist",
    "EffNet-Lite0 dist",
    "Repeat SSIM",
]
BRAIN_PREFIX = "Brain corr. "


def brain_key(roi: str) -> str:
    return f"{BRAIN_PREFIX}{roi}"


def spec_of(key: str) -> MetricSpec:
    """The spec of a metric key (brain keys carry their ROI: 'Brain corr. V1')."""
    if key.startswith(BRAIN_PREFIX):
        return METRICS["Brain corr."]
    return METRICS[key]


def resolve_names(names: list[str]) -> list[str]:
    """Validate requested metric names ('all', 'paper', 'embedded' are groups)."""
    from ..errors import ConfigError

    out: list[str] = []
    for n in names:
        group = {
            "all": list(METRICS),
            "paper": PAPER_TABLE + ["Brain corr."],
            "embedded": EMBEDDED_TABLE,
        }.get(n)
        for m in group or [n]:
            if m not in METRICS:
                import difflib

                guess = difflib.get_close_matches(m, list(METRICS), n=1)
                raise ConfigError(
                    f"unknown metric '{m}'",
                    where="evaluate.metrics",
                    fix=f"did you mean '{guess[0]}'?"
                    if guess
                    else f"choose from: {', '.join(METRICS)}, or all/paper/embedded",
                )
            if m not in out:
                out.append(m)
    return out
