"""``metrics.json`` and ``metrics.csv`` (docs/architecture.md, "metrics.json / metrics.csv").

One row per (method, setting, repeat policy). Each metric value is a number or
``{"unavailable": "<reason>"}``; in the CSV an unavailable cell reads ``unavailable: <reason>``.
Per-image values are kept in the JSON only.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import DataError
from ..utils.io import atomic_write_json, atomic_write_text
from .registry import BRAIN_PREFIX, EMBEDDED_TABLE, PAPER_TABLE

FORMAT = "neuraldiffuser-metrics"
VERSION = 1
ID_COLUMNS = ["method", "setting", "policy", "n_images", "repeats", "kappa", "eta"]


def is_unavailable(value) -> bool:
    return isinstance(value, dict) and "unavailable" in value


def metric_columns(rows: list[dict]) -> list[str]:
    """Metric keys in table order: paper metrics, embedded ones, then brain correlation per ROI."""
    present: list[str] = []
    for row in rows:
        for k in row.get("values", {}):
            if k not in present:
                present.append(k)
    order = [k for k in PAPER_TABLE + EMBEDDED_TABLE if k in present]
    brain = [k for k in present if k.startswith(BRAIN_PREFIX) or k == BRAIN_PREFIX.strip()]
    rest = [k for k in present if k not in order and k not in brain]
    return order + rest + brain


def cell(value) -> str:
    if is_unavailable(value):
        return f"unavailable: {value['unavailable']}"
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_csv(doc: dict) -> str:
    rows = doc["rows"] + doc.get("references", [])
    cols = metric_columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(ID_COLUMNS + cols)
    for row in rows:
        ids = [
            row.get("method"),
            row.get("setting"),
            row.get("policy"),
            row.get("n_images"),
            row.get("repeats"),
            *(row.get("sweep") or [None, None]),
        ]
        writer.writerow([cell(v) for v in ids] + [cell(row["values"].get(c)) for c in cols])
    return buf.getvalue()


def write_metrics(out_dir: str | Path, doc: dict) -> tuple[Path, Path]:
    """Write metrics.json and metrics.csv into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    doc = {"format": FORMAT, "version": VERSION, **doc}
    atomic_write_json(out / "metrics.json", doc)
    atomic_write_text(out / "metrics.csv", to_csv(doc))
    return out / "metrics.json", out / "metrics.csv"


def read_metrics(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read metrics ({exc})", where=str(path), fix="run `neuraldiffuser evaluate` to write it"
        ) from None
    if doc.get("format") != FORMAT or "rows" not in doc:
        raise DataError(f"not a metrics file (format {doc.get('format')!r})", where=str(path))
    doc["_path"] = str(path)
    return doc
