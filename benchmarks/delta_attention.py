"""Cost of DELTA's channel attention: channels batched per image against one pass per channel.

    python benchmarks/delta_attention.py --model efficientnet_lite0 --image-size 112 --images 8 --threads 1

Measures the attention on the layers ``finetune --regularizer delta`` picks (the end of every
stage), on ``--images`` random images, both ways, and reports the seconds per layer and the largest
difference between the two attentions. Both costs grow in proportion to the images (64 by default
in a run). Writes benchmarks/results/delta_attention.md.
"""

from __future__ import annotations

import time

import torch

from _common import RESULTS, benchmark_parser, markdown_table
from transtailor.models import create_model
from transtailor.pruning import find_gate_sites
from transtailor.training import regularizers as R


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    b = create_model(args.model, num_classes=101)
    sites = find_gate_sites(b.model, 64, exclude=(b.head,))
    layers = R.stage_outputs(b.model, [s.module for s in sites if s.kind != "conv"], args.image_size)
    x = torch.randn(args.images, 3, args.image_size, args.image_size)
    y = torch.randint(0, 101, (args.images,))
    b.model.eval()
    rows, totals = [], [0.0, 0.0]
    with torch.no_grad():
        for name in layers:
            module = b.model.get_submodule(name)
            t = time.perf_counter()
            batched = R._zeroed_losses_per_image(b.model, module, x, y, 1 << 22, name)
            t_batched = time.perf_counter() - t
            t = time.perf_counter()
            single = R._zeroed_losses_per_channel(b.model, module, x, y, name)
            t_single = time.perf_counter() - t
            totals[0] += t_batched
            totals[1] += t_single
            rows.append([name, str(len(batched)), f"{t_single:.1f}", f"{t_batched:.1f}",
                         f"{t_single / t_batched:.1f}", f"{(batched - single).abs().max().item():.1e}"])
    rows.append(["all", str(sum(int(r[1]) for r in rows)), f"{totals[1]:.1f}", f"{totals[0]:.1f}",
                 f"{totals[1] / totals[0]:.1f}", ""])
    head = (f"{args.model}, {args.image_size} px, {args.images} images, {torch.get_num_threads()} threads; "
            f"seconds to measure the loss with each channel zeroed\n\n")
    table = markdown_table(["layer", "channels", "one pass per channel s", "batched per image s", "speed-up",
                            "max loss diff"], rows)
    (RESULTS / "delta_attention.md").write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
