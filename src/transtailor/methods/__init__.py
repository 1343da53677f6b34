"""Methods: short scripts of phases (FT, FT-Full; the TransTailor search and baselines build on them)."""

from .evaluate import evaluate_saved
from .export import export_model
from .finetune import FinetuneResult, finetune
from .iterative import SearchResult
from .prune import prune
from .transtailor import search

__all__ = ["FinetuneResult", "SearchResult", "evaluate_saved", "export_model", "finetune", "prune", "search"]
