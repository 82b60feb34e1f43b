"""The full configuration: one section per pipeline stage (each defined in ``sections/<stage>.py``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import Section
from .sections.data import DataConfig
from .sections.decode import DecodeConfig
from .sections.decoder import DecoderConfig
from .sections.evaluate import EvaluateConfig
from .sections.extract import ExtractConfig
from .sections.minddiffuser import MindDiffuserConfig
from .sections.neuropictor import NeuroPictorConfig
from .sections.sampler import SamplerConfig
from .sections.simulate import SimulateConfig
from .sections.train import TrainConfig
from .sections.zoo import ZooConfig


class Config(Section):
    preset: str = "default"
    seed: int = Field(42, ge=0)
    data: DataConfig = Field(default_factory=DataConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig)
    zoo: ZooConfig = Field(default_factory=ZooConfig)
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    minddiffuser: MindDiffuserConfig = Field(default_factory=MindDiffuserConfig)
    neuropictor: NeuroPictorConfig = Field(default_factory=NeuroPictorConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @model_validator(mode="after")
    def _zoo_sampler_defaults(self) -> Config:
        """Sampler keys left unset take the zoo folder's recommendations (config/zoo_defaults.py)."""
        from .zoo_defaults import fill_sampler

        fill_sampler(self)
        return self
