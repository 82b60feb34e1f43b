"""The image chain of MindEye2's ``final_evaluations`` (method notes §6.1), on (n, 3, H, W) float tensors.

Both image sets are first resized to 256×256; each metric then resizes again (425 for PixCorr/SSIM,
the backbone's size for features). Resizes go through torchvision's functional ``resize`` on
tensors, as the reference does. ``antialias=False`` reproduces torchvision 0.16 (pinned by MindEye2),
whose tensor default was no antialiasing; newer torchvision defaults to True. The choice only matters
when an image is shrunk (e.g. 512 → 256) and is recorded in ``metrics.json``.
"""

from __future__ import annotations

import numpy as np
import torch

PROTOCOL_SIZE = 256
PIXEL_SIZE = 425
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W, 3) → float32 (n, 3, H, W) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (n, H, W, 3), got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def resize(
    x: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear", antialias: bool = False
) -> torch.Tensor:
    """torchvision ``Resize(size)`` on a tensor batch: an int resizes the shorter side, a pair is exact."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    target = (size, size) if isinstance(size, int) and x.shape[-1] == x.shape[-2] else size
    if isinstance(target, tuple) and tuple(x.shape[-2:]) == target:
        return x
    interp = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[mode]
    return TF.resize(
        x, size if isinstance(size, int) else list(size), interpolation=interp, antialias=antialias
    )


def to_protocol(images: np.ndarray | torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """The first step for both sets: (n, 3, 256, 256) floats (skipped when already 256², as
    the reference does)."""
    x = to_tensor(images) if isinstance(images, np.ndarray) else images
    if x.shape[-1] != PROTOCOL_SIZE or x.shape[-2] != PROTOCOL_SIZE:
        x = resize(x, (PROTOCOL_SIZE, PROTOCOL_SIZE), antialias=antialias)
    return x


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def pixel_view(x256: torch.Tensor, antialias: bool = False) -> torch.Tensor:
    """PixCorr/SSIM input: Resize(425, bilinear) of the 256² images."""
    return resize(x256, PIXEL_SIZE, "bilinear", antialias)


def grey(x: torch.Tensor) -> np.ndarray:
    """skimage's ``rgb2gray`` on channels-last float images, as the reference calls it: (n, H, W)."""
    from skimage.color import rgb2gray

    return rgb2gray(x.permute(0, 2, 3, 1).cpu().numpy())
