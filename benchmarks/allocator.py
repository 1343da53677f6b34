"""Eager CPU time of one batch with glibc's default allocator and with large blocks kept in the heap.

    python benchmarks/allocator.py --size 112 --batch 32 --threads 2 --repeats 3

Each setting runs in a fresh process (the allocator's state depends on the process's history):
efficientnet_lite0 with random weights, ``torch.utils.benchmark.Timer.blocked_autorange``; prints
the median ms of each process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CHILD = """
import sys, torch
from torch.utils.benchmark import Timer
size, batch, threads, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
if mode == "heap-kept":
    from transtailor.models.timing import keep_heap_memory
    assert keep_heap_memory()
from transtailor.models import create_model
model = create_model("efficientnet_lite0", num_classes=101, weights="none").model.eval()
x = torch.randn(batch, 3, size, size)
with torch.inference_mode():
    t = Timer("m(x)", globals={"m": model, "x": x}, num_threads=threads).blocked_autorange(min_run_time=2.0)
print(1000 * t.median)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"efficientnet_lite0, {args.size} px, batch {args.batch}, {args.threads} threads; ms per batch, "
          f"one fresh process each")
    for mode in ("default", "heap-kept"):
        ms = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.size), str(args.batch), str(args.threads), mode],
                                 capture_output=True, text=True, check=True)
            ms.append(float(out.stdout.split()[-1]))
        print(f"{mode:>9}: median {statistics.median(ms):.1f} ms, runs {', '.join(f'{m:.1f}' for m in ms)}")


if __name__ == "__main__":
    main()
