"""Where the time of a run goes, from a py-spy sampling profile.

    py-spy record --nonblocking -r 10 -f raw -o profile.txt -- python benchmarks/search.py ...
    python benchmarks/profile_summary.py profile.txt [--out benchmarks/results/profile-search.md]

Each sample's stack is put in the first phase whose function it passes through (FT and fine-tuning
epochs, α training, the β pass, evaluation, pruning, MAC counting, saving, caching the images) and,
within the phase, in a part: waiting for the data loader, the backward pass, the optimizer step,
or the rest (forward and bookkeeping).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from _common import markdown_table

PHASES = [  # (function in the stack, phase), checked outermost-first along the stack
    ("decode_resized", "read and cache the images"),
    ("find_unreadable", "read and cache the images"),
    ("train_alpha", "alpha training"),
    ("accumulate_beta", "beta pass"),
    ("prune_to_budget", "pruning (dependency graph, cost)"),
    ("find_gate_sites", "finding gate sites"),
    ("evaluate", "evaluation (val, test)"),
    ("train_epoch", "training epochs (FT, fine-tuning)"),
    ("count_macs_params", "counting MACs"),
    ("layer_macs", "counting MACs"),
    ("save_model", "saving"),
    ("atomic_write", "saving"),
    ("draw_search_plots", "plots"),
]
PARTS = [("DataLoaderIter.__next__", "waiting for data"), ("backward", "backward"),
         ("Optimizer", "optimizer step"), ("_use_grad", "optimizer step")]


def classify(stack: list[str]) -> tuple[str, str]:
    names = [frame.split(" (")[0] for frame in stack]
    phase = next((p for fn, p in PHASES for n in names if fn in n.split(".")), None)
    if phase is None:
        phase = "start-up (imports, model, data split)" if any("create_model" in n or "<module>" == n
                                                              for n in names[:3]) else "other"
    part = next((label for key, label in PARTS if any(key in f for f in stack)), "forward and the rest")
    return phase, part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    phases: Counter[str] = Counter()
    parts: Counter[tuple[str, str]] = Counter()
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        phase, part = classify(stack.split(";"))
        phases[phase] += int(count)
        parts[(phase, part)] += int(count)
    total = sum(phases.values())
    rows = []
    for phase, n in phases.most_common():
        split = ", ".join(f"{part} {100 * c / n:.0f} %" for (ph, part), c in parts.most_common() if ph == phase)
        rows.append([phase, str(n), f"{100 * n / total:.1f}", split])
    text = (f"{args.profile.name}: {total} samples\n\n"
            + markdown_table(["phase", "samples", "% of run", "within the phase"], rows))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
