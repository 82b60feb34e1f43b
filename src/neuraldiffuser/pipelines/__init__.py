"""Pipelines: a trained run as one object with ``from_pretrained`` / ``save_pretrained`` / ``__call__``.

``NeuralDiffuserPipeline`` is the method's; ``MindDiffuserPipeline`` and ``NeuroPictorPipeline`` give the
comparison methods the same entry points; ``load_pipeline`` picks the class from the folder.
"""

from .comparison import MindDiffuserPipeline, NeuroPictorPipeline, load_pipeline
from .neuraldiffuser import NeuralDiffuserPipeline

__all__ = ["MindDiffuserPipeline", "NeuralDiffuserPipeline", "NeuroPictorPipeline", "load_pipeline"]
