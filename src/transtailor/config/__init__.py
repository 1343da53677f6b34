"""Typed run configuration, presets and YAML files.

One dataclass per command holds every option. The CLI builds its flags from these fields, so a
field added here is at once a flag (``--field-name``), a YAML key (``field_name`` or
``field-name``) and an attribute. Precedence, lowest first: field default, ``--preset``, the
``--config`` YAML file, command-line flags.

- :mod:`.presets`: the named bundles of settings;
- :mod:`.fields`: declaring an option, coercing a value to its type, the shared checks;
- :mod:`.parts`: the parts a command composes (data, model, training, machine, latency);
- :mod:`.method_options`: the pruning criteria's own options, kept in one ``method_options`` dict;
- :mod:`.commands`: one config per command;
- :mod:`.loading`: presets, YAML files and flags into a checked config, and back to a plain dict.
"""

from .commands import (FINETUNE_METHODS, RECOVERY_OPTIONS, BenchmarkConfig, CompareConfig, EvaluateConfig, ExportConfig, FinetuneConfig,
                       IterativeConfig, PruneConfig, PruningOptions, ReportConfig, SearchConfig)
from .fields import option
from .loading import from_dict, load_yaml, resolve, to_dict
from .method_options import (METHOD_OPTIONS, build_method_options, method_option_fields, method_options_of,
                             register_method_options)
from .parts import (CommonConfig, DataOptions, DataSource, LatencyOptions, MachineOptions, ModelOptions,
                    TrainingOptions)
from .presets import PRESETS

__all__ = [
    "FINETUNE_METHODS", "RECOVERY_OPTIONS", "BenchmarkConfig", "CompareConfig", "EvaluateConfig", "ExportConfig", "FinetuneConfig",
    "IterativeConfig", "PruneConfig", "PruningOptions", "ReportConfig", "SearchConfig", "option",
    "PRESETS", "from_dict", "load_yaml", "resolve", "to_dict", "METHOD_OPTIONS",
    "build_method_options", "method_option_fields", "method_options_of", "register_method_options", "CommonConfig",
    "DataOptions", "DataSource", "LatencyOptions", "MachineOptions", "ModelOptions", "TrainingOptions",
]
