"""Recompute the paired intervals the README and docs quote, from the committed per-image values.

    python benchmarks/paired_intervals.py [--results benchmarks/results]

Each table below names the doc it appears in, the per-image file (written by the benchmark named in
``made_by``) and which rows are paired. The interval is `evaluation/compare.py`'s: the mean of the per-image
differences ± 1.96 × their sample SD / √n, on the images both rows scored. A file that is not there yet is
listed with the command that writes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = {"method": "neuraldiffuser", "setting": "kappa=300_eta=0.4"}
UNGUIDED = {"method": "neuraldiffuser", "setting": "kappa=0_eta=0"}
TABLES = [
    {
        "doc": "README.md, 'guided − unguided' (the demo)",
        "file": "demo_per_image.json",
        "made_by": "neuraldiffuser demo -o runs/demo && python benchmarks/per_image.py "
        "runs/demo/recon/metrics.json benchmarks/results/demo_per_image.json",
        "row": PRESET,
        "minus": [UNGUIDED],
        "policies": ["repeat0", "mean"],
        "metrics": [
            "PixCorr",
            "SSIM",
            "mini-CLIP 2-way",
            "EffNet-Lite0 2-way",
            "EffNet-Lite0 dist",
            "Repeat SSIM",
        ],
    },
    {
        "doc": "docs/methods.md, 'preset (κ 300, η 0.4) minus' (the in-silico benchmark)",
        "file": "insilico_per_image.json",
        "made_by": "python benchmarks/insilico.py --work WORK --demo runs/demo "
        "--repeats 2 --kappa 30 --kappa 100 --kappa 300 --kappa 1000 --kappa 3e5",
        "row": PRESET,
        "minus": [UNGUIDED, {"method": "ridge", "setting": "kappa=300_eta=0.4"}, {"method": "minddiffuser"}],
        "policies": ["repeat0"],
        "metrics": [
            "PixCorr",
            "SSIM",
            "mini-CLIP 2-way",
            "EffNet-Lite0 2-way",
            "EffNet-Lite0 dist",
            "Brain corr. all",
            "Repeat SSIM",
        ],
    },
    {
        "doc": "docs/sampler.md, validation grid minus strength 0.75, κ 30, η 0.4 (held-out training images)",
        "file": "kappa_validation_per_image.json",
        "made_by": "python benchmarks/kappa_validation.py --demo runs/demo --work "
        "WORK --strength 0.5 --strength 0.6 --strength 0.75 --strength 0.85",
        "row": None,
        "minus": [{"strength": 0.75, "kappa": 30.0, "eta": 0.4}],
        "policies": ["mean"],
        "metrics": ["PixCorr", "SSIM", "mini-CLIP 2-way", "EffNet-Lite0 2-way"],
    },
]


def matches(row: dict, sel: dict) -> bool:
    return all(row.get(k) == v for k, v in sel.items())


def find(rows: list[dict], sel: dict, policy: str) -> dict | None:
    hits = [r for r in rows if matches(r, sel) and r.get("policy") == policy]
    return hits[0] if hits else None


def label(row: dict) -> str:
    if "strength" in row:
        return f"strength {row['strength']:g}, κ {row['kappa']:g}, η {row['eta']:g}"
    return f"{row['method']} {row['setting']}"


def cell(d: dict | None, metric: str) -> str:
    if d is None:
        return "—"
    half = d["ci95"][1] - d["mean"]
    if "2-way" in metric:
        return f"{100 * d['mean']:+.1f} ± {100 * half:.1f} pt"
    return f"{d['mean']:+.3f} ± {half:.3f}"


def table(spec: dict, rows: list[dict]) -> list[str]:
    from neuraldiffuser.evaluation.compare import compare_rows

    metrics = spec["metrics"]
    out = []
    for policy in spec["policies"]:
        out += [
            f"policy {policy}:",
            "| row | minus | n | " + " | ".join(metrics) + " |",
            "|---|---|---|" + "---|" * len(metrics),
        ]
        for base_sel in spec["minus"]:
            base = find(rows, base_sel, policy)
            if base is None:
                out.append(f"| — | {base_sel} not in the file | | " + " | " * len(metrics))
                continue
            heads = (
                [find(rows, spec["row"], policy)]
                if spec["row"]
                else [r for r in rows if r.get("policy") == policy and r is not base]
            )
            for head in heads:
                if head is None:
                    out.append(f"| {spec['row']} not in the file | | | " + " | " * len(metrics))
                    continue
                diffs = compare_rows(head, base, metrics)
                n = next(iter(diffs.values()))["n"] if diffs else 0
                out.append(
                    f"| {label(head)} | {label(base)} | {n} | "
                    + " | ".join(cell(diffs.get(m), m) for m in metrics)
                    + " |"
                )
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    missing = []
    for spec in TABLES:
        path = args.results / spec["file"]
        if not path.is_file():
            missing.append(
                f"- {spec['doc']}: {spec['file']} is missing; it is written by `{spec['made_by']}`"
            )
            continue
        doc = json.loads(path.read_text())
        print(f"## {spec['doc']}\n{spec['file']} ({doc.get('meta', {})})\n")
        print("\n".join(table(spec, doc["rows"])))
    if missing:
        print("Not recomputable yet (no committed per-image values):")
        print("\n".join(missing))


if __name__ == "__main__":
    main()
