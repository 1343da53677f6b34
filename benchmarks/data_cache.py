"""One training epoch with and without the in-memory cache (``--cache``).

    python benchmarks/data_cache.py --data caltech101 --image-size 112

For each setting it reports the one-off preparation (checking or decoding every file), one pass
of the train loader alone, and one FT-Full training epoch of the model, with the fraction of that
epoch spent waiting for data. Results go to benchmarks/results/data_cache.md.
"""

from __future__ import annotations

import time

import torch

from _common import RESULTS, benchmark_parser, markdown_table, shared_dataset
from transtailor.data import build_data
from transtailor.models import create_model
from transtailor.training import make_sgd, param_groups, set_train_mode
import torch.nn.functional as F


def timed_epoch(loader, model=None, opt=None):
    wait = compute = 0.0
    n = 0
    t = time.perf_counter()
    for x, y in loader:
        t1 = time.perf_counter()
        wait += t1 - t
        if model is not None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t = time.perf_counter()
        compute += t - t1
        n += len(y)
    return wait, compute, n


def main() -> None:
    ap = benchmark_parser(__doc__)
    ap.add_argument("--data", default="caltech101")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    root = shared_dataset(args.data)
    rows = []
    for cache in (False, True):
        bundle = create_model(args.model)
        t = time.perf_counter()
        data = build_data(str(root), image_size=args.image_size, mean=bundle.mean, std=bundle.std,
                          batch_size=args.batch_size, cache=cache, seed=0)
        prep = time.perf_counter() - t
        w, _, n = timed_epoch(data.train_loader)
        from transtailor.models.heads import replace_head

        head = replace_head(bundle.model, data.num_classes)
        opt = make_sgd(param_groups(bundle.model, head, 0.05, 0.005))
        set_train_mode(bundle.model)
        tw, tc, _ = timed_epoch(data.train_loader, bundle.model, opt)
        workers = data.train_loader.num_workers
        rows.append(["on" if cache else "off", str(workers), f"{prep:.1f}", f"{w:.1f}", f"{n / w:.0f}",
                     f"{tw + tc:.1f}", f"{100 * tw / (tw + tc):.1f}"])
        print(rows[-1], flush=True)
    table = markdown_table(["--cache", "workers", "prepare s", "loader-only epoch s", "loader img/s",
                            "training epoch s", "waiting for data %"], rows)
    head = (f"{args.model}, {args.data} train split ({n} images), {args.image_size} px, batch {args.batch_size}, "
            f"{torch.get_num_threads()} torch threads\n\n")
    (RESULTS / "data_cache.md").write_text(head + table + "\n")
    print(head + table)


if __name__ == "__main__":
    main()
