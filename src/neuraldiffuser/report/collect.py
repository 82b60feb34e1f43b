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
        """The setting the run's preset samples with (its ``sampler.kappa``/``eta``,
        recorded in metrics.json).

        Failing that, the paper's default κ=3e5, η=0.2, then the first guided (κ > 0) setting, then the
        first: κ = 0 is the ablation, never the headline when a guided setting was scored.
        """
        entries = self.of(method)
        for e in entries:
            preset = e.doc.get("preset_setting")
            if preset and e.sweep == (float(preset["kappa"]), float(preset["eta"])):
                return e
        guided = [e for e in entries if e.sweep and e.sweep[0] > 0]
        return next((e for e in entries if e.sweep == PAPER_DEFAULT), guided[0] if guided else entries[0])

    def headline_entries(self) -> list[Entry]:
        """One entry per method (its main setting); every folder of an ``evaluate-images`` run,
        which has no sweep."""
        out: list[Entry] = []
        for m in self.methods():
            entries = self.of(m)
            out += (
                entries
                if all(e.doc.get("source") == "evaluate-images" for e in entries)
                else [self.main_entry(m)]
            )
        return out

    def setting_words(self, entry: Entry) -> str:
        """What a figure of this entry shows, in words: 'guided, κ = 300, η = 0.4 (the preset's setting)'."""
        if entry.sweep is None:
            return entry.setting
        kappa, eta = entry.sweep
        if kappa == 0:
            return "unguided, κ = 0 (the ablation)"
        preset = entry.doc.get("preset_setting")
        mark = (
            " (the preset's setting)"
            if preset and (float(preset["kappa"]), float(preset["eta"])) == entry.sweep
            else ""
        )
        return f"guided, κ = {kappa:g}, η = {eta:g}{mark}"

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
        found = (
            [d / "metrics.json"]
            if (d / "metrics.json").is_file()
            else sorted(p for p in d.rglob("metrics.json") if ".cache" not in p.parts)
        )
        if not found:
            raise DataError(
                "no metrics.json in this run folder",
                where=str(d),
                fix="run `neuraldiffuser evaluate RECON_DIR --truth DATASET` first",
            )
        out += [p for p in found if p not in out]
    return out


def _recon_of(row: dict, doc_path: Path) -> ReconFolder | None:
    if row.get("layout"):  # a folder scored by evaluate-images: no manifest, scanned again
        return _image_folder(row, doc_path)
    for cand in (row.get("recon_dir"), row.get("recon_rel") and str(doc_path.parent / row["recon_rel"])):
        if cand and (Path(cand) / "manifest.json").is_file():
            try:
                return read_recon_manifest(Path(cand))
            except DataError:
                return None
    return None


def _image_folder(row: dict, doc_path: Path):
    from ..evaluation.imagefolders import scan_folder

    lay = row["layout"]
    for cand in (row.get("recon_dir"), row.get("recon_rel") and str(doc_path.parent / row["recon_rel"])):
        if cand and Path(cand).is_dir():
            try:
                return scan_folder(
                    cand,
                    lay.get("strips"),
                    lay.get("truth_tile"),
                    row["images"],
                    method=row["method"],
                    setting=row["setting"],
                )
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
            want = "mean" if doc.get("protocol", {}).get("headline_policy") == "mean" else "repeat"
            main = next((r for p, r in policies.items() if p.startswith(want)), next(iter(policies.values())))
            entries.append(Entry(main, policies.get("mean"), _recon_of(main, Path(doc["_path"])), doc))
    _check_something_to_show(docs, entries)
    entries.sort(key=lambda e: (e.method, e.sweep or (float("inf"), 0.0), e.setting))
    refs = [r for d in docs for r in d.get("references", [])]
    ret = [d["retrieval"] for d in docs if d.get("retrieval") and "unavailable" not in d["retrieval"]]
    return ReportData(docs, entries, refs, ret)


def _check_something_to_show(docs: list[dict], entries: list[Entry]) -> None:
    """A report needs rows and at least one reconstruction folder still on disk; an empty one
    must not be written."""
    where = str(docs[0]["_path"]) if docs else None
    if not entries:
        raise DataError(
            "metrics.json has no rows",
            where=where,
            fix="rerun `neuraldiffuser evaluate` on the reconstructions",
        )
    if all(e.recon is None for e in entries):
        named = entries[0].row.get("recon_dir") or entries[0].row.get("recon_rel") or "?"
        raise DataError(
            f"none of the reconstruction folders that metrics.json names exists any more (e.g. {named})",
            where=where,
            fix="restore them or reconstruct and evaluate again",
        )
