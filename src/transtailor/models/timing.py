"""Measured latency on a target: PyTorch eager on the CPU, ONNX Runtime's CPU provider, or a CUDA GPU.

One module serves the latency table of the pruner, the per-iteration speed-ups of a run, the
final summary and ``transtailor benchmark``:

- :func:`make_runner` turns a model into a zero-argument callable that runs one forward pass of a
  fixed input on the target (eager ``no_grad``; ONNX Runtime's own ``InferenceSession`` on the
  exported graph; CUDA with bf16 autocast and channels_last, as TransTailor trains there).
- :func:`time_runner` times it with ``torch.utils.benchmark.Timer`` (``blocked_autorange`` warms
  up, picks the number of runs per block, sets the thread count and synchronises CUDA) and returns
  the median block time.
- :func:`compare_latency` is the protocol for speed-ups: every model is warmed up, then all are
  timed **alternately** in one process for ``rounds`` rounds, so that machine noise hits them alike;
  a model's speed-up is the median of its per-round ratios to the reference, reported with their
  spread (min and max).

On Linux with glibc, timing on the CPU first turns off glibc's ``mmap`` for large blocks in this
process (:func:`keep_heap_memory`): by default every block above 32 MB (a batch-32 activation of an
early layer is one) is mapped afresh and page-faulted on every forward pass, which on the machines
measured here doubled a batch's time and made it swing from run to run with the allocator's history,
so a layer's time said more about the allocator than about its width. jemalloc and tcmalloc behave
as the setting does; a deployment gets the measured speed with ``MALLOC_MMAP_MAX_=0`` in its
environment (or one of them).
"""

from __future__ import annotations

import ctypes
import io
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, cast

import torch
import torch.nn as nn

from ..errors import ConfigError, ModelError

TARGETS = ("cpu", "onnxruntime", "cuda")


@dataclass(frozen=True)
class TimingSetup:
    """Where and how a forward pass is timed."""

    target: str = "cpu"
    batch: int = 32
    threads: int = 0  # CPU threads (torch intra-op, or ONNX Runtime intra-op); 0: the library's default
    min_run_time: float = 0.2  # seconds per Timer measurement

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"--latency-target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.batch < 1:
            raise ConfigError(f"--latency-batch must be at least 1, got {self.batch}")

    def torch_threads(self) -> int:
        return self.threads or torch.get_num_threads()


def resolve_target(target: str, device: torch.device | str) -> str:
    """``auto`` is the device the run trains on: ``cuda`` on a GPU, else ``cpu``."""
    if target == "auto":
        return "cuda" if torch.device(device).type == "cuda" else "cpu"
    if target not in TARGETS:
        raise ConfigError(f"--latency-target must be auto or one of {', '.join(TARGETS)}, got {target!r}")
    return target


def check_target(target: str) -> None:
    """Raise :class:`ConfigError` when the target cannot be timed on this machine."""
    if target == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--latency-target cuda: no CUDA GPU is visible on this machine (use cpu or onnxruntime)")
    if target == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ConfigError("--latency-target onnxruntime needs onnxruntime: pip install 'transtailor[onnx]'") from None


def device_name(target: str) -> str:
    """What the time is measured on, as a person reads it (CPU model or GPU name)."""
    if target == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
_heap_kept: bool | None = None


def keep_heap_memory() -> bool:
    """Stop glibc from mapping (and unmapping) large blocks in this process; True where it took effect.

    Freed memory then stays in the heap (up to 1 GiB above the top) for the next call instead of
    being returned to the system and faulted in again. Done once per process; a no-op elsewhere.
    """
    global _heap_kept
    if _heap_kept is None:
        _heap_kept = False
        if platform.system() == "Linux":
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _heap_kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
            except (OSError, AttributeError):
                pass
    return _heap_kept


def library_versions(target: str) -> dict[str, str]:
    out = {"torch": str(torch.__version__)}
    if target != "cuda":
        out["malloc"] = "heap-kept" if keep_heap_memory() else "default"
    if target == "onnxruntime":
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    if target == "cuda" and torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    return out


def make_runner(model: nn.Module, input_shape: tuple[int, ...], setup: TimingSetup) -> Callable[[], Any]:
    """A callable that runs one inference forward pass of a fixed random input on ``setup.target``.

    The model is copied to the target (the caller's model is left where it is) and put in eval mode.
    """
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    if setup.target != "cuda":
        keep_heap_memory()
    if setup.target == "onnxruntime":
        return _onnx_runner(model, x, setup.threads)
    device = torch.device("cuda" if setup.target == "cuda" else "cpu")
    m = _copy_to(model, device).eval()
    if device.type == "cuda":
        m = m.to(memory_format=torch.channels_last)
        x = x.to(device).contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x.to(device)
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

        def run_cuda() -> Any:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                return m(x)

        return run_cuda

    def run_cpu() -> Any:
        with torch.inference_mode():
            return m(x)

    return run_cpu


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy on ``device``: timing sets eval mode and memory formats without touching the caller's model."""
    import copy

    return copy.deepcopy(model).to(device)


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """The model exported to ONNX (TorchScript-based exporter, opset 17), as bytes."""
    buf = io.BytesIO()
    m = _copy_to(model, torch.device("cpu")).eval()
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), cast(Any, buf), input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    return buf.getvalue()


def ort_session(model_bytes: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _session_runner(session: Any, x: torch.Tensor) -> Callable[[], Any]:
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)


def _onnx_runner(model: nn.Module, x: torch.Tensor, threads: int) -> Callable[[], Any]:
    return _session_runner(ort_session(onnx_bytes(model, x), threads), x)


def onnx_file_runner(path: str, input_shape: tuple[int, ...], threads: int) -> Callable[[], Any]:
    """A runner for an exported ``.onnx`` file (its first input gets a fixed random tensor).

    A file ONNX Runtime cannot load, or one exported for another input size, is a :class:`ModelError`
    that names the file and what is wrong with it."""
    session = _onnx_file_session(path, threads)
    expected = session.get_inputs()[0].shape
    if len(expected) != len(input_shape) or any(isinstance(e, int) and e != g for e, g in zip(expected, input_shape)):
        size = expected[-1] if len(expected) == 4 and isinstance(expected[-1], int) else None
        fix = f"benchmark it with --image-size {size}" if size else "give the input size it was exported for"
        raise ModelError(f"{path} takes inputs of shape {_shape(expected)}, not {_shape(input_shape)}: {fix}")
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
    run = _session_runner(session, x)
    try:
        run()
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        raise ModelError(f"{path} does not run in ONNX Runtime ({_ort_reason(exc)})") from None
    return run


def onnx_input_size(path: str) -> int | None:
    """The image size an ``.onnx`` file was exported for (None when its height and width are not fixed)."""
    shape = _onnx_file_session(path, 1).get_inputs()[0].shape
    if len(shape) == 4 and isinstance(shape[2], int) and shape[2] == shape[3]:
        return int(shape[2])
    return None


def _onnx_file_session(path: str, threads: int) -> Any:
    try:
        return ort_session(path, threads)
    except ImportError:
        raise ModelError("timing an ONNX file needs onnxruntime: pip install 'transtailor[onnx]'") from None
    except Exception as exc:  # noqa: BLE001 - InvalidProtobuf, InvalidArgument, Fail ...
        raise ModelError(f"{path} is not an ONNX model ONNX Runtime can load ({_ort_reason(exc)}); write one with "
                         "transtailor export --format onnx") from None


def _ort_reason(exc: Exception) -> str:
    """ONNX Runtime's message without its code prefix and file name: 'Protobuf parsing failed.'"""
    text = " ".join(str(exc).split())
    reason = text.split("failed:", 1)[-1] if "failed:" in text else text.split(" : ")[-1]
    return reason.strip().rstrip(".")


def _shape(shape: Any) -> str:
    return "x".join(str(d) for d in shape)


def time_runner(fn: Callable[[], Any], setup: TimingSetup, min_run_time: float | None = None) -> float:
    """Median seconds of one call of ``fn``, by ``torch.utils.benchmark.Timer.blocked_autorange``."""
    from torch.utils.benchmark import Timer

    # ONNX Runtime sets its own threads; torch's count only matters for the eager targets
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=setup.torch_threads())
    return float(timer.blocked_autorange(min_run_time=min_run_time or setup.min_run_time).median)


def time_runner_quick(fn: Callable[[], Any], setup: TimingSetup, run_time: float) -> float:
    """Mean seconds of one call of ``fn`` over one ``Timer.timeit`` block of about ``run_time`` seconds.

    For the many small entries of a latency table: ``blocked_autorange`` grows its block tenfold
    until the timer's own overhead is below 1e-4 of it, which costs a tenth of a second or more per
    microsecond-scale GPU kernel; here one timed call sizes the block.
    """
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=setup.torch_threads())
    one = float(timer.timeit(1).median)  # also a warm-up
    number = int(min(max(run_time / max(one, 1e-7), 1), 100_000))
    return float(timer.timeit(number).median)


@dataclass
class Latency:
    """One model's measured latency and speed-up against the reference of a comparison."""

    ms: float  # median over rounds of the round's time (milliseconds per forward pass of the batch)
    speedup: float  # median over rounds of reference time / this model's time
    speedup_min: float
    speedup_max: float
    rounds: list[float] = field(default_factory=list)  # per-round ms


def compare_latency(models: Mapping[str, nn.Module | Callable[[], Any]], reference: str,
                    input_shape: tuple[int, ...], setup: TimingSetup, rounds: int = 5) -> dict[str, Latency]:
    """Time every model alternately for ``rounds`` rounds; speed-ups against ``models[reference]``.

    A value may be a module (run on ``setup.target``) or a ready runner (e.g. an ONNX file's).
    """
    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {rounds}")
    runners = {k: (v if not isinstance(v, nn.Module) else make_runner(v, input_shape, setup))
               for k, v in models.items()}
    for fn in runners.values():  # warm-up: allocator, ONNX Runtime's first run, cuDNN's algorithm choice
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for k, fn in runners.items():
            times[k].append(1000.0 * time_runner(fn, setup))
    out = {}
    for k, ts in times.items():
        ratios = [r / t for r, t in zip(times[reference], ts)]
        out[k] = Latency(ms=statistics.median(ts), speedup=statistics.median(ratios), speedup_min=min(ratios),
                         speedup_max=max(ratios), rounds=ts)
    return out
