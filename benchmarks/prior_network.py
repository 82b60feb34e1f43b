"""Our diffusion-prior network against MindEye2's (`decoder.prior_network`), in silico at the mini scale.

    neuraldiffuser simulate --preset mini --out WORK/ds
    neuraldiffuser extract WORK/ds --preset mini --out WORK/targets.hdf5
    python benchmarks/prior_network.py --dataset WORK/ds --targets WORK/targets.hdf5 --work WORK/prior \
        [--recon 30]

Both variants are the `mini` preset's multi-head decoder with a prior on c and every g layer (the preset
itself has none, docs/training.md says why), trained with the same seed, data and schedule; only the
network inside the prior differs (prior depth/heads/ff-mult from the preset). Decoding samples each prior
as the preset does (mean of `decode.prior_samples` DDIM samples). Per target: Pearson r per test image and
two-way identification, each per image (kept in the JSON), with a paired 95% interval of the difference.
``--recon N`` also reconstructs the first N test images with each variant's decoded targets (the preset's
sampler, repeat 0) and scores them with `neuraldiffuser evaluate`.

``--variants mindeye2`` runs one network (each variant may run in its own process, same WORK); ``--reuse``
then skips a variant whose training and decoding finished (WORK/<variant>/timing.json) and collects both.

Writes benchmarks/results/prior_network.json (per-image values inside) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from decoders import decode, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECON = ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way", "EffNet-Lite0 dist"]


def per_image(decoded: Path, targets: Path) -> dict[str, dict[str, list[float]]]:
    """Per test image: Pearson r with the true features and the two-way score, for c and each g layer."""
    from neuraldiffuser.evaluation.metrics import pearson_rows, two_way_identification
    from neuraldiffuser.targets.store import TargetStore

    dec, truth = TargetStore(decoded), TargetStore(targets)
    out = {}
    for key in [k for k in dec.keys if k in ("c", "g")]:
        pred, true = dec.get(key, np.arange(len(dec))), truth.get_images(key, dec.image)
        parts = (
            {key: (pred, true)}
            if key == "c"
            else {f"g{i}": (pred[:, i], true[:, i]) for i in range(pred.shape[1])}
        )
        for name, (p, t) in parts.items():
            p, t = p.reshape(len(p), -1).astype(np.float64), t.reshape(len(t), -1).astype(np.float64)
            out[name] = {
                "r_image": pearson_rows(t, p).round(6).tolist(),
                "two_way": two_way_identification(t, p).round(6).tolist(),
            }
    return out


def mini_config(**sections):
    """The ``mini`` preset with ``sections`` overridden, paths absolute (what ``--preset
    mini`` gives a stage)."""
    from neuraldiffuser.config import load_config
    from neuraldiffuser.config.paths import absolute_paths

    return absolute_paths(load_config("mini", overrides=sections))


def reconstruct(decoded: Path, data: Path, work: Path, limit: int) -> Path:
    """The first ``limit`` images, repeat 0, the preset's sampler
    (`reconstruct --repeats 1 --preset mini`)."""
    from target_ablation import swapped_store

    from neuraldiffuser.sampling.runner import make_job
    from neuraldiffuser.sampling.runner import reconstruct as run_reconstruct

    store = swapped_store(decoded, decoded, (), work / "recon_input.hdf5", limit)
    cfg = mini_config(sampler={"repeats": 1})
    (folder,) = run_reconstruct(make_job(store, cfg, dataset=data), work / "recon", cfg)
    return folder


def evaluate(folders: list[Path], data: Path, out: Path) -> dict:
    """`evaluate FOLDERS --truth DATA --preset mini`: the metrics document, per-image values inside."""
    from neuraldiffuser.evaluation.runner import run_evaluation

    return run_evaluation(folders, data, mini_config(), out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--targets", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument(
        "--recon", type=int, default=0, help="reconstruct and score the first N test images per variant"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--variants", default="ours,mindeye2", help="prior networks to run (a separate process may run each)"
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep a variant's finished training and decoding in WORK (timing.json)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "prior_network.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NEURALDIFFUSER_PROGRESS", "0")
    import torch

    from neuraldiffuser.config import load_config

    torch.set_num_threads(args.threads)
    base = load_config(
        "mini", overrides={"data": {"path": str(args.dataset)}, "decoder": {"prior": ["c", "g"]}}
    )
    base.train.tensorboard = False
    result = {
        "dataset": str(args.dataset),
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "loadavg_start": os.getloadavg(),
        },
        "decoder": base.decoder.model_dump(mode="json"),
        "train": {
            "pretrain_epochs": base.train.pretrain_epochs,
            "finetune_epochs": base.train.finetune_epochs,
        },
        "decode": base.decode.model_dump(mode="json"),
        "variants": {},
    }
    folders = {}
    for net in args.variants.split(","):
        cfg = base.model_copy(deep=True)
        cfg.decoder.prior_network = net
        run_dir = args.work / net
        decoded = run_dir / "decoded_neuraldiffuser.hdf5"
        if args.reuse and (run_dir / "timing.json").is_file():
            timing, dec_s = json.loads((run_dir / "timing.json").read_text()).values()
        else:
            timing = train(cfg, run_dir, args.targets)
            _, dec_s = decode(cfg, run_dir, args.targets)
            (run_dir / "timing.json").write_text(json.dumps({"train": timing, "decode_seconds": dec_s}))
        result["variants"][net] = {
            "train": timing,
            "decode_seconds": dec_s,
            "per_image": per_image(decoded, args.targets),
        }
        print(f"{net}: train {timing['wall_seconds']:.0f}s, decode {dec_s:.0f}s", flush=True)
        if args.recon:
            folders[net] = reconstruct(decoded, args.dataset, run_dir, args.recon)
    if folders:
        doc = evaluate(list(folders.values()), args.dataset, args.work / "metrics")
        for net, folder in folders.items():
            row = next(
                r
                for r in doc["rows"]
                if r["policy"] == "repeat0" and Path(r["recon_dir"]) == folder.resolve()
            )
            from per_image import compact_row

            shown = {k: v for k, v in row["values"].items() if k in RECON}
            result["variants"][net]["recon"] = {
                "n_images": args.recon,
                "values": shown,
                "per_image": compact_row(row)["per_image"],
            }
    result["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if len(result["variants"]) == 2:
        print(table(result))


def table(result: dict) -> str:
    from neuraldiffuser.evaluation.compare import paired_difference

    ours, me2 = (result["variants"][k]["per_image"] for k in ("ours", "mindeye2"))
    lines = ["| target | metric | ours | mindeye2 | mindeye2 − ours (paired 95%) |", "|---|---|---|---|---|"]
    for name in ours:
        for m in ("r_image", "two_way"):
            a, b = np.array(ours[name][m]), np.array(me2[name][m])
            lo, hi = paired_difference(b, a)["ci95"]
            lines.append(
                f"| {name} | {m} | {a.mean():.3f} | {b.mean():.3f} | "
                f"{b.mean() - a.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] |"
            )
    if all("recon" in result["variants"][k] for k in ("ours", "mindeye2")):
        a, b = (result["variants"][k]["recon"]["per_image"] for k in ("ours", "mindeye2"))
        n = result["variants"]["ours"]["recon"]["n_images"]
        for m in RECON:
            if m in a and m in b:
                d = paired_difference(b[m], a[m])
                lines.append(
                    f"| recon ({n} images) | {m} | {np.mean(a[m]):.3f} | {np.mean(b[m]):.3f} "
                    f"| {d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] |"
                )
    for k in ("ours", "mindeye2"):
        v = result["variants"][k]
        lines.append(f"| all | train s ({k}) | {v['train']['wall_seconds']:.0f} | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
