"""Data: image folders, the paper's recipes, splits, transforms and the in-memory cache."""

from .images import LabeledImages
from .loading import DataBundle, build_data, read_splits
from .recipes import LOCAL_RECIPES, RECIPES
from .splits import stratified_indices
from .transforms import build_transform

__all__ = [
    "LOCAL_RECIPES",
    "RECIPES",
    "DataBundle",
    "LabeledImages",
    "build_data",
    "build_transform",
    "read_splits",
    "stratified_indices",
]
