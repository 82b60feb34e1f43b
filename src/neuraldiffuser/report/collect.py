"""Gather what a report shows from run folders: metric files, reconstruction folders, stimuli."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..evaluation.files import read_metrics
from ..evaluation.recon import ReconFolder, read_recon_manifest

PAPER_DEFAULT = (3e5, 0.2)  # κ, η of the released code (method notes §5.1)


@dataclass
class Entry:
    """One (method, setting): its table rows and, when the folder is still there, its images."""

    row: dict  # the table-repeat row
    mean: dict | None
    recon: ReconFolder | None
    doc: dict

    @property
    def method(self) -> str:
        return self.row["method"]

    @property
    def setting(self) -> str:
        return self.row["setting"]

    @property
    def sweep(self) -> tuple[float, float] | None:
        s = self.row.get("sweep")
        return (float(s[0]), float(s[1])) if s else None


@dataclass
class ReportData:
    docs: list[dict]
    entries: list[Entry]
    references: list[dict] = field(default_factory=list)
    retrieval: list[dict] = field(default_factory=list)
    _stimuli: dict = field(default_factory=dict)

    def methods(self) -> list[str]:
        return list(dict.fromkeys(e.method for e in self.entries))

    def of(self, method: str) -> list[Entry]:
        return [e for e in self.entries if e.method == method]

    def main_entry(self, method: str) -> Entry:
        """The paper's default κ=3e5, η=0.2 when swept, else the method's first setting."""
        entries = self.of(method)
        return next((e for e in entries if e.sweep == PAPER_DEFAULT), entries[0])

    def stimulus(self, entry: Entry, image: int) -> np.ndarray | None:
        """The stimulus from the dataset the metrics were computed against, else the strip's left panel."""
        truth = entry.doc.get("truth")
        if truth not in self._stimuli:
            try:
                from ..data import open_dataset

                self._stimuli[truth] = open_dataset(truth).images
            except Exception:  # moved or deleted dataset: fall back to the strips
                self._stimuli[truth] = None
        store = self._stimuli[truth]
        if store is not None:
            return store.get(image)
        strip = entry.recon.strip(image) if entry.recon else None
        if strip is not None and strip.is_file():
            from ..evaluation.recon import read_png

            im = read_png(strip)
            return im[:, : im.shape[0]]
        return None


def find_metric_files(run_dirs) -> list[Path]:
    out: list[Path] = []
    for d in map(Path, run_dirs):
        if d.is_file() and d.name == "metrics.json":
            out.append(d)
            continue
        if not d.is_dir():
            raise DataError("run folder not found", where=str(d))
        found = [d / "metrics.json"] if (d / "metrics.json").is_file() else sorted(p for p in d.rglob("metrics.json") if ".cache" not in p.parts)
        if not found:
            raise DataError("no metrics.json in this run folder", where=str(d), fix="run `neuraldiffuser evaluate RECON_DIR --truth DATASET` first")
        out += [p for p in found if p not in out]
    return out


def _recon_of(row: dict, doc_path: Path) -> ReconFolder | None:
    for cand in (row.get("recon_dir"), row.get("recon_rel") and str(doc_path.parent / row["recon_rel"])):
        if cand and (Path(cand) / "manifest.json").is_file():
            try:
                return read_recon_manifest(Path(cand))
            except DataError:
                return None
    return None


def collect(run_dirs) -> ReportData:
    docs = [read_metrics(p) for p in find_metric_files(run_dirs)]
    entries: list[Entry] = []
    seen: set[tuple[str, str]] = set()
    for doc in docs:
        by_key: dict[tuple[str, str], dict[str, dict]] = {}
        for row in doc["rows"]:
            by_key.setdefault((row["method"], row["setting"]), {})[row["policy"]] = row
        for key, policies in by_key.items():
            if key in seen:
                continue  # the same folder evaluated twice: keep the first metrics file's rows
            seen.add(key)
            main = next((r for p, r in policies.items() if p.startswith("repeat")), next(iter(policies.values())))
            entries.append(Entry(main, policies.get("mean"), _recon_of(main, Path(doc["_path"])), doc))
    entries.sort(key=lambda e: (e.method, e.sweep or (float("inf"), 0.0), e.setting))
    refs = [r for d in docs for r in d.get("references", [])]
    ret = [d["retrieval"] for d in docs if d.get("retrieval")]
    return ReportData(docs, entries, refs, ret)
