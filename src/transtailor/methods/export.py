"""Export a saved model to TorchScript or ONNX and check that the file computes the same outputs."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, ModelError
from ..models.serialize import load_bundle, resolve_model_path

FORMATS = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}


def export_model(path: str | Path, fmt: str = "torchscript", out: str | Path | None = None,
                 image_size: int | None = None, atol: float = 1e-4) -> tuple[Path, float]:
    """Write the model at ``path`` (file or run folder) as ``fmt``; return the file and the max abs difference."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    src = resolve_model_path(path)
    bundle = load_bundle(src)
    model = bundle.model.eval()
    size = image_size or int(bundle.meta.get("image_size", 224))
    dst = Path(out) if out else src.with_name(src.stem + FORMATS[fmt])
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        if fmt == "torchscript":
            traced = torch.jit.trace(model, x)
            traced.save(str(dst))
            got = torch.jit.load(str(dst))(x)
        else:
            got = _onnx(model, x, dst)
    diff = (got - expected).abs().max().item()
    if diff > atol:
        raise ModelError(f"the exported {fmt} file differs from the model by {diff:.2e} (> {atol}); not usable")
    return dst, diff


def _onnx(model: torch.nn.Module, x: torch.Tensor, dst: Path) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'transtailor[onnx]'") from None
    torch.onnx.export(model, (x,), str(dst), input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
