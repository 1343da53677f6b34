"""Re-evaluate a saved model on a data set, with the splits it was trained with."""

from __future__ import annotations

from typing import Any

from ..config import EvaluateConfig
from ..data import build_data
from ..errors import DataError
from ..models.serialize import load_bundle
from ..training import evaluate, resolve_device, set_threads


def evaluate_saved(cfg: EvaluateConfig) -> dict[str, Any]:
    """Val (when there is one) and test top-1 / top-5 of the saved model at ``cfg.model_path``."""
    cfg.validate()
    set_threads(cfg.threads)
    device = resolve_device(cfg.device)
    bundle = load_bundle(cfg.model_path)
    meta = bundle.meta
    image_size = cfg.image_size or int(meta.get("image_size", 224))
    crop_pct = cfg.crop_pct or float(meta.get("crop_pct", 0.875))
    data = build_data(cfg.data, image_size=image_size, mean=bundle.mean, std=bundle.std, crop_pct=crop_pct,
                      batch_size=cfg.batch_size, eval_batch_size=cfg.batch_size, val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, seed=cfg.seed, cache=cfg.cache, workers=cfg.workers,
                      data_root=cfg.data_root, device=device, caltech_split=cfg.caltech_split,
                      caltech_clutter=cfg.caltech_clutter)
    saved_classes = meta.get("classes")
    if saved_classes is not None and list(saved_classes) != data.classes:
        raise DataError(
            f"the model was trained on {len(saved_classes)} classes ({', '.join(saved_classes[:3])}, ...) "
            f"but {cfg.data} has {data.num_classes} ({', '.join(data.classes[:3])}, ...); evaluate on the same classes"
        )
    model = bundle.model.to(device).eval()
    out: dict[str, Any] = {"model": str(cfg.model_path), "data": cfg.data, "image_size": image_size}
    if data.val_loader is not None:
        out.update({f"val_{k}": v for k, v in evaluate(model, data.val_loader, device, "val").items()})
    out.update({f"test_{k}": v for k, v in evaluate(model, data.test_loader, device, "test").items()})
    out["skipped_files"] = len(data.skipped)
    return out
