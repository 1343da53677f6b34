"""TransTailor's best sub-model against FT and FT-Full: test top-1, FLOPs reduction, real speed-up, memory.

    python benchmarks/search.py --datasets caltech101 cub10 --seeds 0 1 2 --image-size 112 --epochs 4

Each (dataset, seed) search writes benchmarks/results/search<tag>/<data>-s<seed>/ and is skipped
when its summary.json exists. ``--from-ft DIR`` starts each search (``--from-ft`` of the search) from
the FT model (iteration 0) of the same dataset and seed in DIR instead of training FT again, so that
option variants (``--set``) are compared from the very same starting point:

    python benchmarks/search.py --datasets caltech101 --seeds 0 1 2 --tag _distill \
        --from-ft benchmarks/results/search --set distill=previous

Values given with ``--set`` may name the seed and data set, e.g. one FT-Full teacher per seed:
``--set distill=benchmarks/results/finetune/{data}-full-s{seed}``. FT and FT-Full rows come from benchmarks/finetune.py's runs of the
same settings (run it first). Writes benchmarks/results/search<tag>/table.md.
"""

from __future__ import annotations

import json
import logging
import resource
import statistics
import sys
from pathlib import Path


import transtailor as tt
from _common import RESULTS, benchmark_parser, markdown_table, mean_std, shared_dataset


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=["caltech101", "cub10"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--epochs-for", nargs="*", default=["cub10=30"], metavar="DATA=N")
    ap.add_argument("--finetune-epochs-for", nargs="*", default=[], metavar="DATA=N",
                    help="epochs of fine-tuning after each pruning step, per dataset (default: its --epochs)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--from-ft", type=Path, default=None, metavar="DIR",
                    help="start from the FT model of DIR/<data>-s<seed> (see above)")
    ap.add_argument("--ft-rows", nargs="+", default=["finetune"], metavar="NAME",
                    help="folders under benchmarks/results whose <data>-head|full-s<seed> runs give the FT and "
                         "FT-Full rows, e.g. finetune finetune_8ep (a run with other epochs)")
    ap.add_argument("--table-only", action="store_true", help="make no run: tabulate the finished ones")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra search options")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    per_ds = {k: int(v) for k, v in (item.split("=") for item in args.epochs_for)}
    ft_per_ds = {k: int(v) for k, v in (item.split("=") for item in args.finetune_epochs_for)}
    extra = dict(item.split("=", 1) for item in args.set)
    root = RESULTS / f"search{args.tag}"
    rows, speed_rows = [], []
    for ds in args.datasets:
        data = shared_dataset(ds)
        epochs = per_ds.get(ds, args.epochs)
        found = []
        for seed in args.seeds:
            out = root / f"{ds}-s{seed}"
            options = {k: v.format(seed=seed, data=ds) for k, v in extra.items()}  # e.g. a teacher per seed
            if args.table_only and not (out / "summary.json").is_file():
                continue
            if not (out / "summary.json").is_file():
                flags = dict(model=args.model, data=str(data), image_size=args.image_size, epochs=epochs, seed=seed,
                             cache=True, out=str(out), **options)
                if ds in ft_per_ds:
                    flags["finetune_epochs"] = ft_per_ds[ds]
                if args.from_ft is not None:
                    flags["from_ft"] = str(args.from_ft / out.name / "iter_000" / "model.pt")
                if (out / "state.json").is_file():
                    flags = {"resume": str(out)}
                tt.search(tt.resolve(tt.SearchConfig, flags=flags))
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                summary = json.loads((out / "summary.json").read_text())
                summary["peak_rss_mb"] = rss
                tt.runs.write_json(out / "summary.json", summary)
            found.append(json.loads((out / "summary.json").read_text()))
            for it in json.loads((out / "iterations.json").read_text()):
                speed_rows.append([f"{ds} s{seed}", str(it["iteration"]), f"{100 * it['flops_reduction']:.1f}",
                                   f"{it['params'] / 1e6:.2f}", f"{it['val_top1']:.2f}", f"{it['test_top1']:.2f}",
                                   "" if it["iteration"] == 0 else ("yes" if it.get("best") else "no (tau)")])
        for folder in args.ft_rows:
            for mode, name in (("head", "FT"), ("full", "FT-Full")):
                runs = [RESULTS / folder / f"{ds}-{mode}-s{s}" for s in args.seeds]
                runs = [r for r in runs if (r / "summary.json").is_file()]
                if not runs:
                    continue
                ft = [json.loads((r / "summary.json").read_text()) for r in runs]
                if folder != "finetune":
                    epochs_run = tt.runs.RunDir(runs[0]).read_config().get("epochs", "?")
                    name += f" ({folder}, {epochs_run} epochs)"
                rows.append([ds, name, str(len(ft)), mean_std([r["val_top1"] for r in ft]),
                             mean_std([r["test_top1"] for r in ft]), "0.0",
                             f"{statistics.mean(r['params'] for r in ft) / 1e6:.2f}", "-"])
        if not found:
            continue
        rows.append([ds, "TransTailor (best, tau)", str(len(found)), mean_std([r["val_top1"] for r in found]),
                     mean_std([r["test_top1"] for r in found]),
                     mean_std([100 * r["flops_reduction"] for r in found]),
                     f"{statistics.mean(r['params'] for r in found) / 1e6:.2f}",
                     f"{max(r.get('peak_rss_mb', 0) for r in found):.0f}"])
        last = [json.loads((root / f"{ds}-s{seed}" / "iterations.json").read_text())[-1] for seed in args.seeds
                if (root / f"{ds}-s{seed}" / "summary.json").is_file()]
        rows.append([ds, "TransTailor (last step)", str(len(last)), mean_std([r["val_top1"] for r in last]),
                     mean_std([r["test_top1"] for r in last]), mean_std([100 * r["flops_reduction"] for r in last]),
                     f"{statistics.mean(r['params'] for r in last) / 1e6:.2f}", "-"])
    table = markdown_table(["data", "method", "seeds", "val top-1 %", "test top-1 %", "FLOPs red. %",
                            "M params", "peak RSS MB"], rows)
    speed = markdown_table(["run", "iteration", "FLOPs red. %", "M params", "val top-1 %", "test top-1 %", "kept"],
                           speed_rows)
    head = (f"{args.model}, {args.image_size} px, {args.epochs} epochs per phase (cub10 {per_ds.get('cub10')}; "
            f"after each pruning step {ft_per_ds or 'the same'}), "
            f"--cache, options {extra or 'default'}; command: {' '.join(sys.argv)}\n\n")
    (root / "table.md").write_text(head + table + "\n\nPer iteration:\n\n" + speed + "\n")
    print(head + table + "\n\n" + speed)


if __name__ == "__main__":
    main()
