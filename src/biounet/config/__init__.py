"""Training configuration: schema, presets, type coercion, assembly and YAML, resume rules.

``schema`` (the dataclasses and their ranges), ``presets`` (the paper's, ``cpu``, ``gpu``),
``coerce`` (every value checked against its type), ``build`` (preset, then YAML, then
overrides; YAML in and out), ``resume`` (what may change when a run continues).
"""

from biounet.config.build import (
    build_config,
    dump_config,
    load_config,
    merge,
    parse_override,
    save_config,
)
from biounet.config.coerce import config_from_dict, to_dict
from biounet.config.presets import TRAIN_PRESETS
from biounet.config.resume import RESUMABLE, check_resume, resume_changes, resume_config
from biounet.config.schema import DataConfig, LossConfig, OptimConfig, TrainConfig

__all__ = [
    "RESUMABLE",
    "TRAIN_PRESETS",
    "DataConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "build_config",
    "check_resume",
    "config_from_dict",
    "dump_config",
    "load_config",
    "merge",
    "parse_override",
    "resume_changes",
    "resume_config",
    "save_config",
    "to_dict",
]
