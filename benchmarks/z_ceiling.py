"""How much of the initial latent z can any decoder read from the simulated brain, and what does z alone give?

    python benchmarks/z_ceiling.py --demo runs/demo [--work WORK]

The target ablation (target_ablation.py) shows that the decoded z limits the reconstructions. This asks
whether a better z decoder could close the gap, or whether the data cannot carry more:

1. z decoded by ridge from the simulator's *noiseless* responses (``EncodingModel.predict``: the limit of
   infinitely many repeats) on the target subject's own training images, and on every non-test image of
   the dataset (4× the images). Ridge α is chosen on held-out training images, as for the baseline.
2. the same ridge on the measured, noisy betas (repeats averaged per image, z-scored on training trials);
3. the demo's decoded z (the preset's MLP decoders, distribution-matched).

For each z and for the true z the images are the VAE's decodes of z alone (no diffusion, no c, no g), scored
with the evaluation protocol on the test images: PixCorr, SSIM, mini-CLIP and EffNet-Lite0 2-way. With
``--work``, each z also goes through the whole method: the `mini` preset's sampler with the demo's decoded c
and g (repeat 0, `neuraldiffuser reconstruct` and `evaluate`), the columns ``pipeline …``.

Writes benchmarks/results/z_ceiling.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way"]


def r_image(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over images of the Pearson r between predicted and true z (flattened)."""
    p, t = pred.reshape(len(pred), -1), true.reshape(len(true), -1)
    p, t = p - p.mean(1, keepdims=True), t - t.mean(1, keepdims=True)
    return float(np.mean((p * t).sum(1) / np.sqrt((p * p).sum(1) * (t * t).sum(1))))


def ridge_z(
    x_train: np.ndarray, z_train: np.ndarray, images: np.ndarray, x_test: np.ndarray, alphas: list[float]
):
    """Ridge with α chosen on held-out training images; returns (test predictions, chosen α)."""
    from neuraldiffuser.models.ridge import RidgeDecoder

    ridge = RidgeDecoder(alphas).fit(x_train, {"z": z_train}, images=images)
    return ridge.predict(x_test)["z"], ridge.chosen["z"]


def vae_images(components, z: np.ndarray, batch: int = 25) -> np.ndarray:
    """uint8 (N, H, W, 3) decodes of scaled latents."""
    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch):
            x = torch.as_tensor(z[i : i + batch], dtype=torch.float32) / components.latent_scale
            img = components.vae.decode(x).sample.float().clamp(-1, 1)
            out.append(((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def image_scores(evaluator, images: np.ndarray, recon: np.ndarray) -> dict[str, float]:
    """PixCorr, SSIM and the embedded 2-way scores of ``recon`` against the stimuli ``images``."""
    from neuraldiffuser.evaluation import metrics
    from neuraldiffuser.evaluation.preprocess import to_protocol
    from neuraldiffuser.evaluation.registry import METRICS

    real, pred = to_protocol(evaluator.truth(images)), to_protocol(recon)
    out = {
        "PixCorr": float(metrics.pixcorr(real, pred).mean()),
        "SSIM": float(metrics.ssim(real, pred).mean()),
    }
    truth = evaluator.truth_features(images)
    for name in SHOWN[2:]:
        spec = METRICS[name]
        feats = evaluator.model(spec.backbone)(pred)[spec.node]
        out[name] = float(metrics.two_way_identification(truth[spec.backbone][spec.node], feats).mean())
    return out


def ridge_latents(dataset, subj, root: Path, z_of, test_set) -> dict[str, tuple[np.ndarray, dict]]:
    """True z and ridge-decoded z of the test images: from noiseless responses (own images, every non-test
    image) and from the measured betas (z-scored with the training trials' statistics, repeats
    averaged per image)."""
    from neuraldiffuser.models.ridge import average_by_image
    from neuraldiffuser.simulate.encoding import EncodingModel

    test, alphas = test_set.images, [float(a) for a in np.logspace(-3, 6, 10)]
    encoder = EncodingModel.load(root, subj.name)
    own = np.unique(subj.train_images())
    every = np.setdiff1d(np.arange(len(dataset.images)), test)  # the test images are shared by every subject
    clean_test = encoder.predict(dataset.images.get(test)).astype(np.float32)
    clean_every = encoder.predict(dataset.images.get(every)).astype(np.float32)
    clean_own = clean_every[np.searchsorted(every, own)]
    rows = subj.train_rows()
    betas = subj.read(rows)
    mu, sd = betas.mean(0), betas.std(0) + 1e-6
    x_noisy, img_noisy = average_by_image((betas - mu) / sd, subj.image_of_rows(rows))
    x_noisy_test = (subj.test_betas(test_set) - mu) / sd
    zs: dict[str, tuple[np.ndarray, dict]] = {"true z": (z_of(test), {})}
    for label, x_tr, imgs, x_te in [
        (f"ridge, noiseless responses, own {len(own)} training images", clean_own, own, clean_test),
        (f"ridge, noiseless responses, all {len(every)} non-test images", clean_every, every, clean_test),
        (f"ridge, measured betas, own {len(img_noisy)} training images", x_noisy, img_noisy, x_noisy_test),
    ]:
        pred, alpha = ridge_z(x_tr, z_of(imgs), imgs, x_te, alphas)
        zs[label] = (pred, {"alpha": alpha})
    return zs


def pipeline_scores(
    work: Path, demo: Path, decoded, zs: dict[str, tuple[np.ndarray, dict]], test: np.ndarray
) -> dict[str, dict]:
    """Each z with the demo's decoded c and g through the preset's sampler; repeat-0 scores per label."""
    from neuraldiffuser.config import load_config
    from neuraldiffuser.evaluation.runner import run_evaluation
    from neuraldiffuser.sampling.processes import reconstruct_in_processes
    from neuraldiffuser.targets.store import write_store

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = load_config(
        "mini", overrides={"sampler": {"repeats": 1}}
    )  # in process: `reconstruct --preset mini --repeats 1`
    folders = {}
    for i, (label, (z, _)) in enumerate(zs.items()):
        values = {k: decoded.get_images(k, test) for k in decoded.keys if k != "z"} | {
            "z": z.astype(np.float32)
        }
        store = write_store(work / f"z{i}.hdf5", test, values, {**dict(decoded.attrs), "z_source": label})
        (folder,) = reconstruct_in_processes(store, work / f"recon_z{i}", config, 2, dataset=demo / "data")
        folders[label] = folder.resolve()
    run_evaluation(
        list(folders.values()),
        demo / "data",
        load_config("mini", overrides={"evaluate": {"metrics": SHOWN}}),
        work / "metrics",
    )
    rows = json.loads((work / "metrics" / "metrics.json").read_text())["rows"]
    by_dir = {Path(r["recon_dir"]).resolve(): r["values"] for r in rows if r["policy"] == "repeat0"}
    return {label: {f"pipeline {k}": by_dir[folder][k] for k in SHOWN} for label, folder in folders.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--demo", required=True, type=Path, help="A finished demo folder (data/, targets.hdf5, decoded.hdf5)."
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="Also reconstruct with each z (decoded c and g), working here.",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "z_ceiling.json")
    args = ap.parse_args()
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    from neuraldiffuser.config import load_config
    from neuraldiffuser.evaluation.runner import Evaluator
    from neuraldiffuser.targets.store import TargetStore
    from neuraldiffuser.zoo.loader import Components

    t0 = time.perf_counter()
    demo = args.demo.resolve()
    config = load_config(
        "mini", overrides={"data": {"path": str(demo / "data")}, "evaluate": {"cache": False}}
    )
    evaluator = Evaluator(config, demo / "data")
    dataset, name = evaluator.dataset, config.data.subject
    subj, targets, decoded = (
        dataset.subject(name),
        TargetStore(demo / "targets.hdf5"),
        TargetStore(demo / "decoded.hdf5"),
    )
    test_set = subj.test_set()
    test = test_set.images
    z_of = lambda images: targets.get_images("z", images).astype(np.float32)  # noqa: E731

    zs = ridge_latents(dataset, subj, demo / "data", z_of, test_set)
    zs["MLP decoders (the demo's decoded.hdf5)"] = (decoded.get_images("z", test).astype(np.float32), {})

    components = Components(config.zoo)
    full = pipeline_scores(args.work.resolve(), demo, decoded, zs, test) if args.work else {}
    rows_out = []
    for label, (z, extra) in zs.items():
        row = {
            "z": label,
            "r_image": r_image(z, z_of(test)),
            **extra,
            **image_scores(evaluator, test, vae_images(components, z)),
            **full.get(label, {}),
        }
        rows_out.append(row)
        print(
            f"{label}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)),
            flush=True,
        )
    result = {
        "demo": str(args.demo),
        "subject": name,
        "n_test_images": len(test),
        "images": "VAE decode of z alone",
        "rows": rows_out,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{len(test)} test images of {name}; images are the VAE's decode of z alone")
    cols = SHOWN + [f"pipeline {k}" for k in SHOWN if full]
    print("| z | r(z, true z) | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
    for r in rows_out:
        print(f"| {r['z']} | {r['r_image']:.3f} | " + " | ".join(f"{r[k]:.3f}" for k in cols) + " |")


if __name__ == "__main__":
    main()
