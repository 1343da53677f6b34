"""Models: creation by name, the new head, weights, measurement and saving."""

from .heads import replace_head
from .measure import count_macs_params, measure_latency
from .serialize import load_model, save_model
from .zoo import ModelBundle, available_models, create_model

__all__ = [
    "ModelBundle",
    "available_models",
    "count_macs_params",
    "create_model",
    "load_model",
    "measure_latency",
    "replace_head",
    "save_model",
]
