"""The ``evaluate`` stage: score reconstruction folders against the stimuli they came from.

Repeats (the released code does not say which repeat the paper scores, method notes §6.2): every metric is
computed for each repeat separately over all N images, as the protocol defines it for one reconstruction per
image. Two rows are written per folder: ``repeat0`` (the table's number: one reconstruction per image, like
every published row) and ``mean`` (the average of the R per-repeat scores, with their spread).
Repeat consistency (mean pairwise SSIM of the repeats) does not depend on the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.schema import Config
from ..data import open_dataset
from ..errors import DataError
from ..utils.progress import progress_bar
from . import brain, metrics
from .backbones import FeatureModel, Settings, Unavailable, build, locate, resolve_device, weights_fingerprint
from .cache import FeatureCache, ResultCache, digest
from .preprocess import grey, pixel_view, to_protocol
from .recon import ReconFolder
from .registry import METRICS, brain_key, resolve_names

BRAIN = "Brain corr."
CACHE_VERSION = 1  # bump when a metric's computation changes, so cached folders are scored again


@dataclass
class BrainContext:
    encoder: object
    roi: np.ndarray
    size: tuple[int, int] | None
    measured: dict[int, np.ndarray]  # image index -> (V,) repeat-averaged betas, in the scaler's units
    scaler: object  # data.VoxelScaler applied to measured and predicted betas alike
    subject: object = None  # data.SubjectData, to read training images' betas when asked for

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.scaler.transform(brain.predict(self.encoder, images, self.size, len(self.roi))).astype(
            np.float64
        )


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


class Evaluator:
    """Holds the dataset, the backbones (loaded once) and the caches for one evaluation run."""

    def __init__(self, config: Config, truth: str | Path, cache_dir: Path | None = None):
        self.config, self.ev = config, config.evaluate
        # a dataset folder, or an object serving ``images.get`` and ``root`` (evaluation/images.py)
        self.dataset = (
            open_dataset(truth, layout=config.data.layout) if isinstance(truth, (str, Path)) else truth
        )
        self.settings = Settings.from_config(config)
        self.device = resolve_device(self.ev.device)
        self.names = resolve_names(self.ev.metrics)
        self.unavailable: dict[str, str] = {}
        self.sources: dict[str, str] = {}
        for name in self.names:
            bb = METRICS[name].backbone
            if bb is None:
                continue
            try:
                self.sources.setdefault(bb, locate(bb, self.settings))
            except Unavailable as exc:
                self.unavailable[name] = exc.reason
        self._models: dict[str, FeatureModel] = {}
        self._brain: dict[str, BrainContext | str] = {}
        self.features = FeatureCache(cache_dir if self.ev.cache else None)
        self.results = ResultCache(cache_dir if self.ev.cache else None)

    # ------------------------------------------------------------ pieces

    def available(self, kind: str) -> list[str]:
        return [n for n in self.names if METRICS[n].kind == kind and n not in self.unavailable]

    def backbones(self) -> list[str]:
        names = self.available("two_way") + self.available("distance")
        return list(dict.fromkeys(METRICS[n].backbone for n in names))

    def model(self, name: str) -> FeatureModel:
        if name not in self._models:
            self._models[name] = build(name, self.settings, self.device)
        return self._models[name]

    def truth(self, images: np.ndarray) -> np.ndarray:
        return self.dataset.images.get(images)

    def truth_features(self, images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Features of the stimuli for every backbone in use, from the cache when already computed."""
        out, todo = {}, []
        for bb in self.backbones():
            key = digest(
                bb,
                weights_fingerprint(self.sources[bb]),
                self.ev.antialias,
                str(self.dataset.root.resolve()),
                images,
            )
            out[bb] = self.features.load(bb, key)
            if out[bb] is None:
                todo.append((bb, key))
        if todo:
            parts: dict[str, list[dict[str, np.ndarray]]] = {bb: [] for bb, _ in todo}
            batches = list(_batches(len(images), self.ev.batch_size))
            with progress_bar("stimulus features", len(batches) * len(todo)) as bar:
                for sl in batches:
                    x = to_protocol(self.truth(images[sl]), self.ev.antialias)
                    for bb, _ in todo:
                        parts[bb].append(self.model(bb)(x))
                        bar.advance(info=bb)
            for bb, key in todo:
                out[bb] = {node: np.concatenate([p[node] for p in parts[bb]]) for node in parts[bb][0]}
                self.features.save(bb, key, out[bb])
        return out

    def brain_context(self, subject: str) -> BrainContext | str:
        """The subject's encoder and repeat-averaged test betas, or the reason brain
        correlation is unavailable."""
        if BRAIN not in self.names:
            return "not requested"
        if subject not in self._brain:
            try:
                self._brain[subject] = self._make_brain(subject)
            except Unavailable as exc:
                self._brain[subject] = exc.reason
        return self._brain[subject]

    def _make_brain(self, subject: str) -> BrainContext:
        subj = self.dataset.subject(subject)
        encoder = brain.load_encoder(self.ev.brain_encoder, self.dataset.root, subject)
        roi = brain.check_encoder(encoder, subj.n_voxels)
        if getattr(encoder, "roi", None) is None and subj.roi is not None:
            roi = np.asarray(subj.roi).astype(str)
        test = subj.test_set(repeats=self.config.data.test_repeats, order=self.config.data.test_order)
        # betas as the decoders see them (data.zscore): per-voxel baselines would otherwise
        # dominate r across voxels
        from ..data import VoxelScaler

        scaler = (
            VoxelScaler.fit(subj, subj.train_rows())
            if self.config.data.zscore == "train"
            else VoxelScaler.identity(subj.n_voxels)
        )
        betas = scaler.transform(subj.test_betas(test, "voxels"))
        size = (
            self.ev.brain_image_size
            or getattr(encoder, "image_size", None)
            or getattr(encoder, "resolution", None)
            or self.dataset.images.size
        )
        size = (size, size) if isinstance(size, int) else tuple(size)
        measured = {int(i): b for i, b in zip(test.images, betas, strict=True)}
        return BrainContext(encoder, roi, size, measured, scaler, subj)

    def measured(self, ctx: BrainContext, images: np.ndarray, where: str) -> np.ndarray:
        for i in {int(i) for i in images} - ctx.measured.keys():
            # a training image (e.g. of data.holdout_images): its first test_repeats trials, read
            # when first asked for
            rows = ctx.subject.train_trials(i, self.config.data.test_repeats)
            if len(rows):
                ctx.measured[i] = ctx.scaler.transform(ctx.subject.read(rows).mean(0, keepdims=True))[0]
        missing = [int(i) for i in images if int(i) not in ctx.measured]
        if missing:
            raise DataError(
                f"images {missing[:5]} were not shown to this subject",
                where=where,
                fix="evaluate against the dataset and subject the reconstructions came from",
            )
        return np.stack([ctx.measured[int(i)] for i in images]).astype(np.float64)

    # ------------------------------------------------------------ one folder

    def _score_repeat(
        self, rec: ReconFolder, r: int, truth: dict, ctx, measured, bar
    ) -> dict[str, np.ndarray]:
        """Per-image values of every available metric for repeat ``r`` of a folder."""
        images, aa = rec.images, self.ev.antialias
        pix: dict[str, list] = {"PixCorr": [], "SSIM": []}
        feats: dict[str, list] = {bb: [] for bb in self.backbones()}
        preds = []
        for sl in _batches(len(images), self.ev.batch_size):
            raw = rec.load(images[sl], r)
            x = to_protocol(raw, aa)
            t = to_protocol(self.truth(images[sl]), aa)
            pix["PixCorr"].append(metrics.pixcorr(t, x, aa))
            pix["SSIM"].append(metrics.ssim(t, x, aa))
            for bb in feats:
                feats[bb].append(self.model(bb)(x))
            if isinstance(ctx, BrainContext):
                preds.append(ctx.predict(raw))
            bar.advance(info=f"repeat {r}")
        out = {k: np.concatenate(v) for k, v in pix.items() if k in self.names}
        for name in self.available("two_way") + self.available("distance"):
            spec = METRICS[name]
            if spec.kind == "two_way" and len(images) < 2:
                continue  # named in _unavailable_values
            pred = np.concatenate([f[spec.node] for f in feats[spec.backbone]])
            real = truth[spec.backbone][spec.node]
            fn = metrics.two_way_identification if spec.kind == "two_way" else metrics.correlation_distance
            out[name] = fn(real, pred)
        if preds:
            for roi, vals in brain.brain_correlation(np.concatenate(preds), measured, ctx.roi).items():
                out[brain_key(roi)] = vals
        return out

    def _consistency(self, rec: ReconFolder, bar) -> np.ndarray:
        parts = []
        for sl in _batches(len(rec.images), self.ev.batch_size):
            greys = np.stack(
                [
                    grey(
                        pixel_view(
                            to_protocol(rec.load(rec.images[sl], r), self.ev.antialias), self.ev.antialias
                        )
                    )
                    for r in range(rec.repeats)
                ]
            )
            parts.append(metrics.repeat_consistency(greys))
            bar.advance(info="consistency")
        return np.concatenate(parts)

    def folder_key(self, rec: ReconFolder, subject: str) -> str:
        d = self.config.data
        return digest(
            CACHE_VERSION,
            rec.manifest,
            str(rec.path.resolve()),
            str(self.dataset.root.resolve()),
            subject,
            self.ev.model_dump(mode="json"),
            self.unavailable,
            d.test_order,
            d.test_repeats,
            d.zscore,
            d.layout,
        )

    def evaluate_folder(self, rec: ReconFolder, subject: str) -> list[dict]:
        """Rows ``repeat0`` and ``mean`` of one folder (from the result cache when already scored)."""
        key = self.folder_key(rec, subject)
        cached = self.results.load(key)
        if cached is not None:
            return cached
        truth = self.truth_features(rec.images)
        ctx = self.brain_context(subject)
        measured = self.measured(ctx, rec.images, str(rec.path)) if isinstance(ctx, BrainContext) else None
        n_batches = -(-len(rec.images) // self.ev.batch_size)
        want_consistency = "Repeat SSIM" in self.names and rec.repeats > 1
        with progress_bar(f"{rec.method}/{rec.setting}", n_batches * (rec.repeats + want_consistency)) as bar:
            per_repeat = [self._score_repeat(rec, r, truth, ctx, measured, bar) for r in range(rec.repeats)]
            consistency = self._consistency(rec, bar) if want_consistency else None
        rows = make_rows(
            rec, per_repeat, consistency, self._unavailable_values(rec, ctx), self.ev.table_repeat
        )
        self.results.save(key, rows)
        return rows

    def _unavailable_values(self, rec: ReconFolder, ctx) -> dict[str, dict]:
        out = {n: {"unavailable": reason} for n, reason in self.unavailable.items()}
        if "Repeat SSIM" in self.names and rec.repeats < 2:
            out["Repeat SSIM"] = {
                "unavailable": f"the folder has {rec.repeats} repeat per image; consistency needs at least 2"
            }
        if len(rec.images) < 2:
            for name in self.available("two_way"):
                out[name] = {
                    "unavailable": "two-way identification needs at least 2 "
                    f"images; the folder has {len(rec.images)}"
                }
        if isinstance(ctx, str) and BRAIN in self.names:
            out[BRAIN] = {"unavailable": ctx}
        return out

    def stimulus_reference(self, images: np.ndarray, subject: str) -> dict | None:
        """Brain correlation of the stimuli themselves: the ceiling a perfect reconstruction reaches."""
        ctx = self.brain_context(subject)
        if not isinstance(ctx, BrainContext):
            return None
        measured = self.measured(ctx, images, "stimulus reference")
        preds = np.concatenate(
            [ctx.predict(self.truth(images[sl])) for sl in _batches(len(images), self.ev.batch_size)]
        )
        per_image = {brain_key(k): v for k, v in brain.brain_correlation(preds, measured, ctx.roi).items()}
        return {
            "method": "stimulus",
            "setting": "ground truth (encoder ceiling)",
            "policy": "reference",
            "n_images": len(images),
            "repeats": 1,
            "values": {k: float(np.mean(v)) for k, v in per_image.items()},
            "per_image": {k: v.tolist() for k, v in per_image.items()},
            "images": images.tolist(),
        }


def make_rows(
    rec: ReconFolder, per_repeat: list[dict], consistency, unavailable: dict, table_repeat: int
) -> list[dict]:
    """The ``repeat0`` and ``mean`` rows of a folder from per-repeat, per-image values."""
    if not 0 <= table_repeat < rec.repeats:
        raise DataError(
            f"evaluate.table_repeat={table_repeat} but the folder has {rec.repeats} repeats",
            where=str(rec.path),
        )
    base = {
        "method": rec.method,
        "setting": rec.setting,
        "params": rec.params,
        "sweep": rec.sweep_point(),
        "recon_dir": str(rec.path.resolve()),
        "n_images": len(rec.images),
        "repeats": rec.repeats,
        "images": rec.images.tolist(),
        "complete": bool(rec.manifest.get("complete", True)),
    }
    extra = {"Repeat SSIM": consistency} if consistency is not None else {}
    first = per_repeat[table_repeat]
    mean = {k: np.mean([p[k] for p in per_repeat], axis=0) for k in per_repeat[0]}
    rows = []
    for policy, per_image in ((f"repeat{table_repeat}", first), ("mean", mean)):
        per_image = {**per_image, **extra}
        values = {k: float(np.mean(v)) for k, v in per_image.items()}  # NaN propagates, as in the reference
        values.update(unavailable)
        row = {
            **base,
            "policy": policy,
            "values": values,
            "per_image": {k: v.tolist() for k, v in per_image.items()},
        }
        if policy == "mean":
            row["per_repeat"] = {k: [float(np.mean(p[k])) for p in per_repeat] for k in per_repeat[0]}
            row["per_repeat_std"] = {k: float(np.std(v)) for k, v in row["per_repeat"].items()}
        rows.append(row)
    return rows


def retrieval_from_stores(
    decoded: str | Path, targets: str | Path, key: str, draws: int, subset: int, seed: int
) -> dict:
    """Retrieval between decoded (brain) and extracted (image) embeddings of the same test images."""
    from ..targets.store import TargetStore

    with TargetStore(decoded) as dec, TargetStore(targets) as tgt:
        images = dec.image
        brain_emb = dec.get(key, np.arange(len(images)))
        image_emb = tgt.get_images(key, images)
    if len(images) < 2:
        return {
            "unavailable": f"retrieval needs at least 2 images; {Path(decoded).name} has {len(images)}",
            "key": key,
            "decoded": str(decoded),
            "targets": str(targets),
        }
    out = metrics.retrieval(brain_emb, image_emb, draws=draws, subset=subset, seed=seed)
    return {**out, "key": key, "decoded": str(decoded), "targets": str(targets)}


def run_evaluation(
    recon_dirs,
    truth: str | Path,
    config: Config,
    out_dir: str | Path,
    subject: str | None = None,
    decoded: str | Path | None = None,
    targets: str | Path | None = None,
) -> dict:
    """Score every reconstruction folder under ``recon_dirs``; write metrics.json/csv into ``out_dir``."""
    import datetime
    import os

    from ..config import save_config
    from .files import write_metrics
    from .recon import find_recon_folders

    out = Path(out_dir)
    folders = find_recon_folders(recon_dirs)
    ev = Evaluator(
        config,
        truth,
        cache_dir=Path(config.evaluate.cache_dir) if config.evaluate.cache_dir else out / ".cache",
    )
    rows, references, seen = [], [], {}
    for rec in folders:
        subj = subject or rec.subject or config.data.subject
        ev.dataset.subject(
            subj
        )  # an unknown subject is refused here, not only when brain correlation needs it
        rows += [
            {**r, "recon_rel": os.path.relpath(r["recon_dir"], out.resolve())}
            for r in ev.evaluate_folder(rec, subj)
        ]
        seen.setdefault(subj, []).extend(rec.images.tolist())
    for subj, images in seen.items():
        ref = ev.stimulus_reference(np.array(list(dict.fromkeys(images)), dtype=np.int64), subj)
        if ref is not None:
            references.append({**ref, "subject": subj})
    doc = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "truth": str(Path(truth).resolve()),
        "subjects": sorted(seen),
        "out_dir": str(out.resolve()),
        "protocol": {
            "resize_first": 256,
            "pixel_size": 425,
            "antialias": config.evaluate.antialias,
            "table_repeat": config.evaluate.table_repeat,
            "device": str(ev.device),
        },
        "metrics": {
            n: {
                **METRICS[n].info(),
                "unavailable": ev.unavailable.get(n),
                "weights": ev.sources.get(METRICS[n].backbone or ""),
            }
            for n in ev.names
        },
        "rows": rows,
        "references": references,
        "preset_setting": {
            "kappa": config.sampler.kappa,
            "eta": config.sampler.eta,
        },  # the report's headline setting
    }
    if decoded is not None or targets is not None:
        if decoded is None or targets is None:
            from ..errors import ConfigError

            raise ConfigError(
                "retrieval needs both --decoded and --targets",
                fix="give the decoder's decoded.hdf5 and the extracted targets.hdf5",
            )
        c = config.evaluate
        doc["retrieval"] = retrieval_from_stores(
            decoded, targets, c.retrieval_key, c.retrieval_draws, c.retrieval_subset, config.seed
        )
    write_metrics(out, doc)
    save_config(config, out, name="evaluate_config.yaml")  # never clobbers a reconstruct folder's config.yaml
    return doc
