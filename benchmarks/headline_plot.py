"""README's picture: test top-1 against measured speed-up, caltech101, efficientnet_lite0 at 112 px.

    python benchmarks/headline_plot.py

Reads the tables ``benchmarks/equal_latency_table.py`` wrote (``rows.json`` in
``benchmarks/results/equal-latency-cpu`` and ``equal-latency-cpu-tries``): every step of every seed's
search, at its measured speed-up (eager PyTorch, 2 threads, batch 32, development machine), with
FT-Full trained 12 epochs as the reference band (mean ± std of 3 seeds). Writes
``docs/images/accuracy-vs-speedup.png``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from _common import RESULTS  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "accuracy-vs-speedup.png"
SERIES = {  # label: (results folder, run name prefixes)
    "search, MAC cost, 10 % steps": ("equal-latency-cpu", ("transtailor-50",)),
    "search, latency cost, measured steps": ("equal-latency-cpu-tries", ("transtailor-1.30x", "transtailor-1.50x")),
    "Taylor pruning, measured steps": ("equal-latency-cpu-tries", ("taylor-1.50x",)),
}


def main() -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    full = [s["test"] for s in json.loads((RESULTS / "equal-latency-cpu" / "rows.json").read_text())["steps"]
            if s["run"] == "ft-full-12ep"]
    mean, std = statistics.mean(full), statistics.stdev(full)
    ax.axhspan(mean - std, mean + std, color="0.85")
    ax.axhline(mean, color="0.4", lw=1, label=f"FT-Full, 12 epochs ({mean:.2f} ± {std:.2f} %, 3 seeds)")
    for (label, (folder, prefixes)), marker in zip(SERIES.items(), "os^"):
        steps = json.loads((RESULTS / folder / "rows.json").read_text())["steps"]
        pts = sorted({(s["used"], s["test"]) for s in steps if s["run"].startswith(prefixes) and s["used"]})
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, ms=5, alpha=0.8, label=label)
    ax.set_xlabel("measured speed-up over the unpruned model (eager CPU, batch 32)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("caltech101, efficientnet_lite0 at 112 px, 4 epochs after each step, 3 seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
