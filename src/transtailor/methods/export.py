"""Export a saved model to TorchScript or ONNX and check that the file computes the same outputs."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, ModelError
from ..models.serialize import load_bundle, resolve_model_path
from ..runs import atomic_path, check_output

FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "export": ".pt2"}


def export_model(path: str | Path, fmt: str = "torchscript", out: str | Path | None = None,
                 image_size: int | None = None, atol: float = 1e-4, force: bool = False) -> tuple[Path, float]:
    """Write the model at ``path`` (file or run folder) as ``fmt``; return the file and the max abs difference.

    An existing ``out`` is replaced only with ``force``, and never when it is one of a run folder's own
    files. The file is written under a temporary name and renamed once it checked out, so a failed
    export leaves what was there.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    src = resolve_model_path(path)
    dst = Path(out) if out else src.with_name(src.stem + FORMATS[fmt])
    check_output(dst, force=force, sources=(src,))
    bundle = load_bundle(src)
    model = bundle.model.eval()
    size = image_size or int(bundle.meta.get("image_size", 224))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    try:
        with atomic_path(dst, suffix=".tmp" + dst.suffix) as tmp, torch.no_grad():
            expected = model(x)
            if fmt == "torchscript":
                traced = torch.jit.trace(model, x)
                traced.save(str(tmp))
                got = torch.jit.load(str(tmp))(x)
            elif fmt == "export":
                got = _torch_export(model, x, tmp)
            else:
                got = _onnx(model, x, tmp)
            diff = (got - expected).abs().max().item()
            if diff > atol:
                raise ModelError(f"the exported {fmt} file differs from the model by {diff:.2e} (> {atol}); "
                                 "not usable")
    except OSError as exc:
        raise ConfigError(f"--output {dst}: cannot write there ({exc.strerror or exc})") from None
    return dst, diff


def _torch_export(model: torch.nn.Module, x: torch.Tensor, dst: Path) -> torch.Tensor:
    """``torch.export`` with any batch size; load it with ``torch.export.load(path).module()``."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds; the user needs one line
        raise ModelError(f"torch.export cannot capture this model ({str(exc).splitlines()[0]}); use --format onnx "
                         "or torchscript") from None
    torch.export.save(program, str(dst))
    return torch.export.load(str(dst)).module()(x)


def _onnx(model: torch.nn.Module, x: torch.Tensor, dst: Path) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'transtailor[onnx]'") from None
    torch.onnx.export(model, (x,), str(dst), input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
