"""Training configuration: schema, presets, type coercion, YAML in and out, resume rules."""

from biounet.config.schema import (
    RESUMABLE,
    TRAIN_PRESETS,
    DataConfig,
    LossConfig,
    OptimConfig,
    TrainConfig,
    build_config,
    check_resume,
    config_from_dict,
    dump_config,
    load_config,
    resume_changes,
    resume_config,
    save_config,
)

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
    "resume_changes",
    "resume_config",
    "save_config",
]
