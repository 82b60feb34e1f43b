"""The bad inputs of benchmarks/bad_inputs.py: one Case per command line, each with what it tries and, where a
failed run could leave something behind, a check that nothing left looks complete.

Arguments are templates over the fixtures ({ds}, {run}, {decoded}, ...; see ``fixture_paths``); {o} is a fresh
output path of the case's own under {root}/o/.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def fixture_paths(root: Path) -> dict[str, Path]:
    root = Path(root)
    names = {
        "ds": "ds",
        "ds2": "ds2",
        "me2": "me2",
        "targets": "targets.hdf5",
        "run": "run",
        "decoded": "decoded.hdf5",
        "recon": "recon",
        "tiny_yaml": "tiny.yaml",
        "file": "a_file.txt",
        "empty": "empty_dir",
        "garbage": "garbage.hdf5",
        "yaml_bad": "bad.yaml",
        "yaml_list": "list.yaml",
        "metrics_garbage": "metrics_garbage",
        "targets_nan": "targets_nan.hdf5",
        "targets_undone": "targets_undone.hdf5",
        "targets_other": "targets_other.hdf5",
        "targets_empty": "targets_empty.hdf5",
        "me2_nobetas": "me2_nobetas",
        "ds_noimages": "ds_noimages",
        "ds_badjson": "ds_badjson",
        "run_nodecoders": "run_nodecoders",
        "evalrun_gone": "evalrun_gone",
        "locked": "locked_recon",
        "missing": "does_not_exist",
        "ro": "ro",
    }
    p = {k: root / v for k, v in names.items()}
    p["root"] = root
    if os.geteuid() == 0:
        p["ro"] = Path("/sys")  # root ignores permission bits; no file can be created in sysfs
    return p


Check = Callable[[dict], "str | None"]


@dataclass
class Case:
    id: str
    argv: list[str]
    why: str = ""
    check: Check | None = None
    issue: str = ""  # the item of issue 15 (or 17) it comes from, if any
    fsize: int | None = None  # file-size limit in bytes (writes past it fail like a full disk)
    online: bool = False  # run without HF_HUB_OFFLINE (a zoo path must still never reach the network)
    extra: dict = field(default_factory=dict)


def _path(p: dict, template: str) -> Path:
    return Path(template.format(**{k: str(v) for k, v in p.items()}))


def absent(template: str) -> Check:
    def check(p):
        return f"{_path(p, template)} was written" if _path(p, template).exists() else None

    return check


def store_not_complete(template: str) -> Check:
    """A target store left by a failed or refused extract must not say that every row is done
    (or have no rows)."""

    def check(p):
        path = _path(p, template)
        if not path.is_file():
            return None
        try:
            from neuraldiffuser.targets.store import TargetStore

            with TargetStore(path) as store:
                n, done = len(store), store.done()
        except Exception:  # noqa: BLE001 - an unreadable leftover cannot pass as complete
            return None
        if n == 0:
            return f"{path}: a 0-row store left behind"
        return f"{path}: {n}/{n} rows marked done" if done.all() else None

    return check


def no_decoders(template: str) -> Check:
    def check(p):
        d = _path(p, template) / "decoders"
        return f"{d} written" if d.exists() and any(d.iterdir()) else None

    return check


def no_manifest(template: str) -> Check:
    def check(p):
        found = sorted(_path(p, template).rglob("manifest.json")) if _path(p, template).exists() else []
        return f"{found[0]} written" if found else None

    return check


def _cases() -> list[Case]:
    c: list[Case] = []

    def add(id_, argv, why="", check=None, **kw):
        c.append(Case(id_, list(argv), why, check, **kw))

    # ------------------------------------------------------------------ usage errors (typer's bundled click)
    add("usage/no-args", [], "no command: help and exit 2")
    add("usage/unknown-command", ["nosuch"], "unknown command", issue="15.2")
    add("usage/unknown-top-option", ["--bogus"], "unknown option before the command", issue="15.2")
    add("usage/simulate-missing-out", ["simulate"], "missing required option", issue="15.2")
    add("usage/simulate-unknown-option", ["simulate", "-o", "{o}", "--bogus"], "unknown option", issue="15.2")
    add(
        "usage/kappa-abc",
        ["reconstruct", "{decoded}", "-o", "{o}", "--kappa", "abc"],
        "not a number",
        issue="15.2",
    )
    add(
        "usage/repeats-two",
        ["reconstruct", "{decoded}", "-o", "{o}", "--repeats", "two"],
        "not an integer",
        issue="15.2",
    )
    add("usage/report-no-arg", ["report"], "missing argument")
    add("usage/train-missing-targets", ["train", "{ds}"], "missing argument")
    add("usage/zoo-unknown", ["zoo", "nosuch"], "unknown zoo command")
    add("usage/zoo-train-missing", ["zoo", "train"], "missing options")
    add("usage/inspect-extra-arg", ["inspect", "{ds}", "extra"], "one argument too many")
    add("usage/set-without-value", ["simulate", "-o", "{o}", "--set"], "--set needs a value")
    add("usage/report-images-abc", ["report", "{recon}", "--images", "abc"], "not an integer")

    # ------------------------------------------------------------------ simulate
    sim_ok = ["--preset", "small", "--subjects", "1", "--n-images", "10"]
    add(
        "simulate/n-images-negative",
        ["simulate", "-o", "{o}", "--preset", "scenes", "--n-images", "-5"],
        "negative count",
        absent("{o}"),
        issue="15.7",
    )
    add(
        "simulate/scenes-no-n",
        ["simulate", "-o", "{o}", "--preset", "scenes"],
        "scenes needs --n-images",
        absent("{o}"),
    )
    add(
        "simulate/unknown-preset",
        ["simulate", "-o", "{o}", "--preset", "nosuch"],
        "unknown simulator preset",
        absent("{o}"),
    )
    add("simulate/subjects-0", ["simulate", "-o", "{o}", "--subjects", "0"], "zero subjects", absent("{o}"))
    add("simulate/seed-negative", ["simulate", "-o", "{o}", "--seed", "-1"], "negative seed", absent("{o}"))
    add(
        "simulate/bad-layout", ["simulate", "-o", "{o}", "--layout", "weird"], "unknown layout", absent("{o}")
    )
    add(
        "simulate/voxels-one-value",
        ["simulate", "-o", "{o}", *sim_ok, "--set", "simulate.voxels=[50]"],
        "voxels needs [min, max]",
        absent("{o}"),
    )
    add(
        "simulate/voxels-reversed",
        ["simulate", "-o", "{o}", *sim_ok, "--set", "simulate.voxels=[100,10]"],
        "min > max",
        absent("{o}"),
    )
    add(
        "simulate/image-size-odd",
        ["simulate", "-o", "{o}", *sim_ok, "--set", "simulate.image_size=15"],
        "odd image size",
        absent("{o}"),
    )
    add(
        "simulate/noise-negative",
        ["simulate", "-o", "{o}", *sim_ok, "--set", "simulate.noise_scale=-1"],
        "negative noise",
        absent("{o}"),
    )
    add(
        "simulate/unknown-key",
        ["simulate", "-o", "{o}", "--set", "simulate.bogus=1"],
        "unknown config key",
        absent("{o}"),
    )
    add(
        "simulate/override-not-kv",
        ["simulate", "-o", "{o}", "--set", "nokeyvalue"],
        "override without =",
        absent("{o}"),
    )
    add(
        "simulate/test-images-1",
        ["simulate", "-o", "{o}", *sim_ok, "--set", "simulate.test_images=1"],
        "too few test images",
        absent("{o}"),
    )
    add(
        "simulate/train-images-3",
        ["simulate", "-o", "{o}", "--preset", "small", "--n-images", "3"],
        "too few training images",
        absent("{o}"),
    )
    add("simulate/out-is-file", ["simulate", "-o", "{file}"], "output is an existing file", issue="15.8")
    add("simulate/out-under-file", ["simulate", "-o", "{file}/sub"], "output under a file", issue="15.8")
    add("simulate/out-read-only", ["simulate", "-o", "{ro}/sim"], "read-only location", issue="15.8")
    add(
        "simulate/config-missing",
        ["simulate", "-o", "{o}", "-c", "{missing}.yaml"],
        "config file not found",
        absent("{o}"),
    )
    add(
        "simulate/config-bad-yaml",
        ["simulate", "-o", "{o}", "-c", "{yaml_bad}"],
        "invalid YAML",
        absent("{o}"),
    )
    add(
        "simulate/config-list",
        ["simulate", "-o", "{o}", "-c", "{yaml_list}"],
        "YAML that is not a mapping",
        absent("{o}"),
    )
    add(
        "simulate/disk-full",
        ["simulate", "-o", "{o}", *sim_ok],
        "writes fail as on a full disk (file-size limit 64 KB)",
        absent("{o}/dataset.json"),
        issue="15.1",
        fsize=64_000,
    )

    # ------------------------------------------------------------------ inspect
    add("inspect/missing", ["inspect", "{missing}"], "no such folder")
    add("inspect/empty", ["inspect", "{empty}"], "empty folder")
    add("inspect/file", ["inspect", "{file}"], "a file, not a folder")
    add("inspect/bad-layout", ["inspect", "{ds}", "--layout", "weird"], "unknown layout")
    add(
        "inspect/wrong-layout", ["inspect", "{ds}", "--layout", "mindeye2"], "generic folder read as MindEye2"
    )
    add(
        "inspect/me2-missing-betas",
        ["inspect", "{me2_nobetas}"],
        "a MindEye2 subject whose betas file is missing",
        issue="15.9",
    )
    add("inspect/bad-dataset-json", ["inspect", "{ds_badjson}"], "dataset.json is not JSON")
    add("inspect/no-images", ["inspect", "{ds_noimages}"], "images.hdf5 missing")

    # ------------------------------------------------------------------ extract
    ex = ["extract", "{ds}", "-o", "{o}/t.hdf5"]
    add(
        "extract/missing",
        ["extract", "{missing}", "-o", "{o}/t.hdf5"],
        "no such dataset",
        absent("{o}/t.hdf5"),
    )
    add("extract/empty", ["extract", "{empty}", "-o", "{o}/t.hdf5"], "empty folder", absent("{o}/t.hdf5"))
    add(
        "extract/batch-size-negative",
        [*ex, "--set", "extract.batch_size=-4"],
        "negative batch size",
        store_not_complete("{o}/t.hdf5"),
        issue="15.4",
    )
    add(
        "extract/batch-size-0",
        [*ex, "--set", "extract.batch_size=0"],
        "zero batch size",
        store_not_complete("{o}/t.hdf5"),
        issue="15.4",
    )
    add(
        "extract/zoo-typo",
        [*ex, "--set", "zoo.path=myorg/mystack"],
        "mistyped local zoo folder (online)",
        store_not_complete("{o}/t.hdf5"),
        issue="15.10",
        online=True,
    )
    add(
        "extract/zoo-dot-path",
        [*ex, "--set", "zoo.path=./nostack"],
        "missing ./ zoo folder (online)",
        store_not_complete("{o}/t.hdf5"),
        issue="15.10",
        online=True,
    )
    add(
        "extract/zoo-abs-path",
        [*ex, "--set", "zoo.path=/no/such/stack"],
        "missing absolute zoo folder",
        store_not_complete("{o}/t.hdf5"),
        issue="15.10",
    )
    add(
        "extract/zoo-empty-folder",
        [*ex, "--set", "zoo.path={empty}"],
        "zoo folder without the stack",
        store_not_complete("{o}/t.hdf5"),
    )
    add(
        "extract/zoo-builtin-typo",
        [*ex, "--set", "zoo.path=builtin:nope"],
        "unknown built-in zoo",
        store_not_complete("{o}/t.hdf5"),
    )
    add("extract/out-is-folder", ["extract", "{ds}", "-o", "{empty}"], "store path is a folder", issue="15.8")
    add("extract/out-read-only", ["extract", "{ds}", "-o", "{ro}/t.hdf5"], "read-only location", issue="15.8")
    add(
        "extract/out-under-file",
        ["extract", "{ds}", "-o", "{file}/t.hdf5"],
        "output under a file",
        issue="15.8",
    )
    add(
        "extract/garbage-store",
        ["extract", "{ds}", "-o", "{garbage}"],
        "an existing file that is not a store",
    )
    add(
        "extract/other-dataset",
        ["extract", "{ds2}", "-o", "{targets_other}"],
        "another dataset onto an existing store",
        issue="15.5",
    )
    add(
        "extract/bad-target",
        [*ex, "--set", "extract.targets=[q]"],
        "unknown target name",
        absent("{o}/t.hdf5"),
    )
    add("extract/unknown-preset", [*ex, "--preset", "nosuch"], "unknown preset", absent("{o}/t.hdf5"))
    add(
        "extract/disk-full",
        [*ex],
        "writes fail as on a full disk (file-size limit 48 KB)",
        store_not_complete("{o}/t.hdf5"),
        issue="15.1",
        fsize=48_000,
    )

    # ------------------------------------------------------------------ train
    tr = ["train", "{ds}", "{targets}", "-c", "{tiny_yaml}", "-o", "{o}"]
    add(
        "train/missing-targets",
        ["train", "{ds}", "{missing}.hdf5", "-c", "{tiny_yaml}", "-o", "{o}"],
        "no target store",
        no_decoders("{o}"),
    )
    add(
        "train/garbage-targets",
        ["train", "{ds}", "{garbage}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "targets not HDF5",
        no_decoders("{o}"),
    )
    add(
        "train/out-is-file",
        ["train", "{ds}", "{targets}", "-o", "{file}"],
        "run folder is a file",
        issue="15.8",
    )
    add(
        "train/out-read-only",
        ["train", "{ds}", "{targets}", "-o", "{ro}/run"],
        "read-only location",
        issue="15.8",
    )
    add(
        "train/finetune-epochs-negative",
        [*tr, "--set", "train.finetune_epochs=-1"],
        "negative epochs",
        no_decoders("{o}"),
        issue="15.7",
    )
    add("train/batch-size-0", [*tr, "--set", "train.batch_size=0"], "zero batch", no_decoders("{o}"))
    add("train/lr-negative", [*tr, "--set", "train.lr=-1"], "negative learning rate", no_decoders("{o}"))
    add("train/unknown-subject", [*tr, "--set", "data.subject=subj99"], "no such subject", no_decoders("{o}"))
    add("train/unknown-stage", [*tr, "--set", "train.stages=[bogus]"], "unknown stage", no_decoders("{o}"))
    add(
        "train/pretrain-one-subject",
        ["train", "{ds}", "{targets}", "-o", "{o}", "--set", "train.stages=[pretrain,finetune]"],
        "pretraining with no other subject",
        no_decoders("{o}"),
        issue="17.3",
    )
    add(
        "train/existing-run",
        ["train", "{ds}", "{targets}", "-c", "{tiny_yaml}", "-o", "{run}"],
        "non-empty run folder without --resume",
    )
    add(
        "train/resume-other-settings",
        [
            "train",
            "{ds}",
            "{targets}",
            "-c",
            "{tiny_yaml}",
            "-o",
            "{run}",
            "--resume",
            "--set",
            "train.lr=0.5",
        ],
        "--resume with a changed setting",
    )
    add("train/unknown-method", [*tr, "--method", "nosuch"], "unknown method", no_decoders("{o}"))
    add(
        "train/empty-dataset",
        ["train", "{empty}", "{targets}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "dataset folder empty",
        no_decoders("{o}"),
    )
    add(
        "train/nan-targets",
        ["train", "{ds}", "{targets_nan}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "NaN in the targets",
        no_decoders("{o}"),
        issue="15.6",
    )
    add(
        "train/undone-store",
        ["train", "{ds}", "{targets_undone}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "store with rows not done",
        no_decoders("{o}"),
        issue="15.1",
    )
    add(
        "train/zero-row-store",
        ["train", "{ds}", "{targets_empty}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "0-row store (a failed extract)",
        no_decoders("{o}"),
        issue="15.4",
    )
    add("train/dropout-1.5", [*tr, "--set", "decoder.dropout=1.5"], "dropout above 1", no_decoders("{o}"))
    add("train/pct-start-0", [*tr, "--set", "train.pct_start=0"], "zero warm-up fraction", no_decoders("{o}"))
    add(
        "train/other-dataset-store",
        ["train", "{ds2}", "{targets}", "-c", "{tiny_yaml}", "-o", "{o}"],
        "store of another dataset",
        no_decoders("{o}"),
        issue="15.5",
    )

    # ------------------------------------------------------------------ decode
    add("decode/missing", ["decode", "{missing}"], "no run folder")
    add("decode/empty", ["decode", "{empty}"], "no config.yaml")
    add("decode/out-is-folder", ["decode", "{run}", "-o", "{empty}"], "output file is a folder", issue="15.8")
    add("decode/out-read-only", ["decode", "{run}", "-o", "{ro}/d.hdf5"], "read-only location", issue="15.8")
    add(
        "decode/dataset-missing",
        ["decode", "{run}", "-o", "{o}/d.hdf5", "--dataset", "{missing}"],
        "no dataset",
        absent("{o}/d.hdf5"),
    )
    add(
        "decode/batch-size-0",
        ["decode", "{run}", "-o", "{o}/d.hdf5", "--set", "decode.batch_size=0"],
        "zero batch",
        absent("{o}/d.hdf5"),
    )
    add(
        "decode/unknown-subject",
        ["decode", "{run}", "-o", "{o}/d.hdf5", "--set", "data.subject=subj99"],
        "no such subject",
        absent("{o}/d.hdf5"),
    )
    add(
        "decode/holdout-none",
        ["decode", "{run}", "-o", "{o}/d.hdf5", "--holdout"],
        "--holdout on a run without held-out images",
        absent("{o}/d.hdf5"),
    )
    add(
        "decode/no-decoders",
        ["decode", "{run_nodecoders}", "-o", "{o}/d.hdf5"],
        "decoders/ deleted",
        absent("{o}/d.hdf5"),
    )
    add(
        "extract/device-absent",
        [*ex, "--set", "extract.device=cuda:3"],
        "a GPU that is not there",
        absent("{o}/t.hdf5"),
    )
    add(
        "decode/unknown-key",
        ["decode", "{run}", "-o", "{o}/d.hdf5", "--set", "bogus=1"],
        "unknown key",
        absent("{o}/d.hdf5"),
    )

    # ------------------------------------------------------------------ reconstruct
    rc = ["reconstruct", "{decoded}", "-o", "{o}", "-c", "{tiny_yaml}", "--set", "data.path={ds}"]
    add(
        "reconstruct/missing",
        ["reconstruct", "{missing}", "-o", "{o}"],
        "no decoded file",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/garbage",
        ["reconstruct", "{garbage}", "-o", "{o}"],
        "decoded file not HDF5",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/out-is-file",
        ["reconstruct", "{decoded}", "-o", "{file}"],
        "output is a file",
        issue="15.8",
    )
    add(
        "reconstruct/out-read-only",
        ["reconstruct", "{decoded}", "-o", "{ro}/r"],
        "read-only location",
        issue="15.8",
    )
    add(
        "reconstruct/limit-negative",
        [*rc, "--limit", "-3"],
        "negative --limit",
        no_manifest("{o}"),
        issue="15.7",
    )
    add("reconstruct/limit-0", [*rc, "--limit", "0"], "zero --limit", no_manifest("{o}"))
    add("reconstruct/repeats-0", [*rc, "--repeats", "0"], "zero repeats", no_manifest("{o}"))
    add(
        "reconstruct/kappa-negative", [*rc, "--limit", "1", "--kappa", "-1"], "negative κ", no_manifest("{o}")
    )
    add("reconstruct/eta-2", [*rc, "--limit", "1", "--eta", "2"], "η above 1", no_manifest("{o}"))
    add(
        "reconstruct/images-letters",
        [*rc, "--images", "a,b"],
        "image indices not integers",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/images-unknown",
        [*rc, "--images", "999"],
        "image not in the test set",
        no_manifest("{o}"),
    )
    add("reconstruct/unknown-method", [*rc, "--method", "nosuch"], "unknown method", no_manifest("{o}"))
    add(
        "reconstruct/oracle-missing",
        ["reconstruct", "-o", "{o}", "--oracle", "{missing}.hdf5"],
        "no oracle store",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/no-source",
        ["reconstruct", "-o", "{o}"],
        "neither decoded targets nor --oracle",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/device-absent",
        [*rc, "--limit", "1", "--device", "cuda:7"],
        "a device that is not there",
        no_manifest("{o}"),
    )
    add("reconstruct/workers-0", [*rc, "--workers", "0"], "zero workers", no_manifest("{o}"))
    add(
        "reconstruct/workers-gpu",
        [*rc, "--workers", "2", "--device", "cuda"],
        "--workers with a GPU",
        no_manifest("{o}"),
    )
    add("reconstruct/strength-0", [*rc, "--set", "sampler.strength=0"], "zero strength", no_manifest("{o}"))
    add("reconstruct/steps-0", [*rc, "--set", "sampler.steps=0"], "zero steps", no_manifest("{o}"))
    add(
        "reconstruct/zoo-typo",
        [*rc, "--limit", "1", "--set", "zoo.path=myorg/mystack"],
        "mistyped zoo folder (online)",
        no_manifest("{o}"),
        issue="15.10",
        online=True,
    )
    add(
        "reconstruct/locked-folder",
        [*rc[:3], "{locked}", *rc[4:], "--limit", "1"],
        "another run is writing the folder",
        no_manifest("{locked}"),
        issue="15.11",
    )
    add(
        "reconstruct/device-nonsense",
        [*rc, "--limit", "1", "--device", "gpu0"],
        "not a device name",
        no_manifest("{o}"),
    )
    add(
        "reconstruct/dataset-missing",
        [*rc, "--dataset", "{missing}"],
        "no stimulus dataset",
        no_manifest("{o}"),
    )

    # ------------------------------------------------------------------ evaluate
    ev = ["evaluate", "{recon}", "--truth", "{ds}", "-c", "{tiny_yaml}"]
    add(
        "evaluate/missing",
        ["evaluate", "{missing}", "--truth", "{ds}", "-o", "{o}"],
        "no reconstruction folder",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/empty",
        ["evaluate", "{empty}", "--truth", "{ds}", "-o", "{o}"],
        "folder without reconstructions",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/truth-missing",
        ["evaluate", "{recon}", "--truth", "{missing}", "-o", "{o}"],
        "no dataset",
        absent("{o}/metrics.json"),
    )
    add("evaluate/out-is-file", [*ev, "-o", "{file}"], "output folder is a file", issue="15.8")
    add("evaluate/out-read-only", [*ev, "-o", "{ro}/e"], "read-only location", issue="15.8")
    add(
        "evaluate/no-truth",
        ["evaluate", "{recon}", "-o", "{o}"],
        "no --truth and no data.path",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/unknown-metric",
        [*ev, "-o", "{o}", "--metrics", "bogus"],
        "unknown metric",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/unknown-subject",
        [*ev, "-o", "{o}", "--subject", "subj99"],
        "no such subject",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/garbage-decoded",
        [*ev, "-o", "{o}", "--decoded", "{garbage}", "--targets", "{targets}"],
        "decoded file not HDF5",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/batch-size-0",
        [*ev, "-o", "{o}", "--set", "evaluate.batch_size=0"],
        "zero batch",
        absent("{o}/metrics.json"),
    )
    add(
        "evaluate/subject-typo",
        [*ev, "-o", "{o}", "--subject", "subj1"],
        "a subject name mistyped",
        absent("{o}/metrics.json"),
    )

    # ------------------------------------------------------------------ report
    add("report/missing", ["report", "{missing}", "-o", "{o}.html"], "no run folder", absent("{o}.html"))
    add("report/empty", ["report", "{empty}", "-o", "{o}.html"], "no metrics.json", absent("{o}.html"))
    add(
        "report/deleted-recon",
        ["report", "{evalrun_gone}", "-o", "{o}.html"],
        "reconstruction folders deleted",
        absent("{o}.html"),
        issue="15.11",
    )
    add(
        "report/out-is-folder",
        ["report", "{recon}", "-o", "{empty}"],
        "output file is a folder",
        issue="15.8",
    )
    add(
        "report/out-read-only", ["report", "{recon}", "-o", "{ro}/r.html"], "read-only location", issue="15.8"
    )
    add(
        "report/out-under-file",
        ["report", "{recon}", "-o", "{file}/r.html"],
        "output under a file",
        issue="15.8",
    )
    add(
        "report/images-0",
        ["report", "{recon}", "-o", "{o}.html", "--images", "0"],
        "zero images",
        absent("{o}.html"),
    )
    add(
        "report/garbage-metrics",
        ["report", "{metrics_garbage}", "-o", "{o}.html"],
        "metrics.json not JSON",
        absent("{o}.html"),
    )

    # ------------------------------------------------------------------ zoo
    add(
        "zoo/train-images-missing",
        ["zoo", "train", "--images", "{missing}", "-o", "{o}"],
        "no image dataset",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-images-empty",
        ["zoo", "train", "--images", "{empty}", "-o", "{o}"],
        "folder without images",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-out-is-file",
        ["zoo", "train", "--images", "{ds}", "-o", "{file}"],
        "output is a file",
        issue="15.8",
    )
    add(
        "zoo/train-out-read-only",
        ["zoo", "train", "--images", "{ds}", "-o", "{ro}/z"],
        "read-only location",
        issue="15.8",
    )
    add(
        "zoo/train-bad-part",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--parts", "bogus"],
        "unknown part",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-steps-negative",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--train-set", "unet.steps=-1"],
        "negative steps",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-unknown-setting",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--train-set", "bogus.x=1"],
        "unknown setting",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-settings-missing",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--settings", "{missing}.yaml"],
        "settings file missing",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-limit-0",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--limit", "0"],
        "zero images",
        absent("{o}/unet"),
    )
    add(
        "zoo/train-processes-0",
        ["zoo", "train", "--images", "{ds}", "-o", "{o}", "--processes", "0"],
        "zero processes",
        absent("{o}/unet"),
    )
    add(
        "zoo/evaluate-zoo-typo",
        ["zoo", "evaluate", "--images", "{ds}", "--zoo", "myorg/mystack", "-o", "{o}.json"],
        "mistyped zoo folder (online)",
        absent("{o}.json"),
        issue="15.10",
        online=True,
    )
    add(
        "zoo/evaluate-zoo-empty",
        ["zoo", "evaluate", "--images", "{ds}", "--zoo", "{empty}", "-o", "{o}.json"],
        "zoo folder without a stack",
        absent("{o}.json"),
    )
    add(
        "zoo/evaluate-images-missing",
        ["zoo", "evaluate", "--images", "{missing}", "-o", "{o}.json"],
        "no image dataset",
        absent("{o}.json"),
    )
    add(
        "zoo/evaluate-n-0",
        ["zoo", "evaluate", "--images", "{ds}", "--n", "0", "-o", "{o}.json"],
        "zero images",
        absent("{o}.json"),
    )
    add(
        "zoo/evaluate-out-read-only",
        ["zoo", "evaluate", "--images", "{ds}", "-o", "{ro}/q.json"],
        "read-only location",
        issue="15.8",
    )

    # ------------------------------------------------------------------ demo
    add("demo/out-is-file", ["demo", "-o", "{file}"], "output is a file", issue="15.8")
    add("demo/out-read-only", ["demo", "-o", "{ro}/d"], "read-only location", issue="15.8")
    add("demo/out-under-file", ["demo", "-o", "{file}/d"], "output under a file", issue="15.8")
    add(
        "demo/unknown-key",
        ["demo", "-o", "{o}", "--set", "bogus=1"],
        "unknown config key",
        absent("{o}/report.html"),
    )
    add(
        "demo/finetune-epochs-negative",
        ["demo", "-o", "{o}", "--set", "train.finetune_epochs=-1"],
        "negative epochs",
        absent("{o}/report.html"),
        issue="15.7",
    )
    return c


CASES = _cases()
