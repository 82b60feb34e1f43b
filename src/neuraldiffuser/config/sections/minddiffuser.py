from __future__ import annotations

from ..base import Section


class MindDiffuserConfig(Section):
    """MindDiffuser: voxel-selection ridge decoders, img2img, back-propagation refinement."""
