"""Methods: short scripts of phases (FT, FT-Full; the TransTailor search and baselines build on them)."""

from .evaluate import evaluate_saved
from .finetune import FinetuneResult, finetune

__all__ = ["FinetuneResult", "evaluate_saved", "finetune"]
