"""The model card (README.md) a saved pipeline carries: what data, which preset, which scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Where ``metrics.json`` of a run's reconstructions is looked for, relative to the run folder (the demo keeps
#: its decoders in DEMO/decoders and its scores in DEMO/recon).
METRICS_PLACES = ("metrics.json", "recon/metrics.json", "../recon/metrics.json")


def find_scores(run_dir: Path, method: str = "neuraldiffuser") -> dict[str, dict[str, float]] | None:
    """{setting: {metric: value}} from the repeat-0 rows of a run's metrics.json, or None if it has none."""
    for rel in METRICS_PLACES:
        path = run_dir / rel
        if path.is_file():
            try:
                rows = json.loads(path.read_text()).get("rows", [])
            except (OSError, json.JSONDecodeError):
                continue
            out = {
                r["setting"]: {k: v for k, v in r.get("values", {}).items() if isinstance(v, (int, float))}
                for r in rows
                if r.get("method") == method and r.get("policy") == "repeat0"
            }
            if out:
                return out
    return None


def model_card(info: dict[str, Any]) -> str:
    """Markdown with a YAML header, from the pipeline.json contents."""
    d, s = info.get("data", {}), info.get("sampler", {})
    lines = [
        "---",
        "library_name: neuraldiffuser",
        "tags: [fmri, image-reconstruction, diffusion]",
        "---",
        "",
        f"# {info['class']} — subject {d.get('subject')}",
        "",
        "Reconstructs seen images from fMRI betas of one subject: its decoders predict "
        "Stable Diffusion's text conditioning c, initial latent z and low-level CLIP "
        "features g, then a g-guided img2img sampler draws the images (docs/method-notes.md).",
        "",
        "```python",
        "from neuraldiffuser import NeuralDiffuserPipeline",
        "pipe = NeuralDiffuserPipeline.from_pretrained('THIS_FOLDER')",
        "images = pipe(betas, seed=0)   # betas: (n, n_voxels) float32 raw betas → (n, R, H, W, 3) uint8",
        "```",
        "",
        "## Data",
        "",
        f"- dataset: `{d.get('dataset')}` ({d.get('layout')} layout)",
        f"- subject: {d.get('subject')}, {d.get('n_voxels')} voxels, "
        f"{d.get('train_images')} training images, sessions: "
        f"{d.get('sessions') or 'all'}, held-out images: {d.get('holdout_images', 0)}",
        f"- preset: {info.get('preset')}; decoder layout: "
        f"{info.get('decoder_layout')}; models: {', '.join(info.get('models', []))}",
        f"- ridge baseline included: {'yes' if info.get('ridge') else 'no'}",
        "",
        "## Sampler",
        "",
        f"- zoo: `{info.get('zoo')}`",
        "- "
        + ", ".join(
            f"{k} {s[k]}"
            for k in ("steps", "strength", "cfg_scale", "sag_scale", "kappa", "eta", "repeats")
            if k in s
        ),
        "",
        "## Scores",
        "",
    ]
    scores = info.get("scores")
    if not scores:
        lines.append(
            "No scores were measured for this run (run `neuraldiffuser evaluate` on its reconstructions)."
        )
    else:
        metrics = sorted({m for v in scores.values() for m in v})
        lines += [
            "Repeat 0 of each test image, on the run's test set:",
            "",
            "| setting | " + " | ".join(metrics) + " |",
            "|---" * (len(metrics) + 1) + "|",
        ]
        for setting, vals in scores.items():
            lines.append(
                f"| {setting} | " + " | ".join(f"{vals[m]:.3f}" if m in vals else "–" for m in metrics) + " |"
            )
    return "\n".join(lines) + "\n"
