"""A small task-trained network as the model of the ventral stream's semantic code.

Deep networks trained to recognise objects predict higher visual cortex well (Yamins et al. 2014;
Khaligh-Razavi & Kriegeskorte 2014; Güçlü & van Gerven 2015). Ours is trained once, on procedural
scenes, to report every scene attribute (shape categories, object colours, count, layout words, sizes,
background kind and colour); its sigmoid outputs are the simulator's shared semantic space. It reads
pixels only, so it applies to any image (reconstructions included). The weights ship with the
package (``simulate/weights/ventral``); ``python -m neuraldiffuser.simulate.ventral OUT`` retrains them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .semantic import ATTRIBUTES, attribute_vectors

WEIGHTS = Path(__file__).parent / "weights" / "ventral"
DEFAULT = {"widths": [16, 32, 64, 64], "spatial": 16, "resolution": 64, "attributes": ATTRIBUTES}


def build(config: dict):
    """The network: 4 strided convolutions, then global mean/max and a 3×3 spatial pool,
    then a linear head."""
    import torch
    from torch import nn

    class VentralNet(nn.Module):
        def __init__(self, widths, spatial, n_out):
            super().__init__()
            chans, layers = 3, []
            for i, w in enumerate(widths):
                k, stride = (5, 2) if i == 0 else (3, 1 if i == len(widths) - 1 else 2)
                layers += [nn.Conv2d(chans, w, k, stride, k // 2, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                chans = w
            self.body = nn.Sequential(*layers)
            self.squeeze = nn.Conv2d(chans, spatial, 1)
            self.head = nn.Linear(2 * chans + 9 * spatial, n_out)

        def forward(self, x):
            h = self.body(x)
            grid = nn.functional.adaptive_avg_pool2d(self.squeeze(h), 3).flatten(1)
            return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3)), grid], 1))

    return VentralNet(config["widths"], config["spatial"], len(config["attributes"]))


class Ventral:
    """Loaded network: ``semantic(images uint8 (n, H, W, 3)) -> (n, attributes)`` in [0, 1]."""

    def __init__(self, path: str | Path = WEIGHTS):
        from safetensors.torch import load_file

        from ..errors import ModelLoadError

        path = Path(path)
        try:
            self.config = json.loads((path / "config.json").read_text())
            state = load_file(path / "model.safetensors")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load the ventral network ({exc})",
                where=str(path),
                fix="reinstall the package or retrain it: python -m neuraldiffuser.simulate.ventral OUT",
            ) from None
        if self.config["attributes"] != ATTRIBUTES:
            raise ModelLoadError(
                "the ventral network's attribute list differs from this version's",
                where=str(path / "config.json"),
                fix="retrain it: python -m neuraldiffuser.simulate.ventral OUT",
            )
        self.net = build(self.config)
        try:
            self.net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelLoadError(
                f"weights do not fit the network in config.json ({str(exc).splitlines()[0]})",
                where=str(path),
                fix="retrain it: python -m neuraldiffuser.simulate.ventral OUT",
            ) from None
        self.net.eval()
        self.resolution = int(self.config["resolution"])

    def semantic(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                x = (
                    torch.from_numpy(np.ascontiguousarray(images[start : start + batch]))
                    .permute(0, 3, 1, 2)
                    .float()
                    / 255.0
                )
                out.append(torch.sigmoid(self.net(x)).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(ATTRIBUTES)), np.float32)


def train(
    out: str | Path,
    n_scenes: int = 40000,
    epochs: int = 12,
    seed: int = 1234,
    batch: int = 128,
    threads: int = 1,
) -> dict:
    """Train the network on fresh procedural scenes (multi-label BCE) and save config + safetensors."""
    import torch
    from safetensors.torch import save_file

    from ..utils.io import atomic_save, atomic_write_json
    from ..utils.progress import progress_bar
    from .scenes import generate_scenes

    torch.manual_seed(seed)
    torch.set_num_threads(threads)  # one thread trains faster than two on a shared 2-core machine
    scenes = generate_scenes(n_scenes + 2000, seed)
    x = torch.from_numpy(scenes.images).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(attribute_vectors(scenes.records))
    net = build(DEFAULT)
    weight = torch.tensor(
        [3.0 if a.startswith("shape:") else 1.0 for a in ATTRIBUTES]
    )  # shape is the hardest attribute
    opt = torch.optim.AdamW(net.parameters(), lr=5e-3, weight_decay=1e-4)
    steps = epochs * (n_scenes // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    with progress_bar("train ventral net", steps) as bar:
        for _ in range(epochs):
            for idx in torch.randperm(n_scenes, generator=gen).split(batch):
                if len(idx) < batch:
                    continue
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    net(x[idx].float() / 255.0), y[idx], weight=weight
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                bar.advance(info=f"loss {loss.item():.4f}")
    net.eval()
    with torch.inference_mode():
        pred = torch.sigmoid(net(x[n_scenes:].float() / 255.0)).numpy() > 0.5
    accuracy = float((pred == y[n_scenes:].numpy().astype(bool)).mean())
    out = Path(out)
    atomic_save(
        out / "model.safetensors",
        lambda p: save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(p)),
    )
    atomic_write_json(
        out / "config.json",
        {
            **DEFAULT,
            "trained_on": {"n_scenes": n_scenes, "epochs": epochs, "seed": seed},
            "heldout_label_accuracy": accuracy,
        },
    )
    return {"heldout_label_accuracy": accuracy}


if __name__ == "__main__":  # python -m neuraldiffuser.simulate.ventral OUT [n_scenes] [epochs]
    args = sys.argv[1:]
    print(train(args[0] if args else WEIGHTS, *(int(a) for a in args[1:3])))
