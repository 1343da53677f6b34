"""Time of SFP's per-epoch selection (a dry run of the hard pruner): on a full copy of the model
against a weightless (meta-device) copy of its structure, which :func:`transtailor.pruning.soft.soft_select`
uses. Both must select the same channels; random weights, as timing does not depend on them.

    python benchmarks/soft_dry_run.py --models resnet18 resnet50 efficientnet_lite0 --sizes 64 224

Prints a markdown table: seconds per selection (median of ``--repeats``), and the bytes of the
parameters and buffers the full copy duplicates.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from _common import markdown_table
from transtailor.models import create_model
from transtailor.models.heads import replace_head
from transtailor.models.measure import layer_macs
from transtailor.pruning import find_gate_sites
from transtailor.pruning.pruner import prune_to_macs
from transtailor.pruning.soft import l2_scores, shape_copy


def _select(model, sites, scores, target, size, head):
    record, _ = prune_to_macs(model, sites, scores, target, size, head, round_to=8)
    return record.removed_channels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "efficientnet_lite0"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models:
        for size in args.sizes:
            torch.manual_seed(0)
            bundle = create_model(name, weights="none")
            replace_head(bundle.model, 10)
            model, head = bundle.model.eval(), bundle.head
            sites = find_gate_sites(model, min(size, 64), exclude=(head,))
            scores = l2_scores(model, sites)
            target = int(0.9 * layer_macs(model, size)[0])  # one 10 % step
            times: dict[str, list[float]] = {"full": [], "shape": []}
            picks = {}
            for _ in range(args.repeats):
                for kind, make in (("full", copy.deepcopy), ("shape", shape_copy)):
                    t = time.perf_counter()
                    picks[kind] = _select(make(model), sites, scores, target, size, head)
                    times[kind].append(time.perf_counter() - t)
            assert picks["full"] == picks["shape"], f"{name} {size}: the two dry runs selected differently"
            nbytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
            full, shape = statistics.median(times["full"]), statistics.median(times["shape"])
            rows.append([name, str(size), f"{full:.2f}", f"{shape:.2f}", f"{full / shape:.1f}x",
                         f"{nbytes / 2**20:.1f}"])
            print(rows[-1], flush=True)
    print(markdown_table(["model", "px", "full copy s", "weightless copy s", "ratio", "MiB copied per epoch"], rows))


if __name__ == "__main__":
    main()
