"""What ``train --method`` and ``decode`` do for the comparison methods (the commands dispatch here).

Both methods use the stages' usual files: a run folder with config.yaml, summary.json and
decoders/manifest.json (whose ``method`` tells ``decode`` which code to run), then decoded.hdf5 in the
shared format, which ``reconstruct --method <name>`` reads.
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import Config
from ..errors import ConfigError
from ..sampling.registry import trained_methods


def check_method(method: str) -> None:
    if method not in ("neuraldiffuser", *trained_methods()):
        raise ConfigError(
            f"unknown method '{method}'",
            where="--method",
            fix=f"choose neuraldiffuser, {', '.join(trained_methods())}",
        )


def train_method(method: str, config: Config, dataset: Path, targets: Path, out: Path, resume: bool) -> str:
    """Fit MindDiffuser's decoders or train the NeuroPictor model into ``out``; returns a one-line summary."""
    from ..config import save_config
    from ..training.runner import check_resume_config, check_run_dir

    check_method(method)
    config.data.path = str(dataset)
    check_run_dir(out, resume)
    if resume:
        check_resume_config(config, out)
        check_same_section(config, out, method)
    if method == "minddiffuser":
        from .minddiffuser.decoders import fit_minddiffuser

        save_config(config, out)
        summary = fit_minddiffuser(config, out, targets)
        return (
            f"{out}: MindDiffuser decoders ({', '.join(summary['fits']) or 'all present'}) "
            f"for {summary['subject']} in {summary['seconds']:.0f} s"
        )
    from ..training.runner import make_accelerator
    from .neuropictor.runner import train_neuropictor

    config.neuropictor.run = str(Path(out).resolve())  # reconstruct finds the model through the saved config
    acc = make_accelerator(config, out)
    if acc.is_main_process:
        save_config(config, out)
    acc.wait_for_everyone()
    summary = train_neuropictor(config, out, targets, accelerator=acc)
    return (
        f"{out}: NeuroPictor model ({' → '.join(summary['stages'])}) "
        f"for {summary['subject']} in {summary['seconds']:.0f} s"
    )


def check_same_section(config: Config, out: Path, method: str) -> None:
    """A resumed run keeps its method's settings (the run folder path aside)."""
    from ..config.load import load_run_config

    if not (Path(out) / "config.yaml").is_file():
        return
    saved = load_run_config(out).model_dump(mode="json")[method]
    now = config.model_dump(mode="json")[method]
    diff = [k for k in saved if k != "run" and saved[k] != now.get(k)]
    if diff:
        raise ConfigError(
            f"--resume with a different setting: {method}.{diff[0]} "
            f"was {saved[diff[0]]!r}, now {now.get(diff[0])!r}",
            where=str(Path(out) / "config.yaml"),
            fix="resume with the command the run started with",
        )


def decode_method(method: str, config: Config, run_dir: Path, out: Path) -> Path:
    """decoded.hdf5 of a comparison-method run."""
    check_method(method)
    if method == "minddiffuser":
        from .minddiffuser.decoders import decode_minddiffuser

        return decode_minddiffuser(config, run_dir, out)
    from .neuropictor.runner import decode_neuropictor

    return decode_neuropictor(config, run_dir, out)
