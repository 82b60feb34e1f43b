"""Data layer: one in-memory interface over two on-disk layouts (ours and MindEye2's NSD).

``open_dataset(path)`` detects the layout and returns a :class:`Dataset` whose betas and images
are read lazily from chunked HDF5.
"""

from .dataset import Dataset, SubjectData, TestSet, TrialTable, open_dataset
from .normalization import VoxelScaler

__all__ = ["Dataset", "SubjectData", "TestSet", "TrialTable", "VoxelScaler", "open_dataset"]
