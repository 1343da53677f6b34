"""TransTailor: prune and fine-tune a pretrained CNN for a small target task.

The typed public API::

    import transtailor as tt
    cfg = tt.FinetuneConfig(model="efficientnet_lite0", data="path/to/images", mode="full", out="runs/ft")
    result = tt.finetune(cfg)               # FT / FT-Full; writes the run folder
    best = tt.search(tt.SearchConfig(data="path/to/images", out="runs/tt"))   # the TransTailor search
    best.summary.best.test_top1, best.iterations[-1].speedup_batch          # typed records (tt.IterationRecord)
    model = tt.load_model("runs/ft")        # the saved model, without pickled code
    speed = tt.benchmark(tt.BenchmarkConfig(model_path="runs/tt", latency_target="onnxruntime"))

    @tt.register                            # a pruning criterion of your own: prune, search, compare take it
    class Mine(tt.Criterion):
        name, summary = "mine", "what it scores"
        def __call__(self, ctx: tt.ScoreContext) -> tt.Scores: ...
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

# torch.utils.benchmark imports torch.utils.cpp_extension, which warns on every machine without the CUDA
# toolkit that "No CUDA runtime is found": nothing a user of TransTailor can act on
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

if TYPE_CHECKING:  # the names below, for type checkers and IDEs; at run time they load on first use
    from . import runs
    from .config import (BenchmarkConfig, CommonConfig, CompareConfig, EvaluateConfig, ExportConfig, FinetuneConfig,
                         PruneConfig, SearchConfig, resolve)
    from .data import DataBundle, build_data
    from .errors import ConfigError, DataError, ModelError, TransTailorError
    from .methods import FinetuneResult, SearchResult, evaluate_saved, export_model, finetune, prune, search
    from .methods.benchmark import BenchmarkResult, benchmark
    from .methods.compare import CompareResult, compare
    from .models import ModelBundle, count_macs_params, create_model, load_model, measure_latency, save_model
    from .models.serialize import load_bundle
    from .models.timing import Latency, TimingSetup, compare_latency
    from .models.zoo import wrap_module
    from .pruning.criteria import CRITERIA, Criterion, ScoreContext, Scores, register
    from .records import FinetuneSummary, IterationRecord, Reference, RunState, SearchSummary, StopCheck

#: where each public name lives (the imports under TYPE_CHECKING name the same ones for type checkers; a
#: test keeps the two lists equal). ``import transtailor`` loads none of them (nor torch), so the
#: ``transtailor`` command can answer Ctrl-C, --help and bad flags before torch is imported.
_WHERE = {
    **dict.fromkeys(["BenchmarkConfig", "CommonConfig", "CompareConfig", "EvaluateConfig", "ExportConfig",
                     "FinetuneConfig", "PruneConfig", "SearchConfig", "resolve"], ".config"),
    **dict.fromkeys(["DataBundle", "build_data"], ".data"),
    **dict.fromkeys(["ConfigError", "DataError", "ModelError", "TransTailorError"], ".errors"),
    **dict.fromkeys(["FinetuneResult", "SearchResult", "evaluate_saved", "export_model", "finetune", "prune",
                     "search"], ".methods"),
    **dict.fromkeys(["BenchmarkResult", "benchmark"], ".methods.benchmark"),
    **dict.fromkeys(["CompareResult", "compare"], ".methods.compare"),
    **dict.fromkeys(["ModelBundle", "count_macs_params", "create_model", "load_model", "measure_latency",
                     "save_model"], ".models"),
    "load_bundle": ".models.serialize",
    **dict.fromkeys(["Latency", "TimingSetup", "compare_latency"], ".models.timing"),
    "wrap_module": ".models.zoo",
    **dict.fromkeys(["CRITERIA", "Criterion", "ScoreContext", "Scores", "register"], ".pruning.criteria"),
    **dict.fromkeys(["FinetuneSummary", "IterationRecord", "Reference", "RunState", "SearchSummary", "StopCheck"], ".records"),
}


def __getattr__(name: str) -> Any:
    if name == "runs":
        return importlib.import_module(".runs", __name__)
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'transtailor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

#: every public name: the lazily loaded ones above, and the run-folder helpers module
__all__ = [*_WHERE, "runs"]
