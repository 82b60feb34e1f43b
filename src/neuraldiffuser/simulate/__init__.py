"""In-silico NSD: procedural scenes with captions, subject encoding models and an NSD-like design.

Entry points (imported lazily, nothing heavy here):
``scenes.generate_scenes`` — images, attribute records and captions from a seed;
``encoding.EncodingModel`` — a subject's noiseless voxel responses to images;
``run.simulate_dataset`` — the whole dataset in the generic and/or MindEye2 layout.
"""

__all__ = ["EncodingModel", "Scenes", "generate_scenes", "simulate_dataset"]


def __getattr__(name: str):
    if name in ("Scenes", "generate_scenes"):
        from . import scenes

        return getattr(scenes, name)
    if name == "EncodingModel":
        from .encoding import EncodingModel

        return EncodingModel
    if name == "simulate_dataset":
        from .run import simulate_dataset

        return simulate_dataset
    raise AttributeError(name)
