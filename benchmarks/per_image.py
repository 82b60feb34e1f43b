"""Per-image metric values of benchmark rows, committed beside the means (compact JSON in
benchmarks/results/).

A mean in the docs says little without its spread, and a paired interval cannot be checked without the
values it pairs. Every benchmark that quotes evaluated rows writes them here with ``write_per_image``;
``benchmarks/paired_intervals.py`` recomputes the docs' paired intervals from these files.

    python benchmarks/per_image.py runs/demo/recon/metrics.json benchmarks/results/demo_per_image.json

(the last form collects a finished `evaluate` output, e.g. the demo's, by hand).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEYS = ("method", "setting", "policy", "params", "sweep", "images")


def compact_row(row: dict, **extra) -> dict:
    """The identifying fields, the per-image values (6 decimals; every per-ROI brain score but 'all' left out:
    the docs quote 'all') and any ``extra`` fields (e.g. a benchmark's own variant name)."""
    from neuraldiffuser.evaluation.compare import compared_metrics

    out = {k: row[k] for k in KEYS if k in row}
    out.update(extra)
    out["per_image"] = {
        k: [None if v is None else round(float(v), 6) for v in row["per_image"][k]]
        for k in compared_metrics(row)
    }
    return out


def rows_of(metrics_json: str | Path, keep=None) -> list[dict]:
    """Compact rows of an `evaluate` output (``keep(row)`` filters)."""
    doc = json.loads(Path(metrics_json).read_text())
    return [compact_row(r) for r in doc["rows"] if r.get("per_image") and (keep is None or keep(r))]


def write_per_image(out: str | Path, rows: list[dict], **meta) -> Path:
    """One JSON file: ``meta`` (what produced it) and the rows, one line per row."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows)
    out.write_text('{"meta": ' + json.dumps(meta) + ',\n"rows": [\n' + body + "\n]}\n")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python benchmarks/per_image.py METRICS_JSON OUT_JSON")
    path = write_per_image(sys.argv[2], rows_of(sys.argv[1]), source=sys.argv[1])
    print(f"wrote {path}")
