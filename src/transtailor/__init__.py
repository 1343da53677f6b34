"""TransTailor: prune and fine-tune a pretrained CNN for a small target task.

The typed public API::

    import transtailor as tt
    cfg = tt.FinetuneConfig(model="efficientnet_lite0", data="path/to/images", mode="full", out="runs/ft")
    result = tt.finetune(cfg)               # FT / FT-Full; writes the run folder
    best = tt.search(tt.SearchConfig(data="path/to/images", out="runs/tt"))   # the TransTailor search
    model = tt.load_model("runs/ft")        # the saved model, without pickled code
    speed = tt.benchmark(tt.BenchmarkConfig(model_path="runs/tt", latency_target="onnxruntime"))
"""

from .config import BenchmarkConfig, CommonConfig, CompareConfig, EvaluateConfig, ExportConfig, FinetuneConfig, PruneConfig, SearchConfig, resolve
from .data import DataBundle, build_data
from . import runs
from .errors import ConfigError, DataError, ModelError, TransTailorError
from .methods.benchmark import BenchmarkResult, benchmark
from .methods.compare import CompareResult, compare
from .models.timing import Latency, TimingSetup, compare_latency
from .methods import FinetuneResult, SearchResult, evaluate_saved, export_model, finetune, prune, search
from .models import ModelBundle, count_macs_params, create_model, load_model, measure_latency, save_model
from .models.serialize import load_bundle
from .models.zoo import wrap_module

__version__ = "0.1.0"

__all__ = [
    "BenchmarkConfig",
    "BenchmarkResult",
    "CommonConfig",
    "CompareConfig",
    "CompareResult",
    "ConfigError",
    "DataBundle",
    "DataError",
    "EvaluateConfig",
    "ExportConfig",
    "FinetuneConfig",
    "FinetuneResult",
    "Latency",
    "SearchConfig",
    "SearchResult",
    "ModelBundle",
    "ModelError",
    "PruneConfig",
    "TimingSetup",
    "TransTailorError",
    "benchmark",
    "build_data",
    "compare",
    "compare_latency",
    "count_macs_params",
    "create_model",
    "evaluate_saved",
    "export_model",
    "finetune",
    "load_bundle",
    "load_model",
    "measure_latency",
    "prune",
    "resolve",
    "runs",
    "save_model",
    "search",
    "wrap_module",
]
