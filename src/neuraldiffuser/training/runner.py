"""``train_decoders``: the two-stage scheme (method notes §4.5) for every decoder of one target subject.

Stage 1 pretrains on the pretraining subjects (per-subject adapters, shared rest); stage 2 builds a
model for the target subject alone, loads every shared weight of stage 1 by name, drops exactly the
other subjects' adapters, gives the target a fresh adapter and trains again with a fresh optimiser
and schedule. ``train.stages: [finetune]`` trains on the target from scratch. Each (stage, model)
resumes from its last checkpoint and is skipped when its final folder exists.

Run folder::

    RUN/config.yaml  scalers/<subject>.safetensors  logs/ (tensorboard)
    RUN/<stage>/<model>/checkpoints/step-N/  RUN/<stage>/<model>/model/
    RUN/decoders/manifest.json  decoders/<model>/  decoders/scaler.safetensors  decoders/z_stats.safetensors
    RUN/ridge/ (train.ridge)   RUN/summary.json
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.schema import Config
from ..data import VoxelScaler, open_dataset
from ..data.dataset import Dataset
from ..data.splits import training_rows
from ..errors import ConfigError, DataError
from ..targets.store import TargetStore
from ..utils.io import atomic_dir, atomic_write_json, link_or_copy
from ..utils.launch import warn_launch
from ..utils.progress import console
from .autoscale import adapt_to_data
from .batches import Pool, TrainingData
from .disk import check_free_disk, checkpoints_written, count_params, run_disk_bytes
from .loop import StagePlan, Trainer
from .objective import TEACHER
from .specs import build_model, head_keys, model_groups, target_stats


def make_accelerator(config: Config, run_dir: Path):
    """One Accelerator for the whole run (CPU, GPUs or nodes as launched; mixed precision from the config)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    cfg = config.train
    _release_state(cfg.mixed_precision)
    acc = Accelerator(
        cpu=cfg.cpu
        or not torch.cuda.is_available(),  # accelerate only sets up several CPU processes with cpu=True
        mixed_precision=cfg.mixed_precision,
        step_scheduler_with_optimizer=False,
        log_with="tensorboard" if cfg.tensorboard else None,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    return acc


def _release_state(mixed_precision: str) -> None:
    """accelerate keeps one process-wide state; a second run in the same (single) process with another
    precision needs it reset first (several processes are launched per run, so their state
    is never reused)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if (
        state
        and state.get("_mixed_precision") not in (None, mixed_precision)
        and state.get("num_processes", 1) == 1
    ):
        AcceleratorState._reset_state(reset_partial_state=True)


def subjects_of(config: Config, ds: Dataset) -> tuple[str, list[str]]:
    target = ds.subject(config.data.subject).name
    pre = config.data.pretrain_subjects
    names = [s for s in ds.subjects if s != target] if pre == "others" else [ds.subject(s).name for s in pre]
    if "pretrain" in config.train.stages and not names:
        raise ConfigError(
            "pretraining needs at least one subject besides the target",
            where="data.pretrain_subjects",
            fix="add subjects or set train.stages: [finetune]",
        )
    return target, names


def fit_scalers(
    config: Config, ds: Dataset, names: list[str], run_dir: Path, is_main: bool
) -> dict[str, VoxelScaler]:
    """Per-subject voxel z-scoring on that subject's training rows (the target: only the
    sessions it trains on)."""
    out = {}
    for name in names:
        path = run_dir / "scalers" / f"{name}.safetensors"
        subj = ds.subject(name)
        if path.is_file():
            out[name] = VoxelScaler.load(path)
        elif config.data.zscore == "train":
            out[name] = VoxelScaler.fit(subj, training_rows(subj, config.data, config.seed))
        else:
            out[name] = VoxelScaler.identity(subj.n_voxels)
        if is_main and not path.is_file():
            out[name].save(path)
    return out


def make_pool(ds: Dataset, name: str, scaler: VoxelScaler, config: Config) -> Pool:
    """A subject's training trials (``data.splits.training_rows``: the target's sessions, without
    held-out images)."""
    subj = ds.subject(name)
    rows = training_rows(subj, config.data, config.seed)
    return Pool(name, subj, scaler, rows, subj.image_of_rows(rows))


def stage_heads(config: Config, store: TargetStore, heads: dict) -> dict:
    """Every head the run trains, plus the z soft-contrastive teacher when it is on."""
    out = dict(heads)
    if "z" in heads and config.train.z_cont_scale > 0:
        out[TEACHER] = ("g", config.train.z_cont_layer % store.shape("g")[0])
    return out


class _Run:
    """What the stages of one run share: the accelerator, the pools, each stage's data (read once, for all
    models) and the target statistics."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        acc,
        store: TargetStore,
        heads: dict,
        pre_pools: list[Pool],
        tgt_pools: list[Pool],
    ):
        self.config, self.run_dir, self.acc, self.store, self.heads = config, run_dir, acc, store, heads
        self.pools = {"pretrain": pre_pools, "finetune": tgt_pools}
        self.all_heads = stage_heads(config, store, heads)
        self._data: dict[str, TrainingData] = {}
        self.stats: dict | None = None
        scale = config.train.z_l1_scale
        self.latent_scale = float(scale) if scale != "latent" else float(store.attrs.get("latent_scale", 1.0))

    def data(self, stage: str) -> TrainingData:
        if stage not in self._data:
            self._data[stage] = TrainingData(
                self.pools[stage], self.store, self.all_heads, self.config.train.preload_gb, preload=False
            )
        return self._data[stage]

    def model_data(self, stage: str, heads: list[str]) -> TrainingData:
        """The stage's data for one model, with what fits train.preload_gb in RAM (other
        stages' arrays dropped)."""
        for other, data in self._data.items():
            if other != stage:
                data.release()
        data = self.data(stage).restrict(heads)
        note = data.preload()
        if self.acc.is_main_process:
            console.print(f"{stage} {'+'.join(heads)}: {note}", highlight=False, soft_wrap=True)
        return data

    def shapes_of(self, group: list[str]) -> tuple[dict, int]:
        store = self.store
        shapes = {
            h: store.shape(k) if layer is None else store.shape(k)[1:]
            for h, (k, layer) in self.heads.items()
            if h in group
        }
        cont_dim = store.shape("g")[-1] if "z" in group and TEACHER in self.all_heads else 0
        return shapes, cont_dim

    def checkpoints_of(self, stage: str, pools: list) -> int:
        """Checkpoints one model's ``stage`` writes, with Trainer's step count."""
        cfg = self.config.train
        batch = max(cfg.batch_size // max(len(pools), 1), 1) * max(len(pools), 1)
        per_epoch = max(1, (cfg.epoch_samples or sum(len(p.rows) for p in pools)) // batch)
        epochs = cfg.pretrain_epochs if stage == "pretrain" else cfg.finetune_epochs
        return checkpoints_written(epochs * per_epoch, cfg.checkpoint_every, cfg.keep_finished_checkpoints)

    def disk_needed(self, groups: dict[str, list[str]], stages: list[str]) -> int:
        """Bytes the stages still to train will write (``disk.run_disk_bytes``), from parameter counts."""
        todo = []
        for name, group in groups.items():
            shapes, cont_dim = self.shapes_of(group)
            for stage in stages:
                if (self.run_dir / stage / name / "model" / "config.json").is_file():
                    continue
                pools = self.pools[stage]
                subjects = {p.name: p.subject.n_voxels for p in pools}
                n = count_params(
                    partial(build_model, name, group, subjects, self.config.decoder, shapes, {}, cont_dim)
                )
                todo.append((n, stage == stages[-1], self.checkpoints_of(stage, pools)))
        return run_disk_bytes(
            todo, self.config.train.keep_checkpoints, self.config.train.keep_finished_checkpoints
        )

    def train_group(
        self, index: int, name: str, group: list[str], stages: list[str]
    ) -> tuple[Path, list[dict]]:
        """Both stages of one model; returns the folder of its final model and the stage summaries."""
        from ..models.brain import BrainDecoder

        cfg = self.config
        group_heads = [*group, TEACHER] if "z" in group and TEACHER in self.all_heads else list(group)
        shapes, cont_dim = self.shapes_of(group)
        previous, summaries = None, []
        for stage in stages:
            epochs = cfg.train.pretrain_epochs if stage == "pretrain" else cfg.train.finetune_epochs
            plan = StagePlan(stage, name, epochs, self.run_dir / stage / name)
            subjects = {p.name: p.subject.n_voxels for p in self.pools[stage]}
            if not (plan.out_dir / "model" / "config.json").is_file():
                torch.manual_seed(cfg.seed + 1000 * index + plan.code)
                if previous is None:
                    if self.stats is None:
                        self.stats = target_stats(cfg.decoder, self.data(stage), self.heads)
                    model = build_model(name, group, subjects, cfg.decoder, shapes, self.stats, cont_dim)
                else:
                    model, _ = BrainDecoder.for_subjects(previous, subjects)
                trainer = Trainer(
                    self.acc,
                    model,
                    self.model_data(stage, group_heads),
                    cfg.train,
                    plan,
                    cfg.seed,
                    self.latent_scale,
                )
                summaries.append(trainer.run())
            previous = BrainDecoder.from_pretrained(plan.out_dir / "model")
        return plan.out_dir, summaries


def train_decoders(
    config: Config, run_dir: str | Path, targets: str | Path, accelerator=None
) -> dict[str, Any]:
    """Train every decoder of ``config.data.subject``; returns the run summary (also written
    to summary.json)."""
    run_dir = Path(run_dir)
    if config.data.path is None:
        raise ConfigError("no dataset", where="data.path", fix="give the dataset folder")
    t_start = time.perf_counter()
    ds = open_dataset(config.data.path, config.data.layout, config.data.captions)
    acc = accelerator or make_accelerator(config, run_dir)
    config = adapt_to_data(
        config, ds, verbose=acc.is_main_process
    )  # one subject → finetune only; train.auto_scale
    store = TargetStore(targets)
    store.require_made_from(ds)
    target, pre_names = subjects_of(config, ds)
    launch_warning = warn_launch(acc.num_processes, acc.is_main_process)
    if config.train.tensorboard:
        acc.init_trackers("train")
    stages = [s for s in ("pretrain", "finetune") if s in config.train.stages]
    pre_names = pre_names if "pretrain" in stages else []
    scalers = fit_scalers(config, ds, [*pre_names, target], run_dir, acc.is_main_process)
    heads = head_keys(store, config.decoder.targets, config.train.z_target)
    pre_pools = [make_pool(ds, n, scalers[n], config) for n in pre_names]
    tgt_pools = [make_pool(ds, target, scalers[target], config)]
    run = _Run(config, run_dir, acc, store, heads, pre_pools, tgt_pools)
    groups = model_groups(config.decoder, heads)
    check_free_disk(run_dir, run.disk_needed(groups, stages))
    summaries, finals = [], {}
    for index, (name, group) in enumerate(groups.items()):
        final_dir, done = run.train_group(index, name, group, stages)
        summaries += done
        finals[name] = {"heads": group, "stage_dir": str(final_dir.relative_to(run_dir))}
    if acc.is_main_process:
        write_decoders(run_dir, finals, target, scalers[target], store, tgt_pools[0], heads, config)
        if config.train.ridge:
            from .baseline import fit_ridge

            fit_ridge(config, run.data("finetune").restrict(list(heads)), run_dir / "ridge")
        summary = {
            "subject": target,
            "pretrain_subjects": pre_names,
            "stages": stages,
            "models": finals,
            "runs": summaries,
            "seconds": time.perf_counter() - t_start,
            "processes": acc.num_processes,
        }
        if launch_warning:
            summary["launch_warning"] = launch_warning
        atomic_write_json(run_dir / "summary.json", summary)
    acc.wait_for_everyone()
    if config.train.tensorboard:
        acc.end_training()
    store.close()
    return {"subject": target, "models": finals, "runs": summaries}


def write_decoders(
    run_dir: Path,
    finals: dict,
    target: str,
    scaler: VoxelScaler,
    store: TargetStore,
    pool: Pool,
    heads: dict,
    config: Config,
) -> None:
    """RUN/decoders/: the final model of each group (hard links to the stage's model: at paper scale a copy
    would take another ~12 GB), the target's scaler, z training statistics, a manifest."""
    with atomic_dir(run_dir / "decoders") as tmp:
        for name, info in finals.items():
            shutil.copytree(run_dir / info["stage_dir"] / "model", tmp / name, copy_function=link_or_copy)
        scaler.save(tmp / "scaler.safetensors")
        if "z" in heads:
            from safetensors.numpy import save_file

            z = store.get_images("z", np.unique(pool.images))
            save_file({"mean": z.mean(0), "std": z.std(0)}, str(tmp / "z_stats.safetensors"))
        atomic_write_json(
            tmp / "manifest.json",
            {
                "method": "neuraldiffuser",
                "subject": target,
                "n_voxels": pool.subject.n_voxels,
                "layout": config.decoder.layout,
                "models": {n: i["heads"] for n, i in finals.items()},
                "heads": {h: [k, layer] for h, (k, layer) in heads.items()},
                "targets_attrs": {k: v for k, v in store.attrs.items() if k != "created"},
                "train_images": int(len(np.unique(pool.images))),
                "sessions": config.data.sessions,
                "holdout_images": config.data.holdout_images,
            },
        )


#: What a run writes before its first training step: a run that failed before it (a wrong targets path, say)
#: leaves only these, and running the corrected command again starts it afresh without --resume.
PRE_TRAINING_FILES = ("config.yaml", "logs")


def check_run_dir(run_dir: Path, resume: bool) -> None:
    started = (
        [p for p in run_dir.iterdir() if not (p.name.startswith(".lock") or p.name in PRE_TRAINING_FILES)]
        if run_dir.exists()
        else []
    )
    if started and not resume:
        raise DataError(
            "run folder is not empty",
            where=str(run_dir),
            fix="pass --resume to continue it, or choose a new --out",
        )


def check_resume_config(config: Config, run_dir: Path) -> None:
    """A resumed run must train with the settings it started with (data, decoder, train, seed)."""
    from ..config.load import load_run_config

    if not (run_dir / "config.yaml").is_file():
        return
    saved = load_run_config(run_dir).model_dump(mode="json")
    now = config.model_dump(mode="json")
    for section in ("seed", "data", "decoder", "train"):
        a, b = saved[section], now[section]
        if a != b:
            key = (
                section if not isinstance(a, dict) else next(f"{section}.{k}" for k in a if a[k] != b.get(k))
            )
            raise ConfigError(
                f"--resume with a different setting: {key} was {_get(saved, key)!r}, now {_get(now, key)!r}",
                where=str(run_dir / "config.yaml"),
                fix="resume with the command the run started with",
            )


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d
