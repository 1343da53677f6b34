"""FT vs FT-Full: val and test top-1 (mean ± std over seeds), MACs and wall time.

    python benchmarks/finetune.py --datasets caltech101 cub10 --seeds 0 1 2 --image-size 112 --epochs 4

Each (dataset, mode, seed) run writes its own run folder under benchmarks/results/finetune/ and is
skipped when its summary.json already exists, so the script can be stopped and started again.
"""

from __future__ import annotations

import logging
import statistics

import transtailor as tt
from _common import RESULTS, benchmark_parser, markdown_table, mean_std, shared_dataset


def macs(run_dir, image_size: int) -> int:
    """Counted again from the saved model, so that every row uses the same counter."""
    return tt.count_macs_params(tt.load_model(run_dir), image_size)[0]


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--datasets", nargs="+", default=["caltech101", "cub10"])
    ap.add_argument("--modes", nargs="+", default=["head", "full"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--epochs-for", nargs="*", default=["cub10=30"], metavar="DATA=N",
                    help="per-data-set epochs (cub10 has 4 steps an epoch at batch 32)")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--epoch-choice", default=None, help="which epoch a run keeps (default: the package's)")
    ap.add_argument("--tag", default="", help="suffix for the results folder (e.g. a preset name)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = RESULTS / f"finetune{args.tag}"
    per_ds = {k: int(v) for k, v in (item.split("=") for item in args.epochs_for)}
    rows = []
    for ds in args.datasets:
        epochs = per_ds.get(ds, args.epochs)
        data = shared_dataset(ds)
        for mode in args.modes:
            summaries = []
            for seed in args.seeds:
                out = root / f"{ds}-{mode}-s{seed}"
                if (out / "summary.json").is_file():
                    summaries.append(tt.runs.read_json(out / "summary.json"))
                    continue
                flags = dict(model=args.model, data=str(data), image_size=args.image_size, epochs=epochs,
                             mode=mode, seed=seed, cache=True, out=str(out))
                if args.preset:
                    flags["preset"] = args.preset
                if args.epoch_choice:
                    flags["epoch_choice"] = args.epoch_choice
                cfg = tt.resolve(tt.FinetuneConfig, flags=flags)
                summaries.append(tt.finetune(cfg).summary.to_json())
            name = {"head": "FT", "full": "FT-Full"}[mode]
            rows.append([f"{ds} ({epochs} ep)", name, str(len(summaries)),
                         mean_std([s["val_top1"] for s in summaries]),
                         mean_std([s["test_top1"] for s in summaries]),
                         f"{macs(root / f'{ds}-{mode}-s{args.seeds[0]}', args.image_size) / 1e6:.1f}",
                         f"{summaries[0]['params'] / 1e6:.2f}",
                         f"{statistics.mean(s['wall_seconds'] for s in summaries):.0f}",
                         "/".join(str(s.get("threads", "2*")) for s in summaries)])
    table = markdown_table(["data", "method", "seeds", "val top-1 %", "test top-1 %", "MMACs", "M params",
                            "wall s / run", "threads"], rows)
    table += ("\n\nWall times are only comparable between runs that had the machine to themselves; "
              "* = torch's default on a 2-core machine, recorded before summaries stored the thread count.")
    header = (f"{args.model}, {args.image_size} px, epochs as listed, batch 32, --cache"
              + (f", preset {args.preset}" if args.preset else "") + "\n\n")
    (root / "table.md").write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
