"""The built-in pretrained models: ImageNet-sample top-1, parameters and MACs, at their native size and 112 px.

    python benchmarks/builtin_models.py --threads 1                  # top-1, params, MACs
    python benchmarks/builtin_models.py --latency cpu onnxruntime     # and latency (run on an idle machine)

Top-1 is measured on ../shared/data/imagenet_samples (one validation image per class, 1000 in all;
their shorter side is 144 px), resized to size / 0.875 and centre-cropped, as the models were
evaluated on ImageNet. It is also given on the subset the tests use (every ``--stride``-th class), to
show how far the subset's figure is from the full one. With ``--latency`` each model (ImageNet head)
is saved under the output folder and timed by ``transtailor benchmark`` in a fresh process per model,
size and target, at batch 1 and 32 with 2 threads; the top-1 of an earlier run is reused.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from _common import RESULTS, SHARED, markdown_table
from transtailor.data import build_transform
from transtailor.data.datasets import ImageDataset
from transtailor.data.folders import read_class_folders
from transtailor.models import count_macs_params, create_model, save_model
from transtailor.models.zoo import BUILTINS


def top1_hits(model: torch.nn.Module, root: Path, size: int, mean, std) -> list[bool]:
    """Per image, in class order, whether the top-1 prediction is right."""
    ds = ImageDataset(read_class_folders(root), build_transform(size, 0.875, mean, std, train=False))
    hits: list[bool] = []
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(ds, batch_size=50, num_workers=1):
            hits += (model(x).argmax(1) == y).tolist()
    return hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(BUILTINS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[0, 112], help="0: the model's native size")
    ap.add_argument("--stride", type=int, default=4, help="the tests' subset: every N-th class")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--latency", nargs="*", default=[], help="latency targets to time (cpu, onnxruntime, cuda)")
    ap.add_argument("--out", type=Path, default=RESULTS / "builtin_models")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "imagenet.json"
    known = {(r["model"], r["image_size"]): r for r in json.loads(saved.read_text())} if saved.is_file() else {}
    records = dict(known)  # rows of models not asked for this time stay
    for name in args.models:
        native = BUILTINS[name].image_size
        for size in (s or native for s in args.sizes):
            rec = known.get((name, size)) if args.latency else None
            if rec is None:
                rec = accuracy(name, size, args.stride)
            for target in args.latency:
                rec[f"latency_ms_{target}"] = latency(name, size, target, args.out)
            records[(name, size)] = rec
            print(rec, flush=True)
            saved.write_text(json.dumps(list(records.values()), indent=2))
    header = ["model", "px", "top-1 % (1000)", "top-1 % on the tests' 250", "M params", "M MACs"]
    rows_in = sorted(records.values(), key=lambda r: (r["model"], not r["native"], r["image_size"]))
    targets = [t for t in ("cpu", "onnxruntime", "cuda") if any(f"latency_ms_{t}" in r for r in rows_in)]
    header += [f"{t} ms (b1 / b32)" for t in targets]
    rows = [[r["model"], f"{r['image_size']}" + (" (native)" if r["native"] else ""), f"{r['top1']:.1f}",
             f"{r['subset_top1']:.1f}", f"{r['params'] / 1e6:.2f}", f"{r['macs'] / 1e6:.0f}"]
            + [" / ".join(f"{v:.1f}" for v in r[f"latency_ms_{t}"]) if f"latency_ms_{t}" in r else "-"
               for t in targets] for r in rows_in]
    table = markdown_table(header, rows)
    (args.out / "imagenet.md").write_text(table + "\n")
    print(table)


def accuracy(name: str, size: int, stride: int) -> dict:
    """Top-1 on all 1000 samples and on every ``stride``-th, with parameters and MACs at ``size``."""
    bundle = create_model(name)
    model = bundle.model.eval()
    hits = top1_hits(model, SHARED / "imagenet_samples" / "val", size, bundle.mean, bundle.std)
    subset = hits[::stride]
    macs, params = count_macs_params(model, size)
    return {"model": name, "image_size": size, "native": size == BUILTINS[name].image_size, "images": len(hits),
            "top1": 100 * sum(hits) / len(hits), "subset_images": len(subset),
            "subset_top1": 100 * sum(subset) / len(subset), "params": params, "macs": macs}


def latency(name: str, size: int, target: str, out: Path) -> list[float]:
    """[batch 1, batch 32] milliseconds of the ImageNet model, by ``transtailor benchmark`` in a fresh process."""
    model_file = out / "models" / f"{name}.pt"
    if not model_file.is_file():
        save_model(model_file, create_model(name), {"image_size": BUILTINS[name].image_size, "crop_pct": 0.875})
    table = out / "latency" / f"{name}-{size}-{target}.json"
    table.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "transtailor", "benchmark", str(model_file), "--image-size", str(size),
                    "--latency-target", target, "--threads", "2", "--rounds", "5", "--latency-batch", "32",
                    "--output", str(table), "--force"], check=True)
    row = json.loads(table.read_text())["models"][0]
    return [row["latency_ms_b1"], row["latency_ms_batch"]]


if __name__ == "__main__":
    main()
