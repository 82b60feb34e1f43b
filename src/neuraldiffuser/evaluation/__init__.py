"""Evaluation: MindEye2's metric protocol, embedded-scale metrics, brain correlation and metric files.

Modules (imported on use; nothing heavy here): ``metrics`` (the formulas), ``preprocess`` (the resize
chain), ``backbones`` (feature networks from local caches), ``effnet_lite`` (EfficientNet-Lite0),
``brain`` (encoding-model correlation), ``recon`` (reconstruction folders), ``runner`` (the
``evaluate`` stage: ``run_evaluation``), ``images`` with ``imagefolders`` and ``truths`` (``evaluate-images``:
any folder of images or strips, ``evaluate_images``), ``files`` (metrics.json / metrics.csv), ``published``
(published rows with their sources). See docs/evaluation.md.
"""

__all__ = ["run_evaluation"]


def __getattr__(name):
    if name == "run_evaluation":
        from .runner import run_evaluation

        return run_evaluation
    raise AttributeError(name)
